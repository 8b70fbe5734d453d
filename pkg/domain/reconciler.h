// Reconciles one ProcessDomain: reads its caches, observes, decides, acts, and writes its status.
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pkg/cache/own_writes.h"
#include "pkg/cache/store.h"
#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/controller/controller.h"
#include "pkg/domain/adoption.h"
#include "pkg/domain/children.h"
#include "pkg/domain/decide.h"
#include "pkg/domain/domain_observer.h"
#include "pkg/domain/domain_status.h"
#include "pkg/domain/flight_recorder.h"
#include "pkg/domain/handover.h"
#include "pkg/domain/pod_lease_api.h"
#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"
#include "pkg/events/event_recorder.h"
#include "pkg/health/monitor.h"
#include "pkg/rolehook/runner.h"

namespace dpcm::domain {

// The informer caches the reconciler reads (never writes). `pods` holds only pods
// labeled dpcm.io/domain; adopt-mode candidates not labeled yet come from `adoption`
// (null: adopt mode sees only pods that already carry the label).
struct DomainCaches {
  const cache::Store& domains;
  const cache::Store& pods;
  const cache::Store& leases;
  const cache::Store& services;
  CandidateSource* adoption = nullptr;
};

// The background helpers the reconciler drives; any may be null (no health plugin runs,
// no role hooks are delivered, no metrics).
struct DomainPlugins {
  health::HealthMonitor* health = nullptr;
  // Must run on the reconciler's clock: its acknowledgement times are compared with it.
  rolehook::RoleHookRunner* hooks = nullptr;
  DomainObserver* observer = nullptr;
  // How dpcm-agent is added to the managed pods of domains that enable it (spec.agent).
  AgentInjection agent;
};

// Level-based: each call looks at the domain as the caches show it now and moves the
// cluster one safe step (or several) toward the spec:
//   Observe (view.h) → Decide (decide.h, pure) → act: pods (children.h), the DC role
//   (handover.h), pc relabels, role hooks, the Service → BuildStatus (domain_status.h),
//   written on every reconcile, also when a step failed → restarts (write-ahead: the
//   status records them before they are sent).
// A failed step is mapped to a retry, a Degraded reason and an Event by ActionFor
// (error_policy.h). What must survive an operator leader change (restart back-off,
// restarts in flight, counts, failovers, the epoch) lives in the status and the Lease;
// memory holds only what may be lost (the failure clock of failoverDelaySeconds). What
// was reported is read from the last status; repeated Events are folded by the recorder.
// Thread-safe for distinct domains; the controller never runs two reconciles of one domain at once.
class DomainReconciler final : public controller::Reconciler {
 public:
  // Everything passed must outlive the reconciler.
  DomainReconciler(client::ApiClient& client, DomainCaches caches, events::EventRecorder& events,
                   const DomainPlugins& plugins = {}, Clock& clock = RealClock::Instance());

  Result<controller::ReconcileResult> Reconcile(const controller::Request& request,
                                                const std::stop_token& stop) override;

 private:
  // What the reconciler remembers about a domain between calls (lost on restart).
  struct Memory {
    std::optional<SteadyTime> dc_failure_seen;
    // The last failover, until its new DC's role hook acknowledges the promotion.
    std::optional<PendingHookAck> hook_ack;
  };

  Result<controller::ReconcileResult> ReconcileDomain(const nlohmann::json& domain,
                                                      const DomainSpec& spec, Memory& memory);
  // Carries out plan.move; fills the outcome and reports the change.
  void MoveDc(const nlohmann::json& domain, const DomainSpec& spec, DomainView& view,
              const Plan& plan, Memory& memory, SteadyTime decided_at, Outcome& outcome);
  // Events, metrics and the flight recorder's status.lastFailover for a move; remembers a
  // failover whose role hooks are yet to acknowledge it.
  void ReportMove(const nlohmann::json& domain, const DomainSpec& spec, const DcMove& move,
                  const HandoverResult& done, Memory& memory, SteadyTime decided_at,
                  Outcome& outcome);
  // The flight recorder's hooksAcknowledged phase (DecideHookAck) into the outcome's
  // lastFailover and the observer.
  void RecordHookAck(const DomainSpec& spec, const DomainView& view, Memory& memory,
                     Outcome& outcome);
  // Records a failed step with the action the error policy chose, and its Event (the
  // recorder folds repeats of one message into one Event with a count).
  void Failed(const nlohmann::json& domain, Step step, const Status& error, Outcome& outcome) const;
  void Restart(const nlohmann::json& domain, const DomainSpec& spec, const DomainView& view,
               const RestartPlan& restarts, Outcome& outcome);
  Status WriteStatus(const nlohmann::json& domain, nlohmann::json status);
  void ReportInvalidSpec(const nlohmann::json& domain, const SpecError& error);
  std::vector<cache::ObjectPtr> PodsOf(const nlohmann::json& domain, const DomainSpec& spec) const;
  cache::ObjectPtr FindPod(const std::string& ns, const std::string& domain,
                           const std::string& name) const;
  PluginVerdict VerdictOf(const std::string& ns, const std::string& domain, const DomainSpec& spec,
                          const Member& member) const;
  void UpdateHealthTargets(const DomainSpec& spec, const DomainView& view);
  void UpdateRoleHooks(const DomainSpec& spec, const DomainView& view, const std::string& dc);
  // HealthCheckFailed / RoleHookFailed Events for members failing since the last status.
  void ReportPluginFailures(const nlohmann::json& domain, const DomainView& view);
  // Member counts and the conditions of `status` to the observer (metrics).
  void ReportCounts(const DomainView& view, const nlohmann::json& status) const;
  void Forget(const std::string& ns, const std::string& name);
  Memory& MemoryOf(const std::string& key);

  client::ApiClient& client_;
  DomainCaches caches_;
  events::EventRecorder& events_;
  DomainPlugins plugins_;
  Clock& clock_;
  ClientPodLeaseApi pod_lease_api_;
  ChildWriter children_;
  cache::OwnWrites own_writes_;  // Leases and domains (status) this reconciler wrote
  std::mutex memory_mutex_;
  std::map<std::string, Memory> memory_;  // by namespace/name; entries are stable
};

}  // namespace dpcm::domain
