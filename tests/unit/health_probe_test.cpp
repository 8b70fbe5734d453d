// The built-in health checks against real servers and programs on 127.0.0.1: http, tcp, command,
// and the pod data (IP, names) that must stay data.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pkg/health/probe.h"
#include "tests/support/local_http_server.h"
#include "tests/support/temp_dir.h"

namespace dpcm::health {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

std::chrono::milliseconds Since(Steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start);
}

// An application's health endpoints on 127.0.0.1, on a free port, served from a thread.
class AppServer {
 public:
  int port() const { return http_.port(); }

 private:
  testing::LocalHttpServer http_{[this](httplib::Server& server) {
    server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server.Get("/unhealthy", [](const httplib::Request&, httplib::Response& res) {
      res.status = 503;
      res.set_content("database down\nsecond line", "text/plain");
    });
    server.Get("/teapot", [](const httplib::Request&, httplib::Response& res) {
      res.status = 418;
      res.set_content("short and stout", "text/plain");
    });
    server.Get("/body", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("status: green", "text/plain");
    });
    // Answers after 3 s, or as soon as the server is shutting down.
    server.Get("/slow", [this](const httplib::Request&, httplib::Response& res) {
      const auto until = Steady::now() + 3s;
      while (!http_.stopping() && Steady::now() < until) std::this_thread::sleep_for(10ms);
      res.set_content("late", "text/plain");
    });
  }};
};

// A TCP socket on 127.0.0.1 that is bound (so the port stays taken) and, unless listen() is
// called, refuses connections. accepted() tells whether anyone connected.
class RawSocket {
 public:
  RawSocket() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    address.sin_port = 0;
    socklen_t length = sizeof(address);
    // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast)
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
      throw std::runtime_error("RawSocket: cannot bind 127.0.0.1, errno " + std::to_string(errno));
    }
    // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
    port_ = ntohs(address.sin_port);
  }
  ~RawSocket() { close(fd_); }
  RawSocket(const RawSocket&) = delete;
  RawSocket& operator=(const RawSocket&) = delete;

  void Listen() { listen(fd_, 16); }
  bool Accepted() {
    const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) return false;
    close(client);
    return true;
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

Target LocalTarget() { return {"default", "web", "web-0", "uid-web-0", "127.0.0.1", "dc"}; }

ProbeSpec HttpSpec(int port, const std::string& path) {
  ProbeSpec spec;
  spec.kind = ProbeKind::kHttp;
  spec.http.port = port;
  spec.http.path = path;
  return spec;
}

ProbeSpec CommandSpec(std::vector<std::string> argv, std::chrono::milliseconds timeout = 5000ms) {
  ProbeSpec spec;
  spec.kind = ProbeKind::kCommand;
  spec.period =
      std::max(spec.period, std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  spec.timeout = timeout;
  spec.command.argv = std::move(argv);
  return spec;
}

CheckResult CheckWith(const ProbeSpec& spec, const Target& target = LocalTarget()) {
  const auto checker = MakeChecker(spec.kind);
  REQUIRE(checker != nullptr);
  return checker->Check(spec, target);
}

TEST_CASE("IsIpAddress accepts literal IPv4 and IPv6 addresses only") {
  for (const char* ip : {"10.0.0.1", "127.0.0.1", "0.0.0.0", "::1", "fd00::1",
                         "2001:db8::8a2e:370:7334", "::ffff:10.0.0.1"}) {
    CAPTURE(std::string(ip));
    CHECK(IsIpAddress(ip));
  }
  for (const std::string& ip : std::vector<std::string>{
           "", "10.0.0.1;rm", "evil.example.com", "localhost", "10.0.0.1:8080", "[::1]",
           " 10.0.0.1", "10.0.0.1 ", "10.0.0.256", "10.0.0", "0x7f.0.0.1", "10.0.0.1\n",
           "fe80::1%eth0", std::string("10.0.0.1\0;rm -rf /", 18)}) {
    CAPTURE(ip);
    CHECK_FALSE(IsIpAddress(ip));
  }
}

TEST_CASE("MakeChecker has a checker for http, tcp and command, none for kNone") {
  CHECK(MakeChecker(ProbeKind::kNone) == nullptr);
  CHECK(MakeChecker(ProbeKind::kHttp) != nullptr);
  CHECK(MakeChecker(ProbeKind::kTcp) != nullptr);
  CHECK(MakeChecker(ProbeKind::kCommand) != nullptr);
  CHECK(std::string(OutcomeLabel(Outcome::kSuccess)) == "success");
  CHECK(std::string(OutcomeLabel(Outcome::kFailure)) == "failure");
  CHECK(std::string(OutcomeLabel(Outcome::kTimeout)) == "timeout");
  CHECK(std::string(OutcomeLabel(Outcome::kError)) == "error");
}

TEST_CASE("MakeNetworkChecker, the operator's, runs http and tcp but never a command") {
  CHECK(MakeNetworkChecker(ProbeKind::kNone) == nullptr);
  CHECK(MakeNetworkChecker(ProbeKind::kHttp) != nullptr);
  CHECK(MakeNetworkChecker(ProbeKind::kTcp) != nullptr);
  testing::TempDir dir;
  const std::string marker = (dir.path() / "ran").string();
  const ProbeSpec spec = CommandSpec({"/bin/sh", "-c", "touch " + marker + "; id"});
  const auto checker = MakeNetworkChecker(ProbeKind::kCommand);
  REQUIRE(checker != nullptr);
  const CheckResult result = checker->Check(spec, LocalTarget());
  CHECK(result.outcome == Outcome::kError);
  CHECK(result.message.find("never in the operator") != std::string::npos);
  CHECK(result.message.find("uid=") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(marker));
}

TEST_CASE("http check is healthy when the pod answers 2xx on its port and path") {
  AppServer app;
  const auto result = CheckWith(HttpSpec(app.port(), "/healthz"));
  CHECK_MESSAGE(result.healthy(), result.message);
  CHECK(result.outcome == Outcome::kSuccess);
  CHECK(result.message.empty());
}

TEST_CASE("http check fails on a non-2xx answer and names the status in its message") {
  AppServer app;
  const auto result = CheckWith(HttpSpec(app.port(), "/unhealthy"));
  CHECK(result.outcome == Outcome::kFailure);
  CHECK(result.message.find("503") != std::string::npos);
  CHECK(result.message.find("/unhealthy") != std::string::npos);
  CHECK(result.message.find("database down") != std::string::npos);
  CHECK(result.message.find("second line") == std::string::npos);

  const auto missing = CheckWith(HttpSpec(app.port(), "/no-such-path"));
  CHECK(missing.outcome == Outcome::kFailure);
  CHECK(missing.message.find("404") != std::string::npos);
}

TEST_CASE("http check honours expectedStatus and expectedBody") {
  AppServer app;
  ProbeSpec teapot = HttpSpec(app.port(), "/teapot");
  CHECK(CheckWith(teapot).outcome == Outcome::kFailure);  // 418 is not 2xx
  teapot.http.expected_status = 418;
  CHECK(CheckWith(teapot).healthy());

  ProbeSpec ok_but_wrong_status = HttpSpec(app.port(), "/healthz");
  ok_but_wrong_status.http.expected_status = 204;
  const auto wrong = CheckWith(ok_but_wrong_status);
  CHECK(wrong.outcome == Outcome::kFailure);
  CHECK(wrong.message.find("200") != std::string::npos);

  ProbeSpec body = HttpSpec(app.port(), "/body");
  body.http.expected_body = "green";
  CHECK(CheckWith(body).healthy());
  body.http.expected_body = "red";
  const auto lacking = CheckWith(body);
  CHECK(lacking.outcome == Outcome::kFailure);
  CHECK(lacking.message.find("red") != std::string::npos);
}

TEST_CASE("http check of a server slower than the timeout is a timeout within about the timeout") {
  AppServer app;
  ProbeSpec spec = HttpSpec(app.port(), "/slow");
  spec.timeout = 300ms;
  const auto start = Steady::now();
  const auto result = CheckWith(spec);
  const auto elapsed = Since(start);
  CHECK(result.outcome == Outcome::kTimeout);
  CHECK_FALSE(result.healthy());
  CHECK(elapsed >= 250ms);
  CHECK(elapsed < 300ms + 1500ms);
}

TEST_CASE("http and tcp checks fail at once when the port refuses connections") {
  RawSocket closed;  // bound, not listening: connections are refused
  const auto start = Steady::now();
  const auto http = CheckWith(HttpSpec(closed.port(), "/healthz"));
  CHECK(http.outcome == Outcome::kFailure);
  CHECK_FALSE(http.message.empty());

  ProbeSpec tcp;
  tcp.kind = ProbeKind::kTcp;
  tcp.tcp.port = closed.port();
  const auto result = CheckWith(tcp);
  CHECK(result.outcome == Outcome::kFailure);
  CHECK(result.message.find(std::to_string(closed.port())) != std::string::npos);
  CHECK(Since(start) < 1500ms);
}

TEST_CASE("tcp check is healthy when the port accepts a connection") {
  RawSocket open;
  open.Listen();
  ProbeSpec spec;
  spec.kind = ProbeKind::kTcp;
  spec.tcp.port = open.port();
  const auto result = CheckWith(spec);
  CHECK_MESSAGE(result.healthy(), result.message);
  CHECK(open.Accepted());
}

TEST_CASE("http and tcp checks refuse a pod IP that is not an IP address, without connecting") {
  RawSocket listener;
  listener.Listen();
  ProbeSpec http = HttpSpec(listener.port(), "/healthz");
  ProbeSpec tcp;
  tcp.kind = ProbeKind::kTcp;
  tcp.tcp.port = listener.port();
  for (const std::string& ip :
       std::vector<std::string>{"10.0.0.1;rm", "evil.example.com", "localhost",
                                "127.0.0.1:" + std::to_string(listener.port()), "",
                                "$(touch /tmp/dpcm-probe-test)", std::string("127.0.0.1\0x", 11)}) {
    CAPTURE(ip);
    Target target = LocalTarget();
    target.pod_ip = ip;
    for (const ProbeSpec& spec : {http, tcp}) {
      const auto start = Steady::now();
      const auto result = CheckWith(spec, target);
      CHECK(result.outcome == Outcome::kError);
      CHECK(result.message.find("IP") != std::string::npos);
      CHECK(Since(start) < 1000ms);  // no DNS lookup, no connect timeout
    }
  }
  CHECK_FALSE(listener.Accepted());
}

TEST_CASE("command check passes on exit 0 and takes its message from JSON stdout") {
  const auto json_message = CheckWith(CommandSpec({"/bin/echo", R"({"message":"lag 3s"})"}));
  CHECK_MESSAGE(json_message.healthy(), json_message.message);
  CHECK(json_message.message == "lag 3s");

  const auto plain = CheckWith(CommandSpec({"/bin/sh", "-c", "printf 'first\\nsecond\\n'"}));
  CHECK(plain.healthy());
  CHECK(plain.message == "first");

  const auto silent = CheckWith(CommandSpec({"/bin/true"}));
  CHECK(silent.healthy());
  CHECK(silent.message.empty());
}

TEST_CASE("command check fails on a non-zero exit with the status and the program's message") {
  const auto failed =
      CheckWith(CommandSpec({"/bin/sh", "-c", R"(echo '{"message":"replica lagging"}'; exit 1)"}));
  CHECK(failed.outcome == Outcome::kFailure);
  CHECK(failed.message.find("exit status 1") != std::string::npos);
  CHECK(failed.message.find("replica lagging") != std::string::npos);

  const auto stderr_only =
      CheckWith(CommandSpec({"/bin/sh", "-c", "echo 'disk full' >&2; exit 2"}));
  CHECK(stderr_only.outcome == Outcome::kFailure);
  CHECK(stderr_only.message.find("exit status 2") != std::string::npos);
  CHECK(stderr_only.message.find("disk full") != std::string::npos);

  const auto missing = CheckWith(CommandSpec({"/nonexistent/dpcm-check"}));
  CHECK(missing.outcome == Outcome::kError);
  CHECK_FALSE(missing.message.empty());
}

TEST_CASE("command check of a hanging program is a timeout within about the timeout") {
  const auto start = Steady::now();
  const auto result = CheckWith(CommandSpec({"/bin/sleep", "30"}, 300ms));
  const auto elapsed = Since(start);
  CHECK(result.outcome == Outcome::kTimeout);
  CHECK(result.message.find("timed out") != std::string::npos);
  CHECK(elapsed < 300ms + 1500ms);
}

TEST_CASE("command check bounds the message of a program writing megabytes") {
  const std::string flood = "head -c 20000000 /dev/zero | tr '\\0' x";
  const auto start = Steady::now();
  const auto passing = CheckWith(CommandSpec({"/bin/sh", "-c", flood}, 10000ms));
  CHECK_MESSAGE(passing.healthy(), passing.message.substr(0, 100));
  CHECK_FALSE(passing.message.empty());
  CHECK(passing.message.size() <= 300);

  const auto failing = CheckWith(CommandSpec({"/bin/sh", "-c", flood + "; exit 1"}, 10000ms));
  CHECK(failing.outcome == Outcome::kFailure);
  CHECK(failing.message.size() <= 300);

  const auto json_flood =
      CheckWith(CommandSpec({"/bin/sh", "-c",
                             "printf '{\"message\":\"'; head -c 100000 /dev/zero | tr '\\0' y; "
                             "printf '\"}'"},
                            10000ms));
  CHECK(json_flood.message.size() <= 300);
  CHECK(Since(start) < 10000ms);
}

TEST_CASE("command check hands hostile pod names to the program as data, never as shell code") {
  testing::TempDir dir;
  const std::string marker = (dir.path() / "F").string();
  const std::string hostile = "$(touch " + marker + ")`touch " + marker + "`;touch " + marker +
                              "|touch " + marker + "&& touch " + marker + " 'q' \"d\"\nnext line";
  Target target = LocalTarget();
  target.ns = "ns-" + hostile;
  target.domain = "domain-" + hostile;
  target.pod = "pod-" + hostile;
  target.role = "pc";

  // The program itself is /usr/bin/env: nothing but the environment reaches it.
  const auto env_only = CheckWith(CommandSpec({"/usr/bin/env"}), target);
  CHECK_MESSAGE(env_only.healthy(), env_only.message);
  CHECK(env_only.message.rfind("PATH=", 0) == 0);

  // A script that copies its environment to a file (the script only expands "$1").
  const std::string out = (dir.path() / "env.txt").string();
  ProbeSpec spec = CommandSpec({"/bin/sh", "-c", "/usr/bin/env > \"$1\"", "sh", out});
  spec.command.env = {{"EXTRA", hostile}};
  const auto copied = CheckWith(spec, target);
  CHECK_MESSAGE(copied.healthy(), copied.message);
  std::ifstream in(out);
  std::stringstream content;
  content << in.rdbuf();
  const std::string env = content.str();
  CHECK(env.find("DPCM_NAMESPACE=ns-" + hostile + "\n") != std::string::npos);
  CHECK(env.find("DPCM_DOMAIN=domain-" + hostile + "\n") != std::string::npos);
  CHECK(env.find("DPCM_POD=pod-" + hostile + "\n") != std::string::npos);
  CHECK(env.find("DPCM_POD_IP=127.0.0.1\n") != std::string::npos);
  CHECK(env.find("DPCM_ROLE=pc\n") != std::string::npos);
  CHECK(env.find("EXTRA=" + hostile + "\n") != std::string::npos);
  CHECK(env.find("HOME=") == std::string::npos);
  CHECK_FALSE(std::filesystem::exists(marker));
}

}  // namespace
}  // namespace dpcm::health
