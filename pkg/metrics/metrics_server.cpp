#include "pkg/metrics/metrics_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>

#include "pkg/listen/listen_address.h"

namespace dpcm::metrics {

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server, int port)
    : server_(std::move(server)), port_(port) {}

MetricsServer::~MetricsServer() { Stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                            const Metrics& metrics,
                                                            std::function<void()> on_scraped) {
  auto bind = listen::Parse(address, "metrics bind address");
  if (!bind.ok()) return bind.status();

  auto server = std::make_unique<httplib::Server>();
  server->new_task_queue = [] { return new httplib::ThreadPool(2); };
  server->set_keep_alive_max_count(1);
  server->Get("/metrics", [&metrics, on_scraped = std::move(on_scraped)](
                              const httplib::Request&, httplib::Response& response) {
    // Served from the rendered text itself, not a copy of it (set_content copies).
    auto text = std::make_shared<const std::string>(metrics.RenderText());
    response.set_content_provider(text->size(), "text/plain; version=0.0.4; charset=utf-8",
                                  [text](size_t offset, size_t length, httplib::DataSink& sink) {
                                    return sink.write(text->data() + offset, length);
                                  });
    if (on_scraped) on_scraped();
  });

  auto port = listen::Bind(*server, *bind);
  if (!port.ok()) return Status::Transport("metrics server: " + port.status().message());

  std::unique_ptr<MetricsServer> self(new MetricsServer(std::move(server), *port));
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
