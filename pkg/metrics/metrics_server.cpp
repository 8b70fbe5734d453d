#include "pkg/metrics/metrics_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <charconv>
#include <chrono>

namespace dpcm::metrics {
namespace {

struct BindAddress {
  std::string host;
  int port = 0;
};

// Splits "host:port", ":port" or "[v6]:port"; an empty host means every interface.
Result<BindAddress> ParseBindAddress(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    return Status::Config("metrics bind address \"" + address + "\" is not host:port");
  }
  BindAddress bind;
  bind.host = address.substr(0, colon);
  if (bind.host.size() >= 2 && bind.host.front() == '[' && bind.host.back() == ']') {
    bind.host = bind.host.substr(1, bind.host.size() - 2);
  }
  if (bind.host.empty()) bind.host = "0.0.0.0";
  const std::string port = address.substr(colon + 1);
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), bind.port);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || bind.port < 0 ||
      bind.port > 65535) {
    return Status::Config("metrics bind address \"" + address + "\" has no valid port");
  }
  return bind;
}

// SO_REUSEADDR only: unlike httplib's default, no SO_REUSEPORT, so that a second process
// asking for a port in use fails instead of silently sharing it.
void ExclusivePortOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

}  // namespace

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

MetricsServer::~MetricsServer() { Stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                            const Metrics& metrics) {
  auto bind = ParseBindAddress(address);
  if (!bind.ok()) return bind.status();

  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_keep_alive_max_count(1);
  server->set_socket_options(ExclusivePortOptions);
  server->Get("/metrics", [&metrics](const httplib::Request&, httplib::Response& response) {
    response.set_content(metrics.RenderText(), "text/plain; version=0.0.4; charset=utf-8");
  });

  int port = bind->port;
  if (port == 0) {
    port = server->bind_to_any_port(bind->host);
  } else if (!server->bind_to_port(bind->host, port)) {
    port = -1;
  }
  if (port <= 0) return Status::Transport("cannot bind metrics server to " + address);

  std::unique_ptr<MetricsServer> self(new MetricsServer(std::move(server), port));
  httplib::Server& running = *self->server_;
  auto ended = std::make_shared<std::atomic<bool>>(false);
  self->thread_ = std::thread([&running, ended] {
    running.listen_after_bind();
    *ended = true;
  });
  // Stop() only works once the accept loop runs, so wait for it (the socket already
  // listens: early clients queue in its backlog).
  while (!running.is_running()) {
    if (*ended) return Status::Transport("metrics server on " + address + " ended at once");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return self;
}

void MetricsServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace dpcm::metrics
