#include "pkg/domain/domain_status.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "pkg/domain/flight_recorder.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

json Condition(const std::string& type, bool status, const std::string& reason,
               const std::string& message, int64_t generation) {
  return {{"type", type},
          {"status", status ? "True" : "False"},
          {"reason", reason},
          {"message", message},
          {"observedGeneration", generation}};
}

json MemberStatus(const Member& m, const RestartBook& restarts) {
  const bool ready =
      m.healthy() || m.unhealthy == Unhealthy::kHealthCheck || m.unhealthy == Unhealthy::kRoleHook;
  const auto restarted = restarts.find(m.name);
  const int operator_restarts = restarted == restarts.end() ? 0 : restarted->second.total;
  std::string message = m.healthy() ? "" : UnhealthyReason(m.unhealthy);
  if (!m.check_message.empty()) message += (message.empty() ? "" : ": ") + m.check_message;
  return {{"name", m.name},
          {"role", m.role.empty() ? kRolePc : m.role},
          {"ready", ready},
          {"healthy", m.healthy()},
          {"consecutiveFailures", m.check_failures},
          {"restarts", m.restarts + operator_restarts},
          {"message", message}};
}

}  // namespace

std::string FencingMode(const DomainSpec& spec) {
  return spec.agent.enabled ? "Agent" : "LabelOnly";
}

json BuildStatus(const DomainView& view, const DomainSpec& spec, const Plan& plan,
                 const Outcome& outcome) {
  const Member* dc = view.Find(outcome.dc);
  const bool dc_healthy = dc != nullptr && dc->healthy();
  int healthy = 0;
  json members = json::array();
  for (const auto& m : view.members) {
    healthy += m.healthy() ? 1 : 0;
    members.push_back(MemberStatus(m, outcome.restarts));
  }
  const int desired = spec.managed() ? spec.replicas : static_cast<int>(view.members.size());
  const auto degrading =
      std::find_if(outcome.errors.begin(), outcome.errors.end(),
                   [](const StepError& e) { return !e.action.degraded_reason.empty(); });
  const bool moving = plan.move.has_value() && outcome.dc != plan.move->target;

  std::string phase;
  if (spec.paused) {
    phase = "Paused";
  } else if (dc_healthy) {
    phase = "Running";
  } else if (!view.dc.name.empty() || plan.waiting_for_delay || moving) {
    phase = healthy > 0 ? "FailingOver" : "Degraded";
  } else {
    phase = view.members.empty() || plan.scaling ? "Pending" : "Degraded";
  }

  std::string degraded_reason = healthy == 0 && desired > 0 ? "NoHealthyMembers"
                                : healthy < desired         ? "MembersUnhealthy"
                                                            : "AllMembersHealthy";
  std::string degraded_message =
      std::to_string(healthy) + " of " + std::to_string(desired) + " members healthy";
  if (outcome.restarts_in_flight > 0) {
    degraded_message += "; " + std::to_string(outcome.restarts_in_flight) +
                        " restarting (at most " + std::to_string(spec.restart.max_concurrent) +
                        " at a time)";
  }
  bool degraded = healthy < desired;
  if (degrading != outcome.errors.end()) {
    degraded = true;
    degraded_reason = degrading->action.degraded_reason;
    degraded_message = degrading->error.message();
  }
  const std::string progressing_reason = plan.waiting_for_delay       ? "FailoverDelay"
                                         : moving                     ? "FailingOver"
                                         : plan.scaling               ? "Scaling"
                                         : outcome.restarts_in_flight ? "Restarting"
                                                                      : "Stable";

  json status = {{"observedGeneration", view.generation},
                 {"phase", phase},
                 {"activePod", outcome.dc},
                 {"fencing", FencingMode(spec)},
                 {"ready", std::to_string(healthy) + "/" + std::to_string(desired)},
                 {"epoch", outcome.epoch},
                 {"failovers", outcome.failovers},
                 {"members", members},
                 {"memberRestarts", RestartBookJson(outcome.restarts)}};
  if (!outcome.last_failover_time.empty()) status["lastFailoverTime"] = outcome.last_failover_time;
  if (outcome.last_failover.is_object()) status["lastFailover"] = outcome.last_failover;
  status["conditions"] = json::array(
      {Condition("Ready", dc_healthy, dc_healthy ? "DcElected" : "NoHealthyDc",
                 dc_healthy ? outcome.dc + " is DC" : "no healthy DC", view.generation),
       Condition("Degraded", degraded, degraded_reason, degraded_message, view.generation),
       Condition("Progressing", progressing_reason != "Stable", progressing_reason, "",
                 view.generation)});
  return status;
}

json FailoverJson(const FailoverRecord& record, const std::string& time) {
  json phases = json::array();
  for (const auto& [name, at] : record.phases) {
    const double ms = std::chrono::duration<double, std::milli>(at).count();
    phases.push_back({{"name", name}, {"ms", std::round(ms * 1000) / 1000}});
  }
  return {{"from", record.from},
          {"to", record.to},
          {"reason", record.reason},
          {"epoch", record.epoch},
          {"time", time},
          {"phases", phases},
          {"hooks", record.awaits_hooks ? kHooksPending : kHooksNone}};
}

NewFailures FailuresSince(const DomainView& view, const json& previous_status) {
  // What the last status said of each member: its health message starts with the reason.
  std::map<std::string, std::string> said;
  const json members =
      previous_status.is_object() ? previous_status.value("members", json::array()) : json::array();
  for (const auto& m : members) {
    if (m.is_object() && m.contains("name") && m["name"].is_string()) {
      said[m["name"].get<std::string>()] =
          m.value("healthy", true) ? "" : m.value("message", std::string());
    }
  }
  const auto reported = [&](const Member& m, Unhealthy why) {
    const auto it = said.find(m.name);
    return it != said.end() && it->second.rfind(UnhealthyReason(why), 0) == 0;
  };
  NewFailures failures;
  for (const auto& m : view.members) {
    if (m.check_failed && !reported(m, Unhealthy::kHealthCheck)) {
      failures.health_check.push_back(&m);
    }
    if (m.unhealthy == Unhealthy::kRoleHook && !reported(m, Unhealthy::kRoleHook)) {
      failures.role_hook.push_back(&m);
    }
  }
  return failures;
}

bool ReportsInvalidSpec(const json& previous_status, int64_t generation) {
  if (!previous_status.is_object() || !previous_status.contains("conditions")) return false;
  for (const auto& c : previous_status["conditions"]) {
    if (c.is_object() && c.value("type", "") == "Degraded" &&
        c.value("reason", "") == "InvalidSpec" &&
        c.value("observedGeneration", int64_t{-1}) == generation) {
      return true;
    }
  }
  return false;
}

json BuildInvalidSpecStatus(const json& previous, int64_t generation, const std::string& field,
                            const std::string& message) {
  json status = previous.is_object() ? previous : json::object();
  status["observedGeneration"] = generation;
  status["phase"] = "Degraded";
  status["conditions"] =
      json::array({Condition("Ready", false, "InvalidSpec", "the spec is invalid", generation),
                   Condition("Degraded", true, "InvalidSpec", field + ": " + message, generation),
                   Condition("Progressing", false, "InvalidSpec", "", generation)});
  return status;
}

void StampConditions(json& status, const json& previous, const std::string& now) {
  for (auto& condition : status["conditions"]) {
    condition["lastTransitionTime"] = now;
    if (!previous.is_object() || !previous.contains("conditions") ||
        !previous["conditions"].is_array()) {
      continue;
    }
    for (const auto& old : previous["conditions"]) {
      if (old.is_object() && old.value("type", "") == condition["type"] &&
          old.value("status", "") == condition["status"] && old.contains("lastTransitionTime")) {
        condition["lastTransitionTime"] = old["lastTransitionTime"];
      }
    }
  }
}

}  // namespace dpcm::domain
