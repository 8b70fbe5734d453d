#include "pkg/client/http_transport.h"

#include <httplib.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <mutex>
#include <nlohmann/json.hpp>
#include <system_error>

#include "pkg/base64/base64.h"
#include "pkg/object/object.h"

namespace dpcm::client {
namespace {

constexpr size_t kMaxErrorBody = size_t{64} * 1024;
constexpr size_t kErrorExcerpt = 200;

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct StoreDeleter {
  void operator()(X509_STORE* store) const { X509_STORE_free(store); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;
using X509Ptr = std::unique_ptr<X509, X509Deleter>;
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using StorePtr = std::unique_ptr<X509_STORE, StoreDeleter>;

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// Every certificate in a PEM bundle, in a new store. Null if the bundle holds none.
StorePtr ParseCaBundle(const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  StorePtr store(X509_STORE_new());
  int count = 0;
  while (X509* raw = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    X509Ptr cert(raw);
    if (X509_STORE_add_cert(store.get(), cert.get()) == 1) ++count;
  }
  return count > 0 ? std::move(store) : nullptr;
}

X509Ptr ParseCertificate(const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  return X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

KeyPtr ParsePrivateKey(const std::string& pem) {
  BioPtr bio = MemoryBio(pem);
  return KeyPtr(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

std::string Excerpt(std::string_view body) {
  std::string out(body.substr(0, kErrorExcerpt));
  std::replace_if(
      out.begin(), out.end(), [](char c) { return c == '\n' || c == '\r'; }, ' ');
  if (body.size() > kErrorExcerpt) out += "...";
  return out;
}

// An httplib client that can tell whether its idle connection was closed by the server
// (httplib 0.11 does not check before reusing one). An idle HTTP/1.1 connection has
// nothing to read; if it is readable, the server sent EOF or a TLS close alert.
template <typename Base>
class ProbedClient final : public Base {
 public:
  using Base::Base;
  bool ClosedByPeer() const {
    if (this->socket_.sock == INVALID_SOCKET) return false;  // not connected yet
    pollfd probe{this->socket_.sock, POLLIN, 0};
    return ::poll(&probe, 1, 0) != 0;
  }
};
using ProbedSslClient = ProbedClient<httplib::SSLClient>;
using ProbedPlainClient = ProbedClient<httplib::ClientImpl>;

using object::StringField;

}  // namespace

Status DecodeErrorResponse(int http_status, std::string_view body, std::string_view retry_after) {
  std::optional<std::chrono::seconds> retry;
  int seconds = 0;
  if (!retry_after.empty()) {
    const auto [ptr, ec] =
        std::from_chars(retry_after.data(), retry_after.data() + retry_after.size(), seconds);
    if (ec == std::errc() && seconds >= 0) retry = std::chrono::seconds(seconds);
  }
  const auto parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_object() && StringField(parsed, "kind") == "Status") {
    std::string message = StringField(parsed, "message");
    if (message.empty()) message = "HTTP " + std::to_string(http_status);
    if (!retry && parsed.contains("details") && parsed["details"].is_object()) {
      const auto& details = parsed["details"];
      if (details.contains("retryAfterSeconds") && details["retryAfterSeconds"].is_number()) {
        retry = std::chrono::seconds(details["retryAfterSeconds"].get<int>());
      }
    }
    return Status::FromHttp(http_status, StringField(parsed, "reason"), std::move(message), retry);
  }
  std::string message = "HTTP " + std::to_string(http_status);
  if (!body.empty()) message += ": " + Excerpt(body);
  return Status::FromHttp(http_status, "", std::move(message), retry);
}

HttpTransport::HttpTransport(restconfig::RestConfig config, Endpoint endpoint, Timeouts timeouts)
    : config_(std::move(config)), endpoint_(std::move(endpoint)), timeouts_(timeouts) {}

HttpTransport::~HttpTransport() {
  if (ca_fd_ >= 0) ::close(ca_fd_);
}

Result<std::unique_ptr<HttpTransport>> HttpTransport::Create(restconfig::RestConfig config,
                                                             Timeouts timeouts) {
  // A TLS write to a connection the server closed raises SIGPIPE, which would kill the
  // process; with it ignored the write fails and comes back as a transport error.
  static std::once_flag ignore_sigpipe;
  std::call_once(ignore_sigpipe, [] { std::signal(SIGPIPE, SIG_IGN); });
  Endpoint endpoint;
  std::string_view rest = config.server;
  if (rest.rfind("https://", 0) == 0) {
    rest.remove_prefix(8);
  } else if (rest.rfind("http://", 0) == 0) {
    endpoint.tls = false;
    endpoint.port = 80;
    rest.remove_prefix(7);
  } else {
    return Status::Config("server \"" + config.server + "\" must start with https:// or http://");
  }
  const auto slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) {
    endpoint.base_path = std::string(rest.substr(slash));
    while (!endpoint.base_path.empty() && endpoint.base_path.back() == '/') {
      endpoint.base_path.pop_back();
    }
  }
  std::string_view port_text;
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return Status::Config("bad IPv6 server address");
    endpoint.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size() && authority[close + 1] == ':') {
      port_text = authority.substr(close + 2);
    }
  } else {
    const auto colon = authority.rfind(':');
    endpoint.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port_text = authority.substr(colon + 1);
  }
  if (endpoint.host.empty()) return Status::Config("server \"" + config.server + "\" has no host");
  if (!port_text.empty()) {
    const auto [ptr, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), endpoint.port);
    if (ec != std::errc() || ptr != port_text.data() + port_text.size() || endpoint.port <= 0 ||
        endpoint.port > 65535) {
      return Status::Config("server \"" + config.server + "\" has a bad port");
    }
  }
  if (!config.ca_pem.empty() && !ParseCaBundle(config.ca_pem)) {
    return Status::Config("the certificate authority data holds no PEM certificate");
  }
  if (!config.client_cert_pem.empty()) {
    if (!ParseCertificate(config.client_cert_pem)) {
      return Status::Config("the client certificate is not a PEM certificate");
    }
    if (!ParsePrivateKey(config.client_key_pem)) {
      return Status::Config("the client key is not a PEM private key");
    }
  }
  const bool has_ca = !config.ca_pem.empty();
  std::unique_ptr<HttpTransport> transport(
      new HttpTransport(std::move(config), std::move(endpoint), timeouts));
  if (has_ca) {
    const std::string& pem = transport->config_.ca_pem;
    transport->ca_fd_ = ::memfd_create("dpcm-kubeconfig-ca", MFD_CLOEXEC);
    if (transport->ca_fd_ < 0 ||
        ::write(transport->ca_fd_, pem.data(), pem.size()) != static_cast<ssize_t>(pem.size())) {
      return Status::Config("cannot hold the certificate authority data: " +
                            std::generic_category().message(errno));
    }
  }
  return transport;
}

std::unique_ptr<httplib::ClientImpl> HttpTransport::Connect(
    std::chrono::milliseconds read_timeout) const {
  std::unique_ptr<httplib::ClientImpl> connection;
  if (endpoint_.tls) {
    std::unique_ptr<httplib::SSLClient> ssl;
    if (!config_.client_cert_pem.empty()) {
      // SSLClient takes its own references to the certificate and key.
      X509Ptr cert = ParseCertificate(config_.client_cert_pem);
      KeyPtr key = ParsePrivateKey(config_.client_key_pem);
      ssl =
          std::make_unique<ProbedSslClient>(endpoint_.host, endpoint_.port, cert.get(), key.get());
    } else {
      ssl = std::make_unique<ProbedSslClient>(endpoint_.host, endpoint_.port);
    }
    ssl->enable_server_certificate_verification(!config_.insecure_skip_tls_verify);
    if (ca_fd_ >= 0) {
      // Read by OpenSSL at the first handshake: exactly the kubeconfig's CA bundle.
      ssl->set_ca_cert_path("/proc/self/fd/" + std::to_string(ca_fd_));
    }
    connection = std::move(ssl);
  } else {
    connection = std::make_unique<ProbedPlainClient>(endpoint_.host, endpoint_.port);
  }
  connection->set_keep_alive(true);
  // Requests are small and latency-bound (a failover is a handful of them in a row):
  // without TCP_NODELAY, Nagle's algorithm and delayed ACKs add ~40 ms to each.
  connection->set_tcp_nodelay(true);
  const auto connect_ms = timeouts_.connect.count();
  connection->set_connection_timeout(connect_ms / 1000, (connect_ms % 1000) * 1000);
  connection->set_read_timeout(read_timeout.count() / 1000, (read_timeout.count() % 1000) * 1000);
  connection->set_write_timeout(timeouts_.request.count() / 1000,
                                (timeouts_.request.count() % 1000) * 1000);
  return connection;
}

std::unique_ptr<httplib::ClientImpl> HttpTransport::Acquire(bool& reused) {
  while (true) {
    std::unique_ptr<httplib::ClientImpl> connection;
    {
      std::lock_guard lock(pool_mutex_);
      if (idle_.empty()) break;
      connection = std::move(idle_.back());
      idle_.pop_back();
    }
    // Every pooled connection was made by Connect(), so the downcast is exact.
    const bool closed = endpoint_.tls
                            ? static_cast<const ProbedSslClient&>(*connection).ClosedByPeer()
                            : static_cast<const ProbedPlainClient&>(*connection).ClosedByPeer();
    if (!closed) {
      reused = true;
      return connection;
    }
  }
  reused = false;
  return Connect(timeouts_.request);
}

void HttpTransport::Release(std::unique_ptr<httplib::ClientImpl> connection) {
  static constexpr size_t kMaxIdle = 16;
  std::lock_guard lock(pool_mutex_);
  if (idle_.size() < kMaxIdle) idle_.push_back(std::move(connection));
}

std::vector<std::pair<std::string, std::string>> HttpTransport::AuthHeaders() const {
  std::vector<std::pair<std::string, std::string>> headers;
  if (config_.token) {
    if (std::string token = config_.token->Token(); !token.empty()) {
      headers.emplace_back("Authorization", "Bearer " + token);
      return headers;
    }
  }
  if (!config_.username.empty()) {
    headers.emplace_back("Authorization",
                         "Basic " + base64::Encode(config_.username + ":" + config_.password));
  }
  return headers;
}

Result<HttpResponse> HttpTransport::Send(const std::string& method,
                                         const std::string& path_and_query, const std::string& body,
                                         const std::string& content_type) {
  httplib::Request request;
  request.method = method;
  request.path = endpoint_.base_path + path_and_query;
  request.headers = {{"Accept", "application/json"}, {"User-Agent", "dpcm-operator"}};
  for (auto& [name, value] : AuthHeaders()) request.headers.emplace(name, value);
  if (!body.empty()) {
    request.body = body;
    request.headers.emplace("Content-Type", content_type);
  }
  bool reused = false;
  auto connection = Acquire(reused);
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  bool sent = connection->send(request, response, error);
  // A reused connection can still die between the probe and the write. If the request
  // could not be written, the server never saw it: one retry on a new connection is
  // safe for any verb. After a read error only a GET is repeated.
  if (!sent && reused &&
      (error == httplib::Error::Write || (error == httplib::Error::Read && method == "GET"))) {
    connection = Connect(timeouts_.request);
    response = httplib::Response();
    sent = connection->send(request, response, error);
  }
  if (!sent) {
    // The connection is in an unknown state: drop it rather than pooling it.
    std::string what = httplib::to_string(error);
    if (error == httplib::Error::SSLServerVerification) {
      what += " (the server certificate did not verify against the configured CA)";
    }
    return Status::Transport(method + " " + path_and_query + ": " + what);
  }
  Release(std::move(connection));
  HttpResponse out;
  out.status = response.status;
  out.body = std::move(response.body);
  out.retry_after = response.get_header_value("Retry-After");
  return out;
}

Status HttpTransport::Stream(const std::string& path_and_query,
                             std::chrono::milliseconds read_timeout,
                             const std::function<bool(std::string_view)>& on_chunk,
                             const std::stop_token& stop) {
  if (stop.stop_requested()) return Status::Cancelled("stream stopped before it opened");
  auto connection = Connect(read_timeout);
  std::stop_callback on_stop(stop, [&connection] { connection->stop(); });

  httplib::Request request;
  request.method = "GET";
  request.path = endpoint_.base_path + path_and_query;
  request.headers = {{"Accept", "application/json"}, {"User-Agent", "dpcm-operator"}};
  for (auto& [name, value] : AuthHeaders()) request.headers.emplace(name, value);

  int http_status = 0;
  std::string retry_after;
  std::string error_body;
  bool receiver_stopped = false;
  request.response_handler = [&](const httplib::Response& response) {
    http_status = response.status;
    retry_after = response.get_header_value("Retry-After");
    // A stop that fired before send() opened the socket found nothing to shut down;
    // catch it here, or an idle watch would block until the server ends it.
    if (stop.stop_requested()) return false;
    // The stream is open: say so with an empty chunk (a quiet watch may send nothing
    // for minutes, and its caller wants to know the server is back).
    if (http_status == 200 && !on_chunk(std::string_view())) {
      receiver_stopped = true;
      return false;
    }
    return true;
  };
  request.content_receiver = [&](const char* data, size_t length, uint64_t /*offset*/,
                                 uint64_t /*total*/) {
    if (http_status != 200) {
      error_body.append(
          data, std::min(length, kMaxErrorBody - std::min(kMaxErrorBody, error_body.size())));
      return true;
    }
    if (!on_chunk(std::string_view(data, length))) {
      receiver_stopped = true;
      return false;
    }
    return true;
  };
  httplib::Response response;
  httplib::Error error = httplib::Error::Success;
  const bool sent = connection->send(request, response, error);
  if (stop.stop_requested()) return Status::Cancelled("stream stopped");
  if (http_status != 0 && http_status != 200) {
    return DecodeErrorResponse(http_status, error_body, retry_after);
  }
  if (!sent && !receiver_stopped) {
    // After a 200, a read error is the stream ending (idle timeout, server restart).
    if (http_status == 200) return Status::Ok();
    return Status::Transport("GET " + path_and_query + ": " + httplib::to_string(error));
  }
  return Status::Ok();
}

}  // namespace dpcm::client
