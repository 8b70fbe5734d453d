#include "pkg/domain/flight_recorder.h"

#include <algorithm>
#include <cmath>

#include "pkg/domain/spec.h"

namespace dpcm::domain {

using nlohmann::json;

namespace {

// The last phase's ms in `record`, or 0.
double LastPhaseMs(const json& record) {
  const json phases = record.value("phases", json::array());
  if (!phases.is_array() || phases.empty() || !phases.back().is_object()) return 0;
  const json& ms = phases.back().value("ms", json(0));
  return ms.is_number() ? ms.get<double>() : 0;
}

json WithHooks(json record, const char* hooks) {
  record["hooks"] = hooks;
  return record;
}

}  // namespace

HookAckDecision DecideHookAck(const json& last_failover,
                              const std::optional<PendingHookAck>& pending,
                              const HookAckObservation& target) {
  HookAckDecision decision;
  if (!last_failover.is_object() || last_failover.value("hooks", json()) != kHooksPending) {
    return decision;
  }
  if (!target.hooks_configured) {
    decision.last_failover = WithHooks(last_failover, kHooksNone);
    return decision;
  }
  if (!pending || pending->to != last_failover.value("to", json()) ||
      pending->epoch != last_failover.value("epoch", json())) {
    decision.last_failover = WithHooks(last_failover, kHooksUnrecorded);
    return decision;
  }
  if (target.acked_role != kRoleDc || target.acked_epoch != pending->epoch || !target.acked_at) {
    decision.keep_pending = true;
    return decision;
  }
  const SteadyDuration since = std::max(*target.acked_at - pending->seen, SteadyDuration::zero());
  const double ms = std::chrono::duration<double, std::milli>(since).count();
  json record = WithHooks(last_failover, kHooksAcknowledged);
  if (!record.contains("phases") || !record["phases"].is_array()) record["phases"] = json::array();
  record["phases"].push_back(
      {{"name", kPhaseHooksAcknowledged},
       {"ms", std::max(std::round(ms * 1000) / 1000, LastPhaseMs(last_failover))}});
  decision.last_failover = std::move(record);
  decision.phase = since;
  return decision;
}

}  // namespace dpcm::domain
