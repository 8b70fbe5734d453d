#include "cmd/dpcm-agent/options.h"

#include <charconv>
#include <map>

namespace dpcm::agent_main {
namespace {

Status ParseInt(const std::string& flag, const std::string& text, int minimum, int maximum,
                int& out) {
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < minimum || value > maximum) {
    return Status::Config("--" + flag + " must be an integer from " + std::to_string(minimum) +
                          " to " + std::to_string(maximum) + ", not \"" + text + "\"");
  }
  out = value;
  return Status::Ok();
}

}  // namespace

std::string Usage() {
  return R"(dpcm-agent: runs a ProcessDomain's command health check and role hooks inside the member
pod, and tells the application its role. No shell: commands are argv lists.

Flags (defaults from the pod's environment where named):
  --domain NAME                  the ProcessDomain ($DPCM_DOMAIN)
  --pod NAME                     this pod ($POD_NAME)
  --namespace NS                 its namespace ($POD_NAMESPACE)
  --pod-ip IP                    its address ($POD_IP)
  --bind-address IP              where the operator reaches the agent (default: the pod IP, else
                                 every interface, IPv6 and IPv4)
  --port N                       GET /healthz, POST /dpcm/role, GET /role (default 8719)
  --role-bind-address HOST:PORT  the application's role API, GET /role (default 127.0.0.1:8720; 0 disables)
  --health-command JSON          spec.health.command: {"command":[...],"env":[{"name","value"}]}
                                 ($DPCM_AGENT_HEALTH_COMMAND); none: /healthz answers 200
  --health-timeout-ms N          one check's time limit (default 1000)
  --role-hook-command JSON       spec.roleHooks.command, same shape ($DPCM_AGENT_ROLE_HOOK_COMMAND)
  --role-hook-timeout-ms N       one hook call's time limit (default 2000)
  --members true|false           follow the domain's members through the API server, for
                                 GET /members (default true)
  --kubeconfig PATH              the API identity to follow them with (default: in-cluster, the
                                 pod's ServiceAccount; $KUBECONFIG is not used)
  --service-account-dir DIR      where the in-cluster token, ca.crt and namespace are
                                 ($DPCM_SERVICE_ACCOUNT_DIR, else
                                 /var/run/secrets/kubernetes.io/serviceaccount)
  --log-level LEVEL              trace|debug|info|warn|error (default info)
  --help
)";
}

Result<AgentOptions> ParseOptions(
    int argc, const char* const* argv,
    const std::function<std::optional<std::string>(const std::string&)>& getenv) {
  AgentOptions o;
  auto env = [&](const char* name) { return getenv(name).value_or(""); };
  o.config.domain = env("DPCM_DOMAIN");
  o.config.pod = env("POD_NAME");
  o.config.ns = env("POD_NAMESPACE");
  o.config.pod_ip = env("POD_IP");
  std::string health_command = env("DPCM_AGENT_HEALTH_COMMAND");
  std::string hook_command = env("DPCM_AGENT_ROLE_HOOK_COMMAND");
  if (auto dir = getenv("DPCM_SERVICE_ACCOUNT_DIR"); dir && !dir->empty()) {
    o.service_account_dir = *dir;
  }
  std::string role_bind = agent::kDefaultRoleBindAddress;
  std::string members = "true";
  int health_timeout_ms = 1000;
  int hook_timeout_ms = 2000;

  std::map<std::string, std::string*> strings = {{"domain", &o.config.domain},
                                                 {"pod", &o.config.pod},
                                                 {"namespace", &o.config.ns},
                                                 {"pod-ip", &o.config.pod_ip},
                                                 {"bind-address", &o.bind_address},
                                                 {"role-bind-address", &role_bind},
                                                 {"health-command", &health_command},
                                                 {"role-hook-command", &hook_command},
                                                 {"log-level", &o.log_level},
                                                 {"kubeconfig", &o.kubeconfig},
                                                 {"service-account-dir", &o.service_account_dir},
                                                 {"members", &members}};
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      return o;
    }
    if (!arg.starts_with("--")) return Status::Config("unexpected argument: " + arg);
    std::string name = arg.substr(2);
    std::string value;
    if (const auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return Status::Config("--" + name + " needs a value");
    }
    if (auto it = strings.find(name); it != strings.end()) {
      *it->second = value;
    } else if (name == "port") {
      if (Status s = ParseInt(name, value, 1, 65535, o.port); !s.ok()) return s;
    } else if (name == "health-timeout-ms") {
      if (Status s = ParseInt(name, value, 1, 3600000, health_timeout_ms); !s.ok()) return s;
    } else if (name == "role-hook-timeout-ms") {
      if (Status s = ParseInt(name, value, 1, 3600000, hook_timeout_ms); !s.ok()) return s;
    } else {
      return Status::Config("unknown flag --" + name);
    }
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, const std::string&>{"domain", o.config.domain},
        {"pod", o.config.pod}}) {
    if (value.empty()) return Status::Config("--" + std::string(flag) + " is required");
  }
  if (members != "true" && members != "false") {
    return Status::Config("--members must be true or false, not \"" + members + "\"");
  }
  o.follow_members = members == "true";
  if (o.follow_members && o.config.ns.empty()) {
    return Status::Config("--namespace is required to follow the members (or --members=false)");
  }
  if (o.bind_address.empty()) o.bind_address = o.config.pod_ip;  // else every interface
  if (o.bind_address.size() >= 2 && o.bind_address.front() == '[' && o.bind_address.back() == ']') {
    o.bind_address = o.bind_address.substr(1, o.bind_address.size() - 2);
  }
  if (role_bind == "0" || role_bind.empty()) {
    o.role_host.clear();
  } else {
    const auto colon = role_bind.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::Config("--role-bind-address must be HOST:PORT or 0, not \"" + role_bind +
                            "\"");
    }
    o.role_host = role_bind.substr(0, colon);
    if (o.role_host.size() >= 2 && o.role_host.front() == '[' && o.role_host.back() == ']') {
      o.role_host = o.role_host.substr(1, o.role_host.size() - 2);  // "[::1]:8720"
    }
    if (Status s =
            ParseInt("role-bind-address", role_bind.substr(colon + 1), 1, 65535, o.role_port);
        !s.ok()) {
      return s;
    }
  }
  if (!health_command.empty()) {
    auto parsed = agent::ParseCommandJson(health_command);
    if (!parsed.ok()) return Status::Config("--health-command: " + parsed.status().message());
    health::ProbeSpec spec;
    spec.kind = health::ProbeKind::kCommand;
    spec.command.argv = parsed->argv;
    spec.command.env = parsed->env;
    spec.timeout = std::chrono::milliseconds(health_timeout_ms);
    o.config.health = spec;
  }
  if (!hook_command.empty()) {
    auto parsed = agent::ParseCommandJson(hook_command);
    if (!parsed.ok()) return Status::Config("--role-hook-command: " + parsed.status().message());
    rolehook::HookSpec spec;
    spec.kind = rolehook::HookKind::kCommand;
    spec.argv = parsed->argv;
    spec.env = parsed->env;
    spec.timeout = std::chrono::milliseconds(hook_timeout_ms);
    o.config.role_hook = spec;
  }
  return o;
}

}  // namespace dpcm::agent_main
