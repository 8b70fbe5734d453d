// HTTPS to one API server: TLS and credentials from a RestConfig, pooled keep-alive connections.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "pkg/restconfig/rest_config.h"
#include "pkg/status/status.h"

namespace httplib {
class ClientImpl;
}

namespace dpcm::client {

struct HttpResponse {
  int status = 0;
  std::string body;
  std::string retry_after;  // the Retry-After header, if any
};

// Sends requests over a pool of keep-alive connections (one request per connection at
// a time; the pool grows with concurrency). Thread-safe. Transport failures (refused,
// TLS verification, timeouts, dropped connections) come back as kTransport statuses.
class HttpTransport {
 public:
  struct Timeouts {
    std::chrono::milliseconds connect{5000};
    std::chrono::milliseconds request{30000};
  };

  // Validates the server URL and the PEM material up front: a bad CA or key fails
  // here with kConfig rather than on the first request. The first call sets SIGPIPE to
  // ignored for the process, so that a peer closing a connection is an error value.
  static Result<std::unique_ptr<HttpTransport>> Create(restconfig::RestConfig config,
                                                       Timeouts timeouts);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Sends one request and reads the whole response. `content_type` is used when
  // `body` is non-empty.
  Result<HttpResponse> Send(const std::string& method, const std::string& path_and_query,
                            const std::string& body, const std::string& content_type);

  // Opens a streaming GET on a dedicated connection and hands each received chunk to
  // `on_chunk` as it arrives, until the server ends the stream, `on_chunk` returns
  // false, or `stop` fires (which ends a blocked read at once). A non-200 answer is
  // returned as a Status decoded from its body, without calling `on_chunk`; a 200 calls
  // it first with an empty chunk (the stream is open). A stream ended by the server or
  // by `on_chunk` is OK; a stop is kCancelled.
  Status Stream(const std::string& path_and_query, std::chrono::milliseconds read_timeout,
                const std::function<bool(std::string_view)>& on_chunk, const std::stop_token& stop);

  const restconfig::RestConfig& config() const { return config_; }

 private:
  struct Endpoint {
    bool tls = true;
    std::string host;
    int port = 443;
    std::string base_path;
  };

  HttpTransport(restconfig::RestConfig config, Endpoint endpoint, Timeouts timeouts);
  std::unique_ptr<httplib::ClientImpl> Connect(std::chrono::milliseconds read_timeout) const;
  // A pooled connection the server has not closed (`reused` = true), else a new one.
  std::unique_ptr<httplib::ClientImpl> Acquire(bool& reused);
  void Release(std::unique_ptr<httplib::ClientImpl> connection);
  std::vector<std::pair<std::string, std::string>> AuthHeaders() const;

  const restconfig::RestConfig config_;
  const Endpoint endpoint_;
  const Timeouts timeouts_;
  // The kubeconfig's CA bundle as a file (an anonymous memfd, -1 when there is none):
  // cpp-httplib adds the system trust store to every client not given a CA *file*, even
  // after set_ca_cert_store, and the kubeconfig's CA must be the only root (client-go).
  int ca_fd_ = -1;
  std::mutex pool_mutex_;
  std::vector<std::unique_ptr<httplib::ClientImpl>> idle_;  // guarded by pool_mutex_
};

// Decodes an error response into a Status: a metav1.Status body gives the reason and
// message; anything else (HTML from a proxy, garbage) gives the HTTP code and a bounded
// excerpt of the body.
Status DecodeErrorResponse(int http_status, std::string_view body, std::string_view retry_after);

}  // namespace dpcm::client
