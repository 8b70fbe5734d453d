#include "pkg/domain/decide.h"

#include <algorithm>
#include <climits>
#include <set>

namespace dpcm::domain {

void Plan::RequeueWithin(SteadyDuration d) {
  if (!requeue_after || d < *requeue_after) requeue_after = d;
}

std::optional<std::string> ChooseDc(const DomainView& view) {
  if (view.dc.fit()) return view.dc.name;
  const Member* best = nullptr;
  const auto rank = [](const Member& m) {
    return std::make_pair(m.ordinal < 0 ? INT_MAX : m.ordinal, m.name);
  };
  for (const auto& m : view.candidates) {
    if (!m.healthy() || m.name == view.dc.name) continue;
    if (best == nullptr || rank(m) < rank(*best)) best = &m;
  }
  if (best != nullptr) return best->name;
  const Member* current = view.Find(view.dc.name);
  if (current != nullptr && current->healthy() && view.IsCandidate(current->name)) {
    return current->name;  // restarted, and nobody else can take over
  }
  return std::nullopt;
}

namespace {

// Managed pods to create (missing ordinals) and to delete (beyond replicas), never the
// DC or the Lease holder: the role moves first.
void PlanScaling(const DomainView& view, const DomainSpec& spec, Plan& plan) {
  if (!spec.managed()) return;
  std::set<std::string> existing;
  for (const auto& m : view.members) existing.insert(m.name);
  for (int ordinal = 0; ordinal < spec.replicas; ++ordinal) {
    if (existing.count(view.name + "-" + std::to_string(ordinal)) == 0) {
      plan.create_ordinals.push_back(ordinal);
    }
  }
  for (const auto& m : view.members) {
    if (view.IsCandidate(m.name)) continue;
    plan.scaling = true;
    if (m.is_dc() || m.name == view.lease.holder || m.terminating()) continue;
    plan.scale_down.push_back(m.name);
  }
  if (!plan.create_ordinals.empty()) plan.scaling = true;
}

}  // namespace

Plan Decide(const DomainView& view, const DomainSpec& spec, const Bookkeeping& book, SteadyTime now,
            election::WallTime wall_now) {
  Plan plan;
  const CurrentDc& dc = view.dc;
  if (dc.fit()) {
    plan.dc_failure_seen.reset();
  } else if (!dc.name.empty()) {
    plan.dc_failure_seen = book.dc_failure_seen.value_or(now);
  }
  if (spec.paused) {
    plan.dc = dc.settled() ? dc.name : "";
    plan.restarts.book = book.restarts;
    return plan;
  }
  PlanScaling(view, spec, plan);
  if (plan.scaling) plan.RequeueWithin(std::chrono::seconds(5));

  const auto target = ChooseDc(view);
  if (target && *target != dc.name && !dc.name.empty() &&
      spec.election.failover_delay_seconds > 0) {
    const auto waited = now - *plan.dc_failure_seen;
    const auto delay = std::chrono::seconds(spec.election.failover_delay_seconds);
    if (waited < delay) {
      plan.waiting_for_delay = true;
      plan.RequeueWithin(delay - waited);
    }
  }
  if (target && !plan.waiting_for_delay) {
    plan.dc = *target;
    const bool same_holder = *target == dc.name;
    const bool behind = view.epoch_floor > view.lease.transitions;  // see DomainView
    if (!(same_holder && dc.settled() && view.labeled_dc.size() == 1 && !behind)) {
      DcMove move;
      move.target = *target;
      if (!dc.name.empty() && (!same_holder || !dc.same_incarnation)) {
        move.previous = dc.name;
        move.reason = dc.unfit_reason;
      }
      move.new_epoch = !same_holder || !dc.holds_lease || !dc.same_incarnation || behind;
      plan.move = std::move(move);
    }
  } else if (plan.waiting_for_delay) {
    plan.dc = dc.settled() ? dc.name : "";
  }

  // Every other live member is a PC; members still labeled DC are fenced by the move.
  for (const auto& m : view.members) {
    if (m.name == plan.dc || m.role == kRolePc || m.terminating() || m.is_dc()) continue;
    plan.relabel_pc.push_back(m.name);
  }

  // The DC is restarted only once the role has left it (or when nobody can take it).
  // (When the handover fails, DomainReconciler::ReconcileDomain plans them again with the
  // old DC kept, so it is not restarted while it still holds the role.)
  plan.restarts =
      PlanRestarts(view, spec, book.restarts, plan.waiting_for_delay ? dc.name : "", wall_now);
  if (plan.restarts.retry_in) plan.RequeueWithin(*plan.restarts.retry_in);
  return plan;
}

}  // namespace dpcm::domain
