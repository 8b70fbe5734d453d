#include "pkg/domain/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "pkg/client/api_client.h"
#include "pkg/domain/owned_objects.h"
#include "pkg/object/object.h"

namespace dpcm::domain {
namespace {

using controller::ReconcileResult;
using nlohmann::json;
using object::Meta;

bool SelectorMatches(const DomainSpec& spec, const json& pod) {
  if (spec.selector.empty()) return false;
  return std::all_of(spec.selector.begin(), spec.selector.end(), [&](const auto& label) {
    return object::HasLabel(pod, label.first, label.second);
  });
}

std::string LeaseKey(const std::string& ns, const std::string& name) {
  return "lease:" + ns + "/" + name;
}
std::string DomainKey(const std::string& ns, const std::string& name) {
  return "pd:" + ns + "/" + name;
}

std::string Milliseconds(SteadyDuration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

DomainReconciler::DomainReconciler(client::ApiClient& client, DomainCaches caches,
                                   events::EventRecorder& events, const DomainPlugins& plugins,
                                   Clock& clock)
    : client_(client),
      caches_(caches),
      events_(events),
      plugins_(plugins),
      clock_(clock),
      pod_lease_api_(client),
      children_(client, caches.pods, caches.leases, caches.services, plugins.agent) {}

DomainReconciler::Memory& DomainReconciler::MemoryOf(const std::string& key) {
  std::lock_guard lock(memory_mutex_);
  return memory_[key];  // std::map nodes are stable: the reference outlives the lock
}

Result<ReconcileResult> DomainReconciler::Reconcile(const controller::Request& request,
                                                    const std::stop_token& stop) {
  // Preempted by a failure of this domain (or stopping): its writes stop waiting for
  // rate-limiter tokens and fail, and the failure's reconcile starts at once. Like any API
  // error, that may end a reconcile at any write: the next starts from what the API shows,
  // and a handover checks every step against fresh reads (pkg/domain/handover.h).
  const client::CancelWaitsScope cancel_waits(stop);
  const cache::ObjectPtr domain = own_writes_.Latest(DomainKey(request.ns, request.name),
                                                     caches_.domains.Get(request.ns, request.name));
  if (domain == nullptr) {
    if (Status cleaned = children_.CleanUp(request.ns, request.name); !cleaned.ok()) {
      return cleaned;
    }
    Forget(request.ns, request.name);
    return ReconcileResult::Done();
  }
  if (!domain->contains("metadata") || (*domain)["metadata"].contains("deletionTimestamp")) {
    return ReconcileResult::Done();  // being deleted: CleanUp runs once it is gone
  }
  Memory& memory = MemoryOf(request.Key());
  SpecError error;
  auto spec = ParseSpec(*domain, &error);
  if (!spec.ok()) {
    ReportInvalidSpec(*domain, error);
    return ReconcileResult::Done();  // a spec change brings the domain back
  }
  if (caches_.adoption != nullptr) {
    if (spec->managed()) {
      caches_.adoption->Forget(request.ns, request.name);
    } else {
      caches_.adoption->Watch(request.ns, request.name, spec->selector);
    }
  }
  return ReconcileDomain(*domain, *spec, memory);
}

Result<ReconcileResult> DomainReconciler::ReconcileDomain(const json& domain,
                                                          const DomainSpec& spec, Memory& memory) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  // Observe.
  const cache::ObjectPtr lease =
      own_writes_.Latest(LeaseKey(ns, name), caches_.leases.Get(ns, name));
  DomainView view = Observe(domain, spec, PodsOf(domain, spec), lease,
                            [&](const Member& m) { return VerdictOf(ns, name, spec, m); });
  UpdateHealthTargets(spec, view);
  ReportPluginFailures(domain, view);

  // Decide.
  const Bookkeeping book{memory.dc_failure_seen, ParseRestartBook(domain)};
  Plan plan = Decide(view, spec, book, clock_.Now(), clock_.WallNow());
  memory.dc_failure_seen = plan.dc_failure_seen;
  const SteadyTime decided_at = clock_.Now();

  // Act.
  Outcome outcome;
  outcome.dc = view.dc.settled() ? view.dc.name : "";
  outcome.epoch = view.lease.transitions;
  outcome.failovers = domain.value("/status/failovers"_json_pointer, int64_t{0});
  outcome.last_failover_time = object::StringAt(domain, "/status/lastFailoverTime"_json_pointer);
  outcome.last_failover = domain.value("/status/lastFailover"_json_pointer, json());
  // While the DC moves off a pod, every write of this reconcile takes the API client's
  // urgent lane, not only the handover's (MoveDc): such a reconcile runs on the worker
  // kept for failures (controller::Controller), and its status update waiting behind other
  // domains' housekeeping held the next domain's failover back (at 300 domains converging
  // at qps 20: 350 ms). A few writes per failover; the total stays within the budget.
  std::optional<client::UrgentScope> urgent;
  if (plan.move && !plan.move->previous.empty() && !spec.paused) urgent.emplace();
  if (!spec.paused) {
    // The DC first: a failover's writes go before the replacement pods' (see MoveDc).
    if (plan.move) MoveDc(domain, spec, view, plan, memory, decided_at, outcome);
    Status pods = children_.CreatePods(domain, spec, plan.create_ordinals);
    if (pods.ok()) pods = children_.DeletePods(view, plan.scale_down);
    if (!pods.ok()) Failed(domain, Step::kPods, pods, outcome);
    if (plan.move && outcome.dc != plan.move->target && !plan.move->previous.empty()) {
      // The role did not leave the old DC: it must not be restarted yet.
      plan.restarts =
          PlanRestarts(view, spec, book.restarts, plan.move->previous, clock_.WallNow());
    }
    const DcHandover relabel(pod_lease_api_, nullptr, clock_);
    for (const auto& member : plan.relabel_pc) {
      const cache::ObjectPtr pod = FindPod(ns, name, member);
      if (pod == nullptr) continue;
      if (Status s = relabel.LabelPc(ns, name, *pod); !s.ok()) {
        Failed(domain, Step::kRelabel, s, outcome);
      }
    }
    UpdateRoleHooks(spec, view, outcome.dc);
    if (Status s = children_.EnsureService(domain, spec); !s.ok()) {
      Failed(domain, Step::kService, s, outcome);
    }
  }
  RecordHookAck(spec, view, memory, outcome);

  // Status, then the restarts it records (write-ahead).
  outcome.restarts = plan.restarts.book;
  outcome.restarts_in_flight = plan.restarts.in_flight;
  json status = BuildStatus(view, spec, plan, outcome);
  ReportCounts(view, status);
  if (Status s = WriteStatus(domain, std::move(status)); !s.ok()) {
    Failed(domain, Step::kStatus, s, outcome);
  } else if (!spec.paused) {
    Restart(domain, spec, view, plan.restarts, outcome);
  }

  std::optional<SteadyDuration> requeue = plan.requeue_after;
  for (const auto& failed : outcome.errors) {
    if (failed.action.retry == ErrorAction::Retry::kRateLimited) return failed.error;
    if (!requeue || failed.action.after < *requeue) requeue = failed.action.after;
  }
  if (!requeue) return ReconcileResult::Done();
  // Rounded up: a wait rounded down fires early and finds its deadline not quite reached.
  return ReconcileResult::RequeueAfter(std::chrono::ceil<std::chrono::milliseconds>(*requeue));
}

void DomainReconciler::MoveDc(const json& domain, const DomainSpec& spec, DomainView& view,
                              const Plan& plan, Memory& memory, SteadyTime decided_at,
                              Outcome& outcome) {
  const DcMove& move = *plan.move;
  const HandoverRequest request =
      RequestFor(view, move, OwnerReference(domain), spec.election.lease_duration_seconds);
  const DcHandover handover(
      pod_lease_api_,
      [&](const json& pod) {
        Member fresh = MemberFromPod(pod, view.name);
        ApplyVerdict(VerdictOf(view.ns, view.name, spec, fresh), fresh);
        return fresh;
      },
      clock_);
  HandoverResult done;
  Status status;
  {
    // A domain without a working DC: its reads and writes take the API client's urgent
    // lane, ahead of other domains' status updates and Events waiting for the QPS budget.
    const client::UrgentScope urgent;
    status = handover.Run(request, done);
  }
  outcome.dc = "";
  if (done.lease_written) {
    own_writes_.Wrote(LeaseKey(view.ns, view.name), view.lease.resource_version, done.lease);
    view.lease_object = done.lease;
    view.lease = election::ParseLease(done.lease);
    outcome.epoch = view.lease.transitions;
  }
  if (status.ok()) {
    outcome.dc = move.target;
    view.labeled_dc = {move.target};
  } else {
    Failed(domain, Step::kHandover, status, outcome);
    spdlog::info("{}/{}: moving the DC to {}: {}", view.ns, view.name, move.target,
                 status.ToString());
  }
  ReportMove(domain, spec, move, done, memory, decided_at, outcome);
}

void DomainReconciler::ReportMove(const json& domain, const DomainSpec& spec, const DcMove& move,
                                  const HandoverResult& done, Memory& memory, SteadyTime decided_at,
                                  Outcome& outcome) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  const auto reference = events::ObjectReference::Of(domain);
  const std::string epoch = std::to_string(done.epoch);
  const bool failover = !move.previous.empty() && done.lease_written;
  if (failover) {
    // The flight recorder: each phase's end since the failure was first seen.
    const SteadyTime seen = memory.dc_failure_seen.value_or(decided_at);
    FailoverRecord record{
        move.previous, move.target, move.reason.empty() ? "unknown" : move.reason, done.epoch, {}};
    record.phases.emplace_back("decided", decided_at - seen);
    for (const auto& [phase, at] :
         {std::pair{"fenced", done.fenced_at}, std::pair{"leaseWritten", done.lease_written_at},
          std::pair{"labeled", done.labeled_at}}) {
      if (at) record.phases.emplace_back(phase, *at - seen);
    }
    record.awaits_hooks =
        plugins_.hooks != nullptr && spec.role_hooks.kind != rolehook::HookKind::kNone;
    memory.hook_ack.reset();
    if (record.awaits_hooks) memory.hook_ack = PendingHookAck{move.target, done.epoch, seen};
    events_.Warning(reference, "FailingOver", "DC " + move.previous + " is " + record.reason);
    if (move.previous != move.target) {
      events_.Normal(reference, "Demoted", move.previous + " is no longer DC");
    }
    outcome.failovers += 1;
    outcome.last_failover_time = election::FormatTime(clock_.WallNow());
    outcome.last_failover = FailoverJson(record, outcome.last_failover_time);
    if (plugins_.observer != nullptr) plugins_.observer->Failover(ns, name, record);
    spdlog::info("{}/{}: failover {} -> {} at epoch {} ({}, took {})", ns, name, move.previous,
                 move.target, epoch, record.reason, Milliseconds(record.took()));
    if (done.promoted) {
      std::string phases;
      for (const auto& [phase, at] : record.phases) {
        phases += (phases.empty() ? "" : ", ") + phase + " " + Milliseconds(at);
      }
      events_.Normal(reference, "Promoted",
                     move.target + " is DC at epoch " + epoch + " (failover took " +
                         Milliseconds(record.took()) + "; " + phases +
                         (record.awaits_hooks ? "; role hook not acknowledged yet" : "") + ")");
    }
    return;
  }
  if (!done.promoted) return;
  events_.Normal(reference, done.lease_written && move.previous.empty() ? "Elected" : "Promoted",
                 move.target + " is DC at epoch " + epoch);
  spdlog::info("{}/{}: {} is DC at epoch {}", ns, name, move.target, epoch);
}

void DomainReconciler::Failed(const json& domain, Step step, const Status& error,
                              Outcome& outcome) const {
  const ErrorAction action = ActionFor(step, error);
  if (action.event_reason.empty()) {
    spdlog::debug("{}/{}: {}", Meta(domain, "namespace"), Meta(domain, "name"), error.ToString());
  } else {
    spdlog::warn("{}/{}: {}", Meta(domain, "namespace"), Meta(domain, "name"), error.ToString());
    events_.Warning(events::ObjectReference::Of(domain), action.event_reason, error.message());
  }
  outcome.errors.push_back({step, error, action});
}

void DomainReconciler::Restart(const json& domain, const DomainSpec& spec, const DomainView& view,
                               const RestartPlan& restarts, Outcome& outcome) {
  for (const auto& restart : restarts.restarts) {
    if (Status s = children_.RestartPod(view.ns, restart.pod, restart.uid); !s.ok()) {
      spdlog::warn("{}/{}: {}", view.ns, view.name, s.ToString());
      outcome.errors.push_back({Step::kRestart, s, ActionFor(Step::kRestart, s)});
      continue;
    }
    if (restart.retry) continue;  // reported when it was first issued
    const std::string how =
        spec.managed() ? "deleted, dpcm recreates it" : "deleted for its owner to recreate";
    events_.Warning(events::ObjectReference::Of(domain), "PodRestarted",
                    restart.pod + " restarted (" + how + ") after " +
                        std::to_string(restart.failures) +
                        " failed health checks: " + restart.message + "; restart " +
                        std::to_string(restart.streak) + " of this streak");
    spdlog::info("{}/{}: restarted {} ({}): {}", view.ns, view.name, restart.pod, how,
                 restart.message);
    if (plugins_.observer != nullptr) {
      plugins_.observer->Restarted(view.ns, view.name, UnhealthyReason(Unhealthy::kHealthCheck));
    }
  }
}

Status DomainReconciler::WriteStatus(const json& domain, json status) {
  StampConditions(status, domain.value("status", json()), election::FormatTime(clock_.WallNow()));
  if (domain.contains("status") && domain["status"] == status) return Status::Ok();
  json updated = domain;
  updated["status"] = std::move(status);
  const std::string ns = Meta(domain, "namespace");
  auto written = client_.UpdateStatus(client::resources::ProcessDomains(), ns, updated);
  if (!written.ok()) return written.status().WithContext("write status");
  TrimDomain(*written);  // as the domain informer caches it
  own_writes_.Wrote(DomainKey(ns, Meta(domain, "name")), Meta(domain, "resourceVersion"),
                    std::move(*written));
  return Status::Ok();
}

void DomainReconciler::ReportInvalidSpec(const json& domain, const SpecError& error) {
  const int64_t generation = object::Generation(domain);
  if (!ReportsInvalidSpec(domain.value("status", json()), generation)) {
    events_.Warning(events::ObjectReference::Of(domain), "InvalidSpec",
                    error.field + ": " + error.message);
  }
  json status = BuildInvalidSpecStatus(domain.value("status", json::object()), generation,
                                       error.field, error.message);
  if (Status s = WriteStatus(domain, std::move(status)); !s.ok()) {
    spdlog::warn("{}/{}: status: {}", Meta(domain, "namespace"), Meta(domain, "name"),
                 s.ToString());
  }
}

std::vector<cache::ObjectPtr> DomainReconciler::PodsOf(const json& domain,
                                                       const DomainSpec& spec) const {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  std::vector<cache::ObjectPtr> pods;
  if (spec.managed()) {
    for (auto& pod : caches_.pods.ByLabel(ns, kDomainLabel, name)) {
      if (OwnedByDomain(*pod, name)) pods.push_back(std::move(pod));
    }
    return pods;
  }
  std::set<std::string> names;
  for (auto& pod : caches_.pods.ByLabel(ns, kDomainLabel, name)) {
    if (!SelectorMatches(spec, *pod)) continue;
    names.insert(Meta(*pod, "name"));
    pods.push_back(std::move(pod));
  }
  if (caches_.adoption != nullptr) {
    for (auto& pod : caches_.adoption->Candidates(ns, name)) {
      // Labeled meanwhile: the main cache's copy (above) is the one to trust.
      if (names.insert(Meta(*pod, "name")).second) pods.push_back(std::move(pod));
    }
  }
  return pods;
}

cache::ObjectPtr DomainReconciler::FindPod(const std::string& ns, const std::string& domain,
                                           const std::string& name) const {
  if (auto pod = caches_.pods.Get(ns, name)) return pod;
  if (caches_.adoption == nullptr) return nullptr;
  for (auto& candidate : caches_.adoption->Candidates(ns, domain)) {
    if (Meta(*candidate, "name") == name) return candidate;
  }
  return nullptr;
}

void DomainReconciler::Forget(const std::string& ns, const std::string& name) {
  {
    std::lock_guard lock(memory_mutex_);
    memory_.erase(ns + "/" + name);
  }
  own_writes_.Forget(LeaseKey(ns, name));
  own_writes_.Forget(DomainKey(ns, name));
  if (caches_.adoption != nullptr) caches_.adoption->Forget(ns, name);
  if (plugins_.observer != nullptr) plugins_.observer->Forget(ns, name);
  if (plugins_.health != nullptr) plugins_.health->Forget(ns, name);
  if (plugins_.hooks != nullptr) plugins_.hooks->Forget(ns, name);
}

}  // namespace dpcm::domain
