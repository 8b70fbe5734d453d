// Serves a Metrics registry over HTTP at /metrics for Prometheus to scrape.
#pragma once

#include <memory>
#include <string>

#include "pkg/metrics/metrics.h"
#include "pkg/status/status.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace dpcm::metrics {

// The --metrics-bind-address endpoint: prometheus-cpp's Exposer (civetweb) on its own
// threads, answering GET /metrics with Metrics::Collect() in the text format.
class MetricsServer {
 public:
  // Starts serving `metrics` on `address`: ":8080" (every IPv4 interface),
  // "0.0.0.0:8080", "127.0.0.1:8080", or port 0 for an ephemeral port (see port()).
  // Fails with kConfig when the address is malformed and kTransport when it cannot be
  // bound. `metrics` must outlive the server.
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& address, Metrics& metrics);
  // Stops serving.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the real one when 0 was asked for).
  int port() const { return port_; }
  // Stops accepting connections and waits for requests in progress. Safe to call more
  // than once; port() keeps its value.
  void Stop();

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
};

}  // namespace dpcm::metrics
