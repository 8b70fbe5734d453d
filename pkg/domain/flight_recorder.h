// The flight recorder's last phase: the new DC's role hook acknowledging its promotion, added
// to status.lastFailover after the failover itself.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "pkg/domain/decide.h"

namespace dpcm::domain {

// The phase the new DC's role hook acknowledging "dc" at the failover's epoch ends.
inline constexpr const char* kPhaseHooksAcknowledged = "hooksAcknowledged";

// status.lastFailover.hooks: what became of the role hooks of the failover's new DC.
inline constexpr const char* kHooksNone = "none";        // the domain has no role hooks: no phase
inline constexpr const char* kHooksPending = "pending";  // not acknowledged yet
inline constexpr const char* kHooksAcknowledged = "acknowledged";  // phase hooksAcknowledged
// The operator that recorded the failover stopped (or lost its leadership) before the
// acknowledgement: its time is unknown and is not invented.
inline constexpr const char* kHooksUnrecorded = "unrecorded";

// A failover whose new DC has not acknowledged its promotion yet (operator memory).
struct PendingHookAck {
  std::string to;     // the new DC
  int64_t epoch = 0;  // the failover's epoch
  SteadyTime seen;    // when the failure was first seen (the phases count from it)
};

// What the role-hook runner knows of the pending failover's new DC now.
struct HookAckObservation {
  bool hooks_configured = false;  // spec.roleHooks is set (and the operator delivers hooks)
  std::string acked_role;         // the member's last acknowledged role ("" when none)
  int64_t acked_epoch = -1;
  std::optional<SteadyTime> acked_at;  // on the reconciler's clock
};

// What to do about the hooksAcknowledged phase.
struct HookAckDecision {
  std::optional<nlohmann::json> last_failover;  // the new status.lastFailover, when it changes
  std::optional<SteadyDuration> phase;          // the phase's end since the failure, to observe
  bool keep_pending = false;                    // still waiting: keep `pending` in memory
};

// Decides the hooksAcknowledged phase from status.lastFailover (`last_failover`), the
// failover this operator is waiting on (`pending`, none after a restart) and the new DC's
// hook state. Only a lastFailover whose `hooks` is "pending" changes:
//   - role hooks removed meanwhile → hooks "none";
//   - no matching pending failover in memory (another operator wrote it, or this one
//     restarted) → hooks "unrecorded";
//   - the new DC acknowledged "dc" at the failover's epoch → phase hooksAcknowledged
//     appended (ms since the failure, never before the last phase), hooks "acknowledged";
//   - otherwise unchanged, still pending.
// Pure.
HookAckDecision DecideHookAck(const nlohmann::json& last_failover,
                              const std::optional<PendingHookAck>& pending,
                              const HookAckObservation& target);

}  // namespace dpcm::domain
