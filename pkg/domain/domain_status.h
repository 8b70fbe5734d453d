// The ProcessDomain status (what `kubectl get pd` shows) as a pure function of the view, the plan
// and what acting achieved.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pkg/domain/decide.h"
#include "pkg/domain/domain_observer.h"
#include "pkg/domain/error_policy.h"
#include "pkg/domain/restarts.h"
#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"

namespace dpcm::domain {

// A step that failed in this reconcile, with the action the error policy chose.
struct StepError {
  Step step = Step::kStatus;
  Status error;
  ErrorAction action;
};

// What carrying out the plan achieved.
struct Outcome {
  std::string dc;                  // the settled DC afterwards; "" when none (or the move failed)
  int64_t epoch = 0;               // the Lease's epoch afterwards
  int64_t failovers = 0;           // status.failovers afterwards
  std::string last_failover_time;  // status.lastFailoverTime afterwards ("" when never)
  nlohmann::json last_failover;    // status.lastFailover afterwards (null when never)
  RestartBook restarts;            // status.memberRestarts afterwards
  int restarts_in_flight = 0;
  std::vector<StepError> errors;
};

// status.fencing, the domain's fencing mode (DESIGN.md 6): "Agent" when dpcm-agent runs in
// every member (spec.agent.enabled), else "LabelOnly" (the guarantee covers the API
// server's labels and Lease, not processes that cannot hear a relabel). Pure.
std::string FencingMode(const DomainSpec& spec);

// The status for a valid spec: phase, activePod, fencing, ready, epoch, failovers, members (with
// the operator's restarts), memberRestarts and the Ready/Degraded/Progressing
// conditions. A failed step with a Degraded reason makes Degraded True with that reason
// and the error's message. lastTransitionTime is left to StampConditions. Pure.
nlohmann::json BuildStatus(const DomainView& view, const DomainSpec& spec, const Plan& plan,
                           const Outcome& outcome);

// The members whose health plugin, or whose role hook, started failing since
// `previous_status` (the status as last written: the cluster remembers what was
// reported, so a new operator leader does not report it again). Pure.
struct NewFailures {
  std::vector<const Member*> health_check;
  std::vector<const Member*> role_hook;
};
NewFailures FailuresSince(const DomainView& view, const nlohmann::json& previous_status);

// True when `previous_status` already reports an invalid spec of this generation.
bool ReportsInvalidSpec(const nlohmann::json& previous_status, int64_t generation);

// status.lastFailover for `record`, completed at `time` (RFC 3339):
// {from, to, reason, epoch, time, phases: [{name, ms}], hooks}, ms counted from the
// failure; hooks "pending" when record.awaits_hooks, else "none" (see flight_recorder.h).
nlohmann::json FailoverJson(const FailoverRecord& record, const std::string& time);

// The status for a spec that failed to parse: Degraded/InvalidSpec naming the field,
// the rest of `previous` kept.
nlohmann::json BuildInvalidSpecStatus(const nlohmann::json& previous, int64_t generation,
                                      const std::string& field, const std::string& message);

// Sets each condition's lastTransitionTime: kept from `previous` while the condition's
// status is unchanged, else `now`.
void StampConditions(nlohmann::json& status, const nlohmann::json& previous,
                     const std::string& now);

}  // namespace dpcm::domain
