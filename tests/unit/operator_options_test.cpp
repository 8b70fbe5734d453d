// Operator flags: kubebuilder names, both value syntaxes, and errors that name the flag.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "cmd/dpcm-operator/options.h"
#include "tests/support/temp_dir.h"

namespace dpcm::operator_main {
namespace {

Result<OperatorOptions> Parse(std::vector<const char*> args) {
  args.insert(args.begin(), "dpcm-operator");
  return ParseOptions(static_cast<int>(args.size()), args.data());
}

OperatorOptions ParseOk(const std::vector<const char*>& args) {
  auto options = Parse(args);
  INFO(options.status().ToString());
  REQUIRE(options.ok());
  return *options;
}

// Parses `args`, expects a kConfig error and returns its message.
std::string ParseError(const std::vector<const char*>& args) {
  const auto options = Parse(args);
  REQUIRE_FALSE(options.ok());
  CHECK(options.status().code() == StatusCode::kConfig);
  return options.status().message();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("ParseOptions without flags gives the documented defaults") {
  const OperatorOptions o = ParseOk({});
  CHECK(o.kubeconfig.empty());
  CHECK(o.namespaces.empty());
  CHECK_FALSE(o.leader_elect);
  CHECK(o.leader_election_id == "dpcm-operator");
  CHECK(o.leader_election_namespace.empty());
  CHECK(o.lease_duration_seconds == 15);
  CHECK(o.renew_deadline_seconds == 10);
  CHECK(o.retry_period_seconds == 2);
  CHECK(o.metrics_bind_address == ":8080");
  CHECK(o.health_probe_bind_address == ":8081");
  CHECK(o.workers == 4);
  CHECK(o.kube_api_qps == doctest::Approx(20));
  CHECK(o.kube_api_burst == 30);
  CHECK(o.log_level == "info");
  CHECK(o.log_format == "text");
  CHECK(o.agent_image == "ghcr.io/dpcm/dpcm-operator:0.1.0");
  CHECK(o.agent_role_bind_address == "127.0.0.1:8720");
  CHECK_FALSE(o.help);
}

TEST_CASE("ParseOptions reads every flag as --flag=value") {
  const OperatorOptions o = ParseOk(
      {"--kubeconfig=/home/me/.kube/config", "--namespace=shop", "--leader-elect=true",
       "--leader-election-id=dpcm-lock", "--leader-election-namespace=dpcm-system",
       "--leader-election-lease-duration=30", "--leader-election-renew-deadline=20",
       "--leader-election-retry-period=4", "--metrics-bind-address=0",
       "--health-probe-bind-address=127.0.0.1:9443", "--workers=16", "--kube-api-qps=50.5",
       "--kube-api-burst=100", "--log-level=debug", "--log-format=json",
       "--agent-image=registry.example.com/dpcm:2", "--agent-role-bind-address=$(POD_IP):8720"});
  CHECK(o.kubeconfig == "/home/me/.kube/config");
  CHECK(o.namespaces == std::vector<std::string>{"shop"});
  CHECK(o.leader_elect);
  CHECK(o.leader_election_id == "dpcm-lock");
  CHECK(o.leader_election_namespace == "dpcm-system");
  CHECK(o.lease_duration_seconds == 30);
  CHECK(o.renew_deadline_seconds == 20);
  CHECK(o.retry_period_seconds == 4);
  CHECK(o.metrics_bind_address == "0");
  CHECK(o.health_probe_bind_address == "127.0.0.1:9443");
  CHECK(o.workers == 16);
  CHECK(o.kube_api_qps == doctest::Approx(50.5));
  CHECK(o.kube_api_burst == 100);
  CHECK(o.log_level == "debug");
  CHECK(o.log_format == "json");
  CHECK(o.agent_image == "registry.example.com/dpcm:2");
  CHECK(o.agent_role_bind_address == "$(POD_IP):8720");
}

TEST_CASE("ParseOptions reads every value flag as --flag value") {
  const OperatorOptions o = ParseOk({"--kubeconfig",
                                     "/tmp/kc",
                                     "--namespace",
                                     "shop",
                                     "--leader-election-id",
                                     "lock",
                                     "--leader-election-namespace",
                                     "ops",
                                     "--leader-election-lease-duration",
                                     "60",
                                     "--leader-election-renew-deadline",
                                     "40",
                                     "--leader-election-retry-period",
                                     "5",
                                     "--metrics-bind-address",
                                     ":18080",
                                     "--health-probe-bind-address",
                                     ":18081",
                                     "--workers",
                                     "2",
                                     "--kube-api-qps",
                                     "7",
                                     "--kube-api-burst",
                                     "9",
                                     "--log-level",
                                     "warn",
                                     "--log-format",
                                     "text"});
  CHECK(o.kubeconfig == "/tmp/kc");
  CHECK(o.namespaces == std::vector<std::string>{"shop"});
  CHECK(o.leader_election_id == "lock");
  CHECK(o.leader_election_namespace == "ops");
  CHECK(o.lease_duration_seconds == 60);
  CHECK(o.renew_deadline_seconds == 40);
  CHECK(o.retry_period_seconds == 5);
  CHECK(o.metrics_bind_address == ":18080");
  CHECK(o.health_probe_bind_address == ":18081");
  CHECK(o.workers == 2);
  CHECK(o.kube_api_qps == doctest::Approx(7));
  CHECK(o.kube_api_burst == 9);
  CHECK(o.log_level == "warn");
  CHECK(o.log_format == "text");
}

TEST_CASE("ParseOptions: a value may contain '=' and the last occurrence of a flag wins") {
  const OperatorOptions o = ParseOk({"--kubeconfig=/a=b/config", "--workers=2", "--workers", "3"});
  CHECK(o.kubeconfig == "/a=b/config");
  CHECK(o.workers == 3);
}

TEST_CASE("ParseOptions collects a repeated --namespace, an empty one means all") {
  CHECK(ParseOk({"--namespace", "a", "--namespace=b", "--namespace", "c"}).namespaces ==
        std::vector<std::string>{"a", "b", "c"});
  CHECK(ParseOk({"--namespace="}).namespaces.empty());
  CHECK(ParseOk({"--namespace", ""}).namespaces.empty());
}

TEST_CASE("ParseOptions: bool flags stand alone or take =true/=false") {
  CHECK(ParseOk({"--leader-elect"}).leader_elect);
  CHECK(ParseOk({"--leader-elect=true"}).leader_elect);
  CHECK(ParseOk({"--leader-elect=1"}).leader_elect);
  CHECK_FALSE(ParseOk({"--leader-elect=false"}).leader_elect);
  CHECK_FALSE(ParseOk({"--leader-elect=0"}).leader_elect);
  CHECK_FALSE(ParseOk({"--leader-elect", "--leader-elect=false"}).leader_elect);
  CHECK(ParseOk({"--help"}).help);
  CHECK(ParseOk({"-h"}).help);
  // A bool flag does not take the next argument as its value.
  const OperatorOptions o = ParseOk({"--leader-elect", "--workers", "2"});
  CHECK(o.leader_elect);
  CHECK(o.workers == 2);
  CHECK(Contains(ParseError({"--leader-elect", "false"}), "\"false\""));

  const std::string message = ParseError({"--leader-elect=yes"});
  CHECK(Contains(message, "--leader-elect"));
  CHECK(Contains(message, "yes"));
  CHECK(Contains(ParseError({"--leader-elect="}), "--leader-elect"));
}

TEST_CASE("ParseOptions rejects unknown flags and positional arguments, naming them") {
  CHECK(Contains(ParseError({"--metrics-addr=:9090"}), "--metrics-addr"));
  CHECK(Contains(ParseError({"--enable-leader-election"}), "--enable-leader-election"));
  CHECK(Contains(ParseError({"--workers=2", "--namespac", "shop"}), "--namespac"));
  CHECK(Contains(ParseError({"-v"}), "-v"));
  CHECK(Contains(ParseError({"shop"}), "shop"));
}

TEST_CASE("ParseOptions rejects a value flag at the end without its value") {
  for (const char* flag : {"--kubeconfig", "--namespace", "--workers", "--kube-api-qps",
                           "--log-format", "--leader-election-id"}) {
    CAPTURE(flag);
    const std::string message = ParseError({"--leader-elect", flag});
    CHECK(Contains(message, flag));
    CHECK(Contains(message, "value"));
  }
}

TEST_CASE("ParseOptions rejects bad integers, naming the flag and the value") {
  for (const char* flag : {"workers", "kube-api-burst", "leader-election-lease-duration",
                           "leader-election-renew-deadline", "leader-election-retry-period"}) {
    for (const char* value : {"0", "-1", "four", "4x", "", "2.5", " 4", "99999999999"}) {
      const std::string arg = std::string("--") + flag + "=" + value;
      CAPTURE(arg);
      const std::string message = ParseError({arg.c_str()});
      CHECK(Contains(message, std::string("--") + flag));
      CHECK(Contains(message, std::string("\"") + value + "\""));
    }
  }
}

TEST_CASE("ParseOptions rejects a --kube-api-qps that is not a number") {
  for (const char* value : {"fast", "", "10x", "1e999", "20 qps"}) {
    CAPTURE(value);
    const std::string message = ParseError({"--kube-api-qps", value});
    CHECK(Contains(message, "--kube-api-qps"));
    CHECK(Contains(message, std::string("\"") + value + "\""));
  }
  CHECK(ParseOk({"--kube-api-qps=0.5"}).kube_api_qps == doctest::Approx(0.5));
  CHECK(ParseOk({"--kube-api-qps=1e2"}).kube_api_qps == doctest::Approx(100));
}

TEST_CASE("ParseOptions accepts --log-format json or text only") {
  CHECK(ParseOk({"--log-format=json"}).log_format == "json");
  CHECK(ParseOk({"--log-format=text"}).log_format == "text");
  for (const char* value : {"yaml", "JSON", "", "logfmt"}) {
    CAPTURE(value);
    const std::string message = ParseError({"--log-format", value});
    CHECK(Contains(message, "--log-format"));
    CHECK(Contains(message, std::string("\"") + value + "\""));
  }
}

TEST_CASE("Usage lists every flag ParseOptions accepts") {
  const std::string usage = Usage();
  for (const char* flag : {"--kubeconfig", "--namespace", "--leader-elect", "--leader-election-id",
                           "--leader-election-namespace", "--leader-election-lease-duration",
                           "--leader-election-renew-deadline", "--leader-election-retry-period",
                           "--metrics-bind-address", "--health-probe-bind-address", "--workers",
                           "--kube-api-qps", "--kube-api-burst", "--log-level", "--log-format",
                           "--agent-image", "--agent-role-bind-address", "--help"}) {
    CAPTURE(flag);
    CHECK(Contains(usage, flag));
    // And ParseOptions knows it.
    const std::string arg =
        std::string(flag) + "=" +
        (std::string(flag) == "--leader-elect" || std::string(flag) == "--help" ? "true"
         : std::string(flag) == "--log-format"                                  ? "json"
                                                                                : "3");
    CAPTURE(arg);
    CHECK(Parse({arg.c_str()}).ok());
  }
}

TEST_CASE("the leader election namespace: the flag, else the service account's, else an error") {
  testing::TempDir dir;
  const std::string file = dir.Write("namespace", "dpcm-system\n");
  CHECK(*LeaderElectionNamespace(ParseOk({"--leader-elect"}), file) == "dpcm-system");
  CHECK(*LeaderElectionNamespace(ParseOk({"--leader-elect", "--leader-election-namespace", "ops"}),
                                 file) == "ops");
  const auto missing =
      LeaderElectionNamespace(ParseOk({"--leader-elect"}), (dir.path() / "absent").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kConfig);
  CHECK(Contains(missing.status().message(), "--leader-election-namespace"));
}

}  // namespace
}  // namespace dpcm::operator_main
