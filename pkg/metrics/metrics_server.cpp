#include "pkg/metrics/metrics_server.h"

#include <prometheus/exposer.h>

#include <charconv>
#include <exception>

namespace dpcm::metrics {
namespace {

// Turns "host:port" or ":port" into civetweb's listening_ports syntax ("host:port", or
// "port" for every interface), or returns an error.
Result<std::string> CivetListeningPort(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos) {
    return Status::Config("metrics bind address \"" + address + "\" is not host:port");
  }
  const std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  int number = -1;
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), number);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || number < 0 ||
      number > 65535) {
    return Status::Config("metrics bind address \"" + address + "\" has no valid port");
  }
  return host.empty() ? port : address;
}

}  // namespace

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsServer::~MetricsServer() { Stop(); }

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& address,
                                                            Metrics& metrics) {
  auto listening = CivetListeningPort(address);
  if (!listening.ok()) return listening.status();
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(*listening);
  } catch (const std::exception& e) {
    return Status::Transport("serve metrics on " + address + ": " + e.what());
  }
  exposer->RegisterCollectable(metrics.collectable());
  const auto ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return Status::Transport("serve metrics on " + address + ": no listening port");
  }
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(exposer), ports.front()));
}

void MetricsServer::Stop() { exposer_.reset(); }

}  // namespace dpcm::metrics
