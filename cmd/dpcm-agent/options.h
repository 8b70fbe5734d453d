// dpcm-agent's flags, read into AgentOptions (defaults from the pod's environment).
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "pkg/agent/agent.h"
#include "pkg/status/status.h"

namespace dpcm::agent_main {

struct AgentOptions {
  agent::AgentConfig config;
  // The operator-facing server's address: the pod IP, else "" (every interface, IPv6 and
  // IPv4).
  std::string bind_address;
  int port = agent::kDefaultPort;
  std::string role_host = "127.0.0.1";  // the role API; empty role_host: disabled
  int role_port = 8720;
  // How the agent reaches the API server to follow its domain's members: a kubeconfig
  // (--kubeconfig, for tests and out-of-cluster runs), else the in-cluster identity (the
  // pod's ServiceAccount token and CA in `service_account_dir`). $KUBECONFIG is never used:
  // the agent acts only as its pod's identity.
  std::string kubeconfig;
  std::string service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  bool follow_members = true;  // --members=false: no API access at all
  std::string log_level = "info";
  bool help = false;
};

std::string Usage();

// Parses argv. `getenv` supplies the defaults a pod's environment gives (POD_NAME,
// POD_NAMESPACE, POD_IP, DPCM_DOMAIN, DPCM_AGENT_HEALTH_COMMAND,
// DPCM_AGENT_ROLE_HOOK_COMMAND, DPCM_SERVICE_ACCOUNT_DIR); flags win. The error names the flag.
Result<AgentOptions> ParseOptions(
    int argc, const char* const* argv,
    const std::function<std::optional<std::string>(const std::string&)>& getenv);

}  // namespace dpcm::agent_main
