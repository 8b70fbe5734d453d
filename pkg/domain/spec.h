// The ProcessDomain spec as C++ values, with defaults, and the checks a CRD schema cannot make.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pkg/health/probe.h"
#include "pkg/rolehook/hook.h"
#include "pkg/status/status.h"

namespace dpcm::domain {

inline constexpr const char* kDomainLabel = "dpcm.io/domain";
inline constexpr const char* kRoleLabel = "dpcm.io/role";
inline constexpr const char* kEpochAnnotation = "dpcm.io/epoch";
inline constexpr const char* kFenceAnnotation = "dpcm.io/fenced-epoch";
inline constexpr const char* kRoleDc = "dc";
inline constexpr const char* kRolePc = "pc";
// The most members a managed domain may have (the CRD schema says the same). One DC and
// its standbys: every member is watched, checked and listed in the status, which must
// stay well inside an object's size limit.
inline constexpr int kMaxReplicas = 100;

struct ElectionSpec {
  int lease_duration_seconds = 15;
  int renew_deadline_seconds = 10;
  int retry_period_seconds = 2;
  int failover_delay_seconds = 0;
};

struct ServicePort {
  std::string name;
  int port = 0;
  nlohmann::json target_port;  // number or name; null = same as port
  std::string protocol = "TCP";
};

// spec.restart: how members whose health plugin fails are restarted.
struct RestartSpec {
  int backoff_initial_seconds = 1;
  int backoff_max_seconds = 60;
  int max_concurrent = 1;
};

// The container name and port of dpcm-agent in a member pod.
inline constexpr const char* kAgentContainerName = "dpcm-agent";
inline constexpr int kDefaultAgentPort = 8719;

// spec.agent: dpcm-agent as a sidecar in every member. With it, `command` health checks
// and role hooks are allowed: the agent runs them inside the member pod and the operator
// reaches the agent over HTTP (GET /healthz, POST /dpcm/role on `port`); the operator
// itself never runs them. Managed mode injects the agent container; adopt mode expects it
// in the pods.
struct AgentSpec {
  bool enabled = false;
  int port = kDefaultAgentPort;
  // spec.health.command and spec.roleHooks.command as JSON, for the agent's environment;
  // empty when not set.
  std::string health_command_json;
  std::string role_hook_command_json;
  // The agent's own time limits for them: shorter than the operator's HTTP timeout, so that
  // the agent's answer (with its reason) arrives before the operator gives up.
  std::chrono::milliseconds health_timeout{800};
  std::chrono::milliseconds role_hook_timeout{1800};
};

// How the operator injects the agent into managed pods (operator flags, not the spec).
struct AgentInjection {
  std::string image;  // --agent-image
  // --agent-role-bind-address: the agent's --role-bind-address ($(POD_IP) is expanded).
  std::string role_bind_address = "127.0.0.1:8720";
};

// Only the parts the reconciler acts on; the rest of the object stays JSON.
struct DomainSpec {
  int replicas = 1;
  std::optional<nlohmann::json> pod_template;   // managed mode
  std::map<std::string, std::string> selector;  // adopt mode (matchLabels)
  ElectionSpec election;
  health::ProbeSpec health;
  RestartSpec restart;
  rolehook::HookSpec role_hooks;
  AgentSpec agent;
  std::vector<ServicePort> service_ports;
  bool paused = false;

  bool managed() const { return pod_template.has_value(); }
};

// A spec problem, naming the field as a user would write it ("spec.election.renewDeadlineSeconds").
struct SpecError {
  std::string field;
  std::string message;
};

// Reads and validates `processdomain.spec`. Defaults fill absent fields (the CRD's
// defaults normally did already). Anything malformed, or valid for the schema but not
// usable (renewDeadline >= leaseDuration, a template without containers, both or
// neither of template and selector, two health plugins, timeoutSeconds > periodSeconds,
// backoff maxSeconds < initialSeconds), is a SpecError; nothing here throws. A `command`
// health check or role hook is a SpecError too unless spec.agent.enabled: the operator
// never runs a program named by a ProcessDomain. With the agent, such a command is handed
// to the agent (AgentSpec) and the parsed health check / role hook becomes http to the
// agent's port, so that nothing the operator runs can be a command.
Result<DomainSpec> ParseSpec(const nlohmann::json& domain, SpecError* error);

// Shrinks a cached ProcessDomain: drops metadata.managedFields and kubectl's
// last-applied-configuration annotation (a second copy of the spec for `kubectl apply`
// users). Safe because the operator writes a ProcessDomain only through /status, which
// ignores metadata; everything else (spec, status, other annotations) stays.
void TrimDomain(nlohmann::json& domain);

}  // namespace dpcm::domain
