// DomainReconciler's side of the health monitor, the role-hook runner and the observer.
#include <spdlog/spdlog.h>

#include "pkg/domain/reconciler.h"

namespace dpcm::domain {

PluginVerdict DomainReconciler::VerdictOf(const std::string& ns, const std::string& domain,
                                          const DomainSpec& spec, const Member& member) const {
  PluginVerdict verdict;
  if (plugins_.health != nullptr && spec.health.kind != health::ProbeKind::kNone) {
    const health::Verdict health = plugins_.health->Get(ns, domain, member.uid);
    verdict.probed = health.probed;
    verdict.check_failed = !health.healthy;
    verdict.check_failures = health.consecutive_failures;
    verdict.check_message = health.message;
  }
  if (plugins_.hooks != nullptr && spec.role_hooks.kind != rolehook::HookKind::kNone) {
    const auto hook = plugins_.hooks->Get(ns, domain, member.hook_receiver());
    verdict.hook_failures = hook.consecutive_failures;
    verdict.hook_message = hook.message;
  }
  return verdict;
}

void DomainReconciler::UpdateHealthTargets(const DomainSpec& spec, const DomainView& view) {
  if (plugins_.health == nullptr) return;
  std::vector<health::Target> targets;
  if (spec.health.kind != health::ProbeKind::kNone) {
    for (const auto& m : view.members) {
      if (!m.reachable()) continue;
      targets.push_back(
          {view.ns, view.name, m.name, m.uid, m.pod_ip, m.role.empty() ? kRolePc : m.role});
    }
  }
  plugins_.health->Update(view.ns, view.name, spec.health, targets);
}

void DomainReconciler::UpdateRoleHooks(const DomainSpec& spec, const DomainView& view,
                                       const std::string& dc) {
  if (plugins_.hooks == nullptr) return;
  std::vector<rolehook::Assignment> assignments;
  if (spec.role_hooks.kind != rolehook::HookKind::kNone) {
    // Only the settled DC is told "dc", at the Lease's epoch.
    for (const auto& m : view.members) {
      if (!m.reachable()) continue;
      assignments.push_back({view.ns, view.name, m.name, m.hook_receiver(), m.pod_ip,
                             m.name == dc ? kRoleDc : kRolePc, view.lease.transitions});
    }
  }
  plugins_.hooks->Update(view.ns, view.name, spec.role_hooks, assignments);
}

void DomainReconciler::RecordHookAck(const DomainSpec& spec, const DomainView& view, Memory& memory,
                                     Outcome& outcome) {
  HookAckObservation target;
  target.hooks_configured =
      plugins_.hooks != nullptr && spec.role_hooks.kind != rolehook::HookKind::kNone;
  if (target.hooks_configured && memory.hook_ack) {
    for (const auto& m : view.members) {
      if (m.name != memory.hook_ack->to) continue;
      const rolehook::HookState state = plugins_.hooks->Get(view.ns, view.name, m.hook_receiver());
      target.acked_role = state.acked_role;
      target.acked_epoch = state.acked_epoch;
      target.acked_at = state.acked_at;
    }
  }
  HookAckDecision decision = DecideHookAck(outcome.last_failover, memory.hook_ack, target);
  if (!decision.keep_pending) memory.hook_ack.reset();
  if (decision.last_failover) outcome.last_failover = std::move(*decision.last_failover);
  if (!decision.phase) return;
  spdlog::info("{}/{}: the new DC acknowledged its promotion {} ms after the failure was seen",
               view.ns, view.name,
               std::chrono::duration_cast<std::chrono::milliseconds>(*decision.phase).count());
  if (plugins_.observer != nullptr) {
    plugins_.observer->FailoverPhase(view.ns, view.name, kPhaseHooksAcknowledged, *decision.phase);
  }
}

void DomainReconciler::ReportPluginFailures(const nlohmann::json& domain, const DomainView& view) {
  const auto reference = events::ObjectReference::Of(domain);
  const NewFailures failures = FailuresSince(view, domain.value("status", nlohmann::json()));
  for (const Member* m : failures.health_check) {
    events_.Warning(reference, "HealthCheckFailed",
                    m->name + " failed its health check " + std::to_string(m->check_failures) +
                        " times in a row: " + m->check_message);
  }
  for (const Member* m : failures.role_hook) {
    events_.Warning(reference, "RoleHookFailed",
                    m->name + " does not acknowledge its role: " + m->check_message);
  }
}

void DomainReconciler::ReportCounts(const DomainView& view, const nlohmann::json& status) const {
  if (plugins_.observer == nullptr) return;
  DomainCounts counts;
  counts.epoch = view.lease.transitions;
  for (const auto& m : view.members) {
    if (m.is_dc()) {
      (m.healthy() ? counts.dc_healthy : counts.dc_unhealthy) += 1;
    } else {
      (m.healthy() ? counts.pc_healthy : counts.pc_unhealthy) += 1;
    }
    counts.terminating += m.terminating() ? 1 : 0;
    if (m.is_dc()) counts.dc_pods.push_back(m.name);
  }
  for (const auto& c : status.value("conditions", nlohmann::json::array())) {
    if (c.is_object()) {
      counts.conditions.emplace_back(c.value("type", ""), c.value("status", "") == "True");
    }
  }
  plugins_.observer->Counts(view.ns, view.name, counts);
}

}  // namespace dpcm::domain
