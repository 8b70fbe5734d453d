#include "cmd/dpcm-operator/options.h"

#include <charconv>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>

namespace dpcm::operator_main {
namespace {

Status ParseInt(const std::string& flag, const std::string& text, int minimum, int& out) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < minimum) {
    return Status::Config("--" + flag + " must be an integer >= " + std::to_string(minimum) +
                          ", not \"" + text + "\"");
  }
  out = value;
  return Status::Ok();
}

Status ParseBool(const std::string& flag, const std::string& text, bool& out) {
  if (text == "true" || text == "1") {
    out = true;
  } else if (text == "false" || text == "0") {
    out = false;
  } else {
    return Status::Config("--" + flag + " must be true or false, not \"" + text + "\"");
  }
  return Status::Ok();
}

}  // namespace

std::string Usage() {
  return R"(dpcm-operator: keeps each ProcessDomain's pods in active (DC) / passive (PC) mode.

Flags:
  --kubeconfig PATH                  kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)
  --namespace NS                     watch only NS (repeatable; default: all namespaces)
  --leader-elect                     run several replicas with one active (operator's own Lease)
  --leader-election-id NAME          the operator's Lease name (default dpcm-operator)
  --leader-election-namespace NS     its namespace (default: the operator's own)
  --leader-election-lease-duration S (default 15)
  --leader-election-renew-deadline S (default 10)
  --leader-election-retry-period S   (default 2)
  --metrics-bind-address ADDR        Prometheus /metrics (default :8080; 0 disables)
  --health-probe-bind-address ADDR   /healthz and /readyz (default :8081; 0 disables)
  --workers N                        concurrent reconciles, never two on one domain (default 4)
  --kube-api-qps Q                   client-side request rate (default 20)
  --kube-api-burst B                 client-side burst (default 30; 8 of it kept for failovers)
  --log-level LEVEL                  trace|debug|info|warn|error (default info)
  --log-format FORMAT                text|json (default text)
  --agent-image IMAGE                dpcm-agent sidecar for domains with spec.agent.enabled
                                     (default ghcr.io/dpcm/dpcm-operator:0.1.0, which holds it)
  --agent-role-bind-address ADDR     the agent's role API in each member (default 127.0.0.1:8720;
                                     $(POD_IP):8720 where pods share a loopback, as in the test world)
  --help
)";
}

Result<OperatorOptions> ParseOptions(int argc, const char* const* argv) {
  OperatorOptions o;
  using Setter = std::function<Status(const std::string&, const std::string&)>;
  auto str = [](std::string& field) -> Setter {
    return [&field](const std::string&, const std::string& v) {
      field = v;
      return Status::Ok();
    };
  };
  auto integer = [](int& field, int minimum) -> Setter {
    return [&field, minimum](const std::string& f, const std::string& v) {
      return ParseInt(f, v, minimum, field);
    };
  };
  const std::map<std::string, Setter> value_flags = {
      {"kubeconfig", str(o.kubeconfig)},
      {"namespace",
       [&o](const std::string&, const std::string& v) {
         if (!v.empty()) o.namespaces.push_back(v);
         return Status::Ok();
       }},
      {"leader-election-id", str(o.leader_election_id)},
      {"leader-election-namespace", str(o.leader_election_namespace)},
      {"leader-election-lease-duration", integer(o.lease_duration_seconds, 1)},
      {"leader-election-renew-deadline", integer(o.renew_deadline_seconds, 1)},
      {"leader-election-retry-period", integer(o.retry_period_seconds, 1)},
      {"metrics-bind-address", str(o.metrics_bind_address)},
      {"agent-image", str(o.agent_image)},
      {"agent-role-bind-address", str(o.agent_role_bind_address)},
      {"health-probe-bind-address", str(o.health_probe_bind_address)},
      {"workers", integer(o.workers, 1)},
      {"kube-api-burst", integer(o.kube_api_burst, 1)},
      {"kube-api-qps",
       [&o](const std::string& f, const std::string& v) {
         try {
           size_t used = 0;
           o.kube_api_qps = std::stod(v, &used);
           if (used != v.size() || !std::isfinite(o.kube_api_qps) || v.front() == ' ') {
             throw std::invalid_argument(v);
           }
         } catch (const std::exception&) {
           return Status::Config("--" + f + " must be a number, not \"" + v + "\"");
         }
         return Status::Ok();
       }},
      {"log-level", str(o.log_level)},
      {"log-format", str(o.log_format)},
  };
  const std::map<std::string, bool*> bool_flags = {{"leader-elect", &o.leader_elect},
                                                   {"help", &o.help}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h") arg = "--help";
    if (arg.rfind("--", 0) != 0) return Status::Config("unexpected argument \"" + arg + "\"");
    arg.erase(0, 2);
    std::string value;
    const auto eq = arg.find('=');
    const bool has_value = eq != std::string::npos;
    if (has_value) {
      value = arg.substr(eq + 1);
      arg.erase(eq);
    }
    if (auto b = bool_flags.find(arg); b != bool_flags.end()) {
      if (!has_value) {
        *b->second = true;
      } else if (Status s = ParseBool(arg, value, *b->second); !s.ok()) {
        return s;
      }
      continue;
    }
    const auto setter = value_flags.find(arg);
    if (setter == value_flags.end()) {
      return Status::Config("unknown flag --" + arg + " (see --help)");
    }
    if (!has_value) {
      if (i + 1 >= argc) return Status::Config("--" + arg + " needs a value");
      value = argv[++i];
    }
    if (Status s = setter->second(arg, value); !s.ok()) return s;
  }
  if (o.log_format != "json" && o.log_format != "text") {
    return Status::Config("--log-format must be json or text, not \"" + o.log_format + "\"");
  }
  return o;
}

Result<std::string> LeaderElectionNamespace(const OperatorOptions& options,
                                            const std::string& service_account_namespace_file) {
  if (!options.leader_election_namespace.empty()) return options.leader_election_namespace;
  std::ifstream in(service_account_namespace_file);
  std::string ns;
  if (in && std::getline(in, ns)) {
    while (!ns.empty() && (ns.back() == '\n' || ns.back() == '\r' || ns.back() == ' ')) {
      ns.pop_back();
    }
    if (!ns.empty()) return ns;
  }
  return Status::Config(
      "--leader-elect needs --leader-election-namespace when not running in a cluster (" +
      service_account_namespace_file + " is not readable)");
}

}  // namespace dpcm::operator_main
