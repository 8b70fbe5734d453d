// The ProcessDomain spec as C++ values, with defaults, and the checks a CRD schema cannot make.
#pragma once

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

// Only the parts the reconciler acts on; the rest of the object stays JSON.
struct DomainSpec {
  int replicas = 1;
  std::optional<nlohmann::json> pod_template;   // managed mode
  std::map<std::string, std::string> selector;  // adopt mode (matchLabels)
  ElectionSpec election;
  health::ProbeSpec health;
  RestartSpec restart;
  rolehook::HookSpec role_hooks;
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
// health check or role hook is a SpecError too: the operator never runs a program named
// by a ProcessDomain (such programs belong in the member pod).
Result<DomainSpec> ParseSpec(const nlohmann::json& domain, SpecError* error);

}  // namespace dpcm::domain
