// One reconcile's view of a domain: its members, its Lease, and the one definition of its current
// DC.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pkg/cache/store.h"
#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"
#include "pkg/election/lease_record.h"

namespace dpcm::domain {

// On the domain's Lease: Member::instance() ("<pod uid>/<container restarts>") of the
// holder when it was given the Lease. A DC whose instance differs since then has died
// and been restarted (or recreated under its name), whether or not anyone saw it die.
inline constexpr const char* kHolderInstanceAnnotation = "dpcm.io/holder-instance";

// Why a DC loses its role when its container restarted since it was made DC.
inline constexpr const char* kReasonRestarted = "container-restarted";
inline constexpr const char* kReasonScaledDown = "scaled-down";

// What the health monitor and the role-hook runner say about one member.
struct PluginVerdict {
  bool probed = false;        // the health plugin has a verdict for this pod
  bool check_failed = false;  // failed failureThreshold times in a row
  int check_failures = 0;
  std::string check_message;
  int hook_failures = 0;  // role deliveries failed in a row
  std::string hook_message;
};

// Looks up the verdict of a member (by its uid / instance); tests pass a lambda.
using VerdictLookup = std::function<PluginVerdict(const Member&)>;

// Role deliveries that must fail in a row (retried after 0.25, 0.5, 1, 2 s: about 4 s of
// an application that cannot be told its role) before its member counts as unhealthy;
// an application still starting up is not failed over for it.
inline constexpr int kHookFailuresBeforeUnhealthy = 5;

// Marks `member` unhealthy when its health plugin failed (kHealthCheck) or, if still
// healthy, when its application keeps failing to acknowledge its role (kRoleHook).
void ApplyVerdict(const PluginVerdict& verdict, Member& member);

// The member holding the DC role. The Lease is the lock: its holder is the current DC;
// without a holder, the member labeled DC is (a Lease deleted behind our back).
struct CurrentDc {
  std::string name;              // "" when no member holds the role
  bool exists = false;           // its pod is a member of the domain
  bool labeled = false;          // its pod carries dpcm.io/role=dc
  bool holds_lease = false;      // the Lease names it
  bool same_incarnation = true;  // its instance is the one the Lease recorded (or none was)
  bool epoch_current = false;    // its dpcm.io/epoch is the Lease's epoch
  std::string unfit_reason;      // why it may not stay DC; "" when it may

  // Nothing to write: labeled, the Lease holder, same incarnation, at the Lease's epoch.
  // Only a settled DC is told "dc" by role hooks, shown as activePod and left alone.
  bool settled() const {
    return exists && labeled && holds_lease && same_incarnation && epoch_current;
  }
  bool fit() const { return !name.empty() && unfit_reason.empty(); }
};

struct DomainView {
  std::string ns;
  std::string name;
  int64_t generation = 0;
  std::vector<Member> members;         // every pod of the domain, by name
  std::vector<cache::ObjectPtr> pods;  // the pod objects they were read from (the cache's)
  std::vector<Member> candidates;      // members that may be DC (managed: ordinal < replicas)
  nlohmann::json lease_object;         // the Lease as last seen; null when there is none
  election::LeaseRecord lease;         // parsed; zero values when there is none
  std::string holder_instance;         // kHolderInstanceAnnotation of the Lease
  std::vector<std::string> labeled_dc;
  CurrentDc dc;
  // The highest epoch the domain has ever shown (Lease, status.epoch, any member's
  // dpcm.io/epoch): a new epoch starts above it, even after the Lease was deleted.
  int64_t epoch_floor = 0;

  bool has_lease() const { return !lease_object.is_null(); }
  // The member named `pod`, or null.
  const Member* Find(const std::string& pod) const;
  bool IsCandidate(const std::string& pod) const;
};

// Builds the view from the domain object, its pods (any order) and its Lease (null when
// absent). Pure: reads nothing else; `verdicts` may be empty (no plugins).
DomainView Observe(const nlohmann::json& domain, const DomainSpec& spec,
                   const std::vector<cache::ObjectPtr>& pods, const cache::ObjectPtr& lease,
                   const VerdictLookup& verdicts);

}  // namespace dpcm::domain
