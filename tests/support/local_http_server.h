// An httplib server on 127.0.0.1 and a free port, served from its own thread while it lives.
#pragma once

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>

namespace dpcm::testing {

// Stands in for an application endpoint in unit tests. Declare it after any state its
// handlers use, so that it stops (and its handlers end) before that state goes.
class LocalHttpServer {
 public:
  // `routes` installs the handlers; the server answers once the constructor returns.
  explicit LocalHttpServer(const std::function<void(httplib::Server&)>& routes) {
    routes(server_);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~LocalHttpServer() {
    stopping_ = true;
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  LocalHttpServer(const LocalHttpServer&) = delete;
  LocalHttpServer& operator=(const LocalHttpServer&) = delete;

  int port() const { return port_; }
  // True once the server is shutting down: a deliberately slow handler should return.
  bool stopping() const { return stopping_; }

 private:
  httplib::Server server_;
  std::atomic<bool> stopping_{false};
  int port_ = 0;
  std::thread thread_;
};

}  // namespace dpcm::testing
