// Serves a Metrics registry over HTTP at /metrics for Prometheus to scrape.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "pkg/metrics/metrics.h"
#include "pkg/status/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace dpcm::metrics {

// The --metrics-bind-address endpoint: a small HTTP server on its own threads answering
// GET /metrics with Metrics::RenderText() (text format 0.0.4). One request per connection,
// so Stop() never waits for an idle keep-alive connection.
//
// (prometheus::Exposer can bind port 0 and report it too, but its civetweb takes two
// seconds to stop once it has served any request; cpp-httplib stops at once.)
class MetricsServer {
 public:
  // Starts serving `metrics` on `address`: ":8080" (every interface, IPv6 and IPv4),
  // "0.0.0.0:8080" (IPv4 only), "127.0.0.1:8080", "[::1]:8080", or port 0 for an
  // ephemeral port (see port()); see listen::Parse and listen::Bind.
  // Fails with kConfig when the address is malformed and kTransport when it cannot be
  // bound (e.g. the port is taken). `metrics` must outlive the server. `on_scraped`, if
  // set, is called on a server thread after each /metrics answer was rendered (its
  // transient memory freed or about to be; the operator returns it to the system).
  static Result<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                      const Metrics& metrics,
                                                      std::function<void()> on_scraped = {});
  // Stops serving.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port (the real one when 0 was asked for).
  int port() const { return port_; }
  // Stops accepting connections, lets requests in progress finish, and joins the server's
  // threads. Safe to call more than once; not concurrently with itself. port() keeps its
  // value.
  void Stop();

 private:
  MetricsServer(std::unique_ptr<httplib::Server> server, int port);

  std::unique_ptr<httplib::Server> server_;
  int port_;
  std::thread thread_;  // runs the accept loop
};

}  // namespace dpcm::metrics
