// A domain member as the reconciler sees it: role, health and why it is unhealthy, from its pod.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace dpcm::domain {

// Why a member cannot be (or stay) the DC. Also the `reason` label of
// dpcm_failovers_total.
enum class Unhealthy {
  kNone,
  kDeleted,      // the pod is terminating or gone
  kExited,       // its container terminated or is waiting to restart
  kNotReady,     // Ready condition is not True
  kFailed,       // phase Failed or Succeeded
  kNotRunning,   // not started yet (Pending, no IP)
  kHealthCheck,  // the domain's health plugin failed failureThreshold times in a row
  kRoleHook,     // its application keeps failing to acknowledge its role
};

const char* UnhealthyReason(Unhealthy why);

struct Member {
  std::string name;
  std::string uid;
  std::string resource_version;
  std::string role;  // value of dpcm.io/role: "dc", "pc" or ""
  std::string pod_ip;
  int ordinal = -1;                     // N of "<domain>-N" in managed mode, else -1
  int restarts = 0;                     // of the application's containers (not dpcm-agent's)
  int agent_restarts = 0;               // of its dpcm-agent container, if it has one
  std::optional<int64_t> epoch;         // dpcm.io/epoch annotation
  std::optional<int64_t> fenced_epoch;  // dpcm.io/fenced-epoch annotation
  Unhealthy unhealthy = Unhealthy::kNone;
  // The health plugin's verdict (set by the reconciler, not from the pod): failed
  // failureThreshold times in a row, the current streak, the last failure's reason.
  bool probed = false;  // the health plugin has a verdict for this pod
  bool check_failed = false;
  int check_failures = 0;
  std::string check_message;

  bool healthy() const { return unhealthy == Unhealthy::kNone; }
  bool terminating() const { return unhealthy == Unhealthy::kDeleted; }
  // Its container runs and has an IP: health checks and role hooks can reach it.
  bool reachable() const;
  // "<uid>/<container restarts>": one run of the application (dpcm-agent's restarts do not
  // count: the agent is not the application).
  std::string instance() const { return uid + "/" + std::to_string(restarts); }
  // Who hears its role hooks: the application's run and, with the agent, the agent's run
  // (a restarted agent has forgotten its role and must be told again).
  std::string hook_receiver() const { return instance() + "/" + std::to_string(agent_restarts); }
  bool is_dc() const;
};

// The integer in annotation `key` of `pod` (dpcm.io/epoch, dpcm.io/fenced-epoch), or
// nullopt when absent or not an integer.
std::optional<int64_t> EpochAnnotation(const nlohmann::json& pod, const char* key);

// Classifies a pod. `domain_name` is used to read the ordinal of managed pods.
Member MemberFromPod(const nlohmann::json& pod, std::string_view domain_name);

// Shrinks a cached pod to what MemberFromPod, ownership and selectors read (metadata
// identity, labels, dpcm annotations, owners, deletion; status phase, IP, conditions,
// container states): a full pod is 5-30 KiB, this is a few hundred bytes. The labels and
// annotations maps are there exactly when the pod has them, so a JSON patch built from the
// trimmed pod (object::SetInMap) touches only the keys it names.
void TrimPod(nlohmann::json& pod);

}  // namespace dpcm::domain
