#include "pkg/health/probe.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "pkg/subprocess/subprocess.h"

namespace dpcm::health {
namespace {

constexpr std::size_t kMaxMessage = 256;

std::string Bounded(std::string text) {
  if (text.size() > kMaxMessage) {
    text.resize(kMaxMessage);
    text += "...";
  }
  return text;
}

std::string FirstLine(const std::string& text) {
  const auto end = text.find('\n');
  return Bounded(text.substr(0, end));
}

CheckResult Fail(Outcome outcome, std::string message) {
  return {outcome, Bounded(std::move(message))};
}

template <typename Duration>
std::pair<time_t, long> SecondsAndMicros(Duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return {static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000)};
}

class HttpChecker final : public Checker {
 public:
  CheckResult Check(const ProbeSpec& spec, const Target& target) const override {
    if (!IsIpAddress(target.pod_ip)) return Fail(Outcome::kError, "pod has no usable IP");
    httplib::Client client(target.pod_ip, spec.http.port);
    const auto [sec, usec] = SecondsAndMicros(spec.timeout);
    client.set_connection_timeout(sec, usec);
    client.set_read_timeout(sec, usec);
    client.set_write_timeout(sec, usec);
    client.set_keep_alive(false);
    auto response = client.Get(spec.http.path);
    if (!response) {
      const auto error = response.error();
      const bool timeout = error == httplib::Error::ConnectionTimeout ||
                           error == httplib::Error::Read || error == httplib::Error::Write;
      return Fail(timeout ? Outcome::kTimeout : Outcome::kFailure,
                  "GET " + spec.http.path + ": " + httplib::to_string(error));
    }
    const int code = response->status;
    const bool status_ok =
        spec.http.expected_status ? code == *spec.http.expected_status : code >= 200 && code < 300;
    if (!status_ok) {
      return Fail(Outcome::kFailure, "GET " + spec.http.path + " returned " + std::to_string(code) +
                                         ": " + FirstLine(response->body));
    }
    if (!spec.http.expected_body.empty() &&
        response->body.find(spec.http.expected_body) == std::string::npos) {
      return Fail(Outcome::kFailure,
                  "GET " + spec.http.path + ": body lacks \"" + spec.http.expected_body + "\"");
    }
    return {Outcome::kSuccess, ""};
  }
};

class TcpChecker final : public Checker {
 public:
  CheckResult Check(const ProbeSpec& spec, const Target& target) const override {
    if (!IsIpAddress(target.pod_ip)) return Fail(Outcome::kError, "pod has no usable IP");
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const std::string port = std::to_string(spec.tcp.port);
    if (getaddrinfo(target.pod_ip.c_str(), port.c_str(), &hints, &found) != 0 || found == nullptr) {
      return Fail(Outcome::kError, "cannot parse the pod IP");
    }
    const int fd = socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      freeaddrinfo(found);
      return Fail(Outcome::kError, std::string("socket: ") + subprocess::ErrorText(errno));
    }
    int rc = connect(fd, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    CheckResult result{Outcome::kSuccess, ""};
    if (rc != 0 && errno != EINPROGRESS) {
      result =
          Fail(Outcome::kFailure, "connect to port " + port + ": " + subprocess::ErrorText(errno));
    } else if (rc != 0) {
      pollfd p{fd, POLLOUT, 0};
      rc = poll(&p, 1, static_cast<int>(spec.timeout.count()));
      int error = 0;
      socklen_t length = sizeof(error);
      if (rc == 0) {
        result = Fail(Outcome::kTimeout, "connect to port " + port + ": timed out");
      } else if (rc < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) != 0 ||
                 error != 0) {
        result = Fail(Outcome::kFailure, "connect to port " + port + ": " +
                                             subprocess::ErrorText(error != 0 ? error : errno));
      }
    }
    close(fd);
    return result;
  }
};

class CommandChecker final : public Checker {
 public:
  CheckResult Check(const ProbeSpec& spec, const Target& target) const override {
    subprocess::RunOptions run;
    run.argv = spec.command.argv;
    run.timeout = spec.timeout;
    run.max_output = std::size_t{64} * 1024;
    run.env = {subprocess::PathEntry(),        "DPCM_NAMESPACE=" + target.ns,
               "DPCM_DOMAIN=" + target.domain, "DPCM_POD=" + target.pod,
               "DPCM_POD_IP=" + target.pod_ip, "DPCM_ROLE=" + target.role};
    for (const auto& [name, value] : spec.command.env) run.env.push_back(name + "=" + value);
    auto ran = subprocess::Run(run);
    if (!ran.ok()) return Fail(Outcome::kError, ran.status().message());
    std::string message = MessageOf(ran->stdout_text);
    if (message.empty()) message = FirstLine(ran->stderr_text);
    if (ran->timed_out) return Fail(Outcome::kTimeout, ran->Describe());
    if (!ran->succeeded()) {
      return Fail(Outcome::kFailure, ran->Describe() + (message.empty() ? "" : ": " + message));
    }
    return {Outcome::kSuccess, Bounded(message)};
  }

 private:
  // {"message": "..."} on stdout, else its first line.
  static std::string MessageOf(const std::string& out) {
    auto parsed = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
    if (parsed.is_object() && parsed.contains("message") && parsed["message"].is_string()) {
      return Bounded(parsed["message"].get<std::string>());
    }
    return FirstLine(out);
  }
};

}  // namespace

bool ProbeSpec::operator==(const ProbeSpec& other) const {
  return period == other.period && timeout == other.timeout &&
         failure_threshold == other.failure_threshold &&
         success_threshold == other.success_threshold && kind == other.kind &&
         http.port == other.http.port && http.path == other.http.path &&
         http.expected_status == other.http.expected_status &&
         http.expected_body == other.http.expected_body && tcp.port == other.tcp.port &&
         command.argv == other.command.argv && command.env == other.command.env;
}

const char* OutcomeLabel(Outcome outcome) {
  switch (outcome) {
    case Outcome::kSuccess:
      return "success";
    case Outcome::kFailure:
      return "failure";
    case Outcome::kTimeout:
      return "timeout";
    case Outcome::kError:
      return "error";
  }
  return "error";
}

std::unique_ptr<Checker> MakeChecker(ProbeKind kind) {
  switch (kind) {
    case ProbeKind::kHttp:
      return std::make_unique<HttpChecker>();
    case ProbeKind::kTcp:
      return std::make_unique<TcpChecker>();
    case ProbeKind::kCommand:
      return std::make_unique<CommandChecker>();
    case ProbeKind::kNone:
      break;
  }
  return nullptr;
}

namespace {

// Stands in for a command check in the operator: runs nothing.
class RefusedCommandChecker final : public Checker {
 public:
  CheckResult Check(const ProbeSpec& /*spec*/, const Target& /*target*/) const override {
    return {Outcome::kError, "command checks run in the member pod, never in the operator"};
  }
};

}  // namespace

std::unique_ptr<Checker> MakeNetworkChecker(ProbeKind kind) {
  if (kind == ProbeKind::kCommand) return std::make_unique<RefusedCommandChecker>();
  return MakeChecker(kind);
}

bool IsIpAddress(const std::string& ip) {
  // inet_pton reads up to the first NUL: "10.0.0.1\0..." is not an address.
  if (ip.find('\0') != std::string::npos) return false;
  in6_addr v6{};
  in_addr v4{};
  return inet_pton(AF_INET, ip.c_str(), &v4) == 1 || inet_pton(AF_INET6, ip.c_str(), &v6) == 1;
}

}  // namespace dpcm::health
