// listen::Parse and listen::Bind: the flags' address forms, and a default address that
// answers on IPv6 and IPv4 alike.
#include "pkg/listen/listen_address.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <string>
#include <thread>

namespace dpcm::listen {
namespace {

// A server bound by listen::Bind, answering GET /healthz, stopped and joined on the way out.
class Probe {
 public:
  explicit Probe(const std::string& address) {
    server_.Get("/healthz", [](const httplib::Request&, httplib::Response& response) {
      response.set_content("ok", "text/plain");
    });
    auto parsed = Parse(address, "--test-address");
    REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
    auto bound = Bind(server_, *parsed);
    REQUIRE_MESSAGE(bound.ok(), bound.status().ToString());
    port_ = *bound;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() works once the accept loop runs (the socket listens already).
    while (!server_.is_running()) std::this_thread::yield();
  }
  ~Probe() {
    server_.stop();
    thread_.join();
  }
  Probe(const Probe&) = delete;
  Probe& operator=(const Probe&) = delete;

  int port() const { return port_; }
  // Whether GET /healthz through `host` answers "ok".
  bool Answers(const std::string& host) const {
    httplib::Client client(host, port_);
    client.set_connection_timeout(2);
    const auto response = client.Get("/healthz");
    return response && response->status == 200 && response->body == "ok";
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
};

TEST_CASE("listen::Parse takes :port, host:port and [v6]:port, and names the flag on errors") {
  struct Case {
    const char* address;
    const char* host;
    int port;
  };
  for (const Case& c :
       {Case{":8080", "", 8080}, Case{"0.0.0.0:8081", "0.0.0.0", 8081}, Case{"[::]:9", "::", 9},
        Case{"[::1]:0", "::1", 0}, Case{"127.0.0.1:65535", "127.0.0.1", 65535},
        Case{"localhost:80", "localhost", 80}}) {
    CAPTURE(c.address);
    const auto parsed = Parse(c.address, "--x");
    REQUIRE(parsed.ok());
    CHECK(parsed->host == c.host);
    CHECK(parsed->port == c.port);
  }
  for (const char* bad : {"8080", "", ":", ":http", ":70000", ":-1", "::1:8080", "[::1]"}) {
    CAPTURE(bad);
    const auto parsed = Parse(bad, "--metrics-bind-address");
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kConfig);
    CHECK(parsed.status().message().find("--metrics-bind-address") != std::string::npos);
  }
  CHECK(Format({"", 8080}) == ":8080");
  CHECK(Format({"::1", 80}) == "[::1]:80");
  CHECK(Format({"127.0.0.1", 80}) == "127.0.0.1:80");
}

TEST_CASE("listen::Bind with no host answers on [::1] and 127.0.0.1 through one socket") {
  const Probe probe(":0");
  CHECK(probe.port() > 0);
  CHECK(probe.Answers("127.0.0.1"));
  CHECK(probe.Answers("::1"));
  // "[::]" is the same dual-stack socket, spelled out.
  const Probe spelled("[::]:0");
  CHECK(spelled.Answers("127.0.0.1"));
  CHECK(spelled.Answers("::1"));
}

TEST_CASE("listen::Bind keeps an explicit family: 0.0.0.0 is IPv4 only, [::1] IPv6 only") {
  const Probe v4("0.0.0.0:0");
  CHECK(v4.Answers("127.0.0.1"));
  CHECK_FALSE(v4.Answers("::1"));
  const Probe v6("[::1]:0");
  CHECK(v6.Answers("::1"));
  CHECK_FALSE(v6.Answers("127.0.0.1"));
}

TEST_CASE("listen::Bind refuses a port another socket holds, on either family") {
  const Probe holder(":0");
  for (const std::string& address :
       {":" + std::to_string(holder.port()), "127.0.0.1:" + std::to_string(holder.port()),
        "[::1]:" + std::to_string(holder.port())}) {
    CAPTURE(address);
    httplib::Server second;
    const auto bound = Bind(second, *Parse(address, "--x"));
    CHECK(bound.status().IsTransport());
  }
}

}  // namespace
}  // namespace dpcm::listen
