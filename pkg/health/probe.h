// The health plugin of a domain (spec.health) and the built-in checks: http, tcp, command.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace dpcm::health {

struct HttpProbe {
  int port = 0;
  std::string path = "/healthz";
  std::optional<int> expected_status;  // unset: any 2xx
  std::string expected_body;           // substring the body must contain; "" = any
};

struct TcpProbe {
  int port = 0;
};

struct CommandProbe {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
};

enum class ProbeKind { kNone, kHttp, kTcp, kCommand };

// spec.health with its defaults. kNone: pod readiness and container state only.
struct ProbeSpec {
  std::chrono::milliseconds period{2000};
  std::chrono::milliseconds timeout{1000};
  int failure_threshold = 3;
  int success_threshold = 1;
  ProbeKind kind = ProbeKind::kNone;
  HttpProbe http;
  TcpProbe tcp;
  CommandProbe command;

  bool operator==(const ProbeSpec& other) const;
};

// The member a check runs against. Everything here comes from the cluster and is
// treated as data: the IP must parse as an IP address, names only reach programs as
// environment variables.
struct Target {
  std::string ns;
  std::string domain;
  std::string pod;
  std::string uid;
  std::string pod_ip;
  std::string role;
};

enum class Outcome { kSuccess, kFailure, kTimeout, kError };

// The `result` label of dpcm_health_checks_total.
const char* OutcomeLabel(Outcome outcome);

struct CheckResult {
  Outcome outcome = Outcome::kError;
  std::string message;  // why it failed, or the command's message; bounded in length

  bool healthy() const { return outcome == Outcome::kSuccess; }
};

// One kind of check. Check() blocks for at most about spec.timeout and never throws.
class Checker {
 public:
  virtual ~Checker() = default;
  virtual CheckResult Check(const ProbeSpec& spec, const Target& target) const = 0;
};

// The built-in checker for spec.kind (null for kNone), commands included: for a process
// that runs inside the member pod (the agent), never for the operator.
std::unique_ptr<Checker> MakeChecker(ProbeKind kind);

// The checkers the operator may run: http and tcp connect to the member over the network.
// For kCommand it returns a checker that runs nothing and reports an error, so that a
// command reaching the operator by any path is never executed with its rights.
std::unique_ptr<Checker> MakeNetworkChecker(ProbeKind kind);

// Checks that `ip` is a literal IPv4 or IPv6 address (no host names, no ports).
bool IsIpAddress(const std::string& ip);

}  // namespace dpcm::health
