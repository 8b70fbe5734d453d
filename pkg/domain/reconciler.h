// Reconciles one ProcessDomain: its pods, its Lease-based DC election and failover, Service and
// status.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "pkg/cache/store.h"
#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/controller/controller.h"
#include "pkg/domain/adoption.h"
#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"
#include "pkg/election/lease_record.h"
#include "pkg/events/event_recorder.h"
#include "pkg/health/monitor.h"
#include "pkg/rolehook/runner.h"

namespace dpcm::metrics {
class Metrics;
}

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

// The background helpers the reconciler drives; either may be null (no health plugin
// runs, no role hooks are delivered).
struct DomainPlugins {
  health::HealthMonitor* health = nullptr;
  rolehook::RoleHookRunner* hooks = nullptr;
};

// Level-based: each call looks at the domain as the caches show it now and moves the
// cluster one safe step (or several) toward the spec. The safety protocol for moving
// the DC role (DESIGN.md "Safety"):
//   1. every pod other than the new DC that has, or may have, dpcm.io/role=dc (the pods
//      a live LIST shows as DC, those the cache shows as DC, and the Lease holder) is
//      read fresh and fenced: relabeled pc and annotated dpcm.io/fenced-epoch with a
//      resourceVersion precondition. The write changes its resourceVersion, so a
//      promote of that pod still in flight from an earlier attempt can no longer apply;
//   2. the Lease is written with a resourceVersion precondition: holder = new DC,
//      leaseTransitions + 1 (the epoch, which never goes back: a recreated Lease starts
//      above the domain's status.epoch and every member's dpcm.io/epoch);
//   3. only then the new DC, read fresh and still healthy, is labeled dc and annotated
//      with the epoch, again with a resourceVersion precondition.
// Any failed precondition aborts the step and the domain is requeued: a stale cache
// can delay a failover but never produce a second DC. Thread-safe for distinct
// domains; the controller never runs two reconciles of one domain at once.
//
// Health: a member is unhealthy when its pod is not Ready or its container is not
// running, and also when the health plugin (run by the HealthMonitor) has failed
// failureThreshold times in a row, or its application keeps failing to acknowledge
// its role. An unhealthy DC is failed over first; a member whose health plugin fails
// is then restarted (its pod deleted: recreated by dpcm in managed mode, by its owner
// in adopt mode) with per-member exponential back-off and at most
// spec.restart.maxConcurrent restarts in flight. Healthy members are never restarted.
// Role hooks: after every reconcile each reachable member must have been told its
// role at the current epoch; the RoleHookRunner delivers what is missing.
class DomainReconciler final : public controller::Reconciler {
 public:
  // Everything passed must outlive the reconciler. `metrics` may be null.
  DomainReconciler(client::ApiClient& client, DomainCaches caches, events::EventRecorder& events,
                   metrics::Metrics* metrics, DomainPlugins plugins = {},
                   Clock& clock = RealClock::Instance());

  Result<controller::ReconcileResult> Reconcile(const controller::Request& request,
                                                const std::stop_token& stop) override;

 private:
  // What the reconciler remembers about a domain between calls (lost on restart,
  // which only costs precision in the failover-duration metric).
  // The operator's restarts of one member (by pod name).
  struct RestartRecord {
    int count = 0;  // restarts so far in this streak (drives the back-off)
    int total = 0;  // restarts since the operator started
    Clock::Monotonic::time_point last{};
    bool in_flight = false;  // restarted, and its new pod has no verdict yet
    std::string old_uid;
  };

  struct Memory {
    std::optional<Clock::Monotonic::time_point> dc_failure_seen;
    std::string dc_failure_reason;
    std::optional<int64_t> failovers;
    std::string failing_over_from;  // set once the Lease left a failed DC, until promoted
    std::string service_error;      // last ServiceFailed message, to report it once
    std::string last_failover_time;
    int64_t invalid_spec_generation = -1;
    std::map<std::string, RestartRecord> restarts;
    std::set<std::string> reported_unhealthy;     // pod uids with a HealthCheckFailed event
    std::set<std::string> reported_hook_failure;  // instances with a RoleHookFailed event
  };

  struct Observed;  // one reconcile's view of the domain

  Result<controller::ReconcileResult> ReconcileDomain(const nlohmann::json& domain,
                                                      const DomainSpec& spec, Memory& memory);
  Status EnsurePods(const nlohmann::json& domain, const DomainSpec& spec,
                    const std::vector<cache::ObjectPtr>& pods, bool& progressing);
  Status EnsureService(const nlohmann::json& domain, const DomainSpec& spec);
  Status MoveDc(const nlohmann::json& domain, const DomainSpec& spec, Observed& view,
                const std::string& target, Memory& memory);
  // Fence and Promote read the pod fresh and write conditionally, re-reading a few times
  // when the pod changed in between.
  Status Fence(const std::string& ns, const std::string& pod_name, int64_t epoch);
  Status FenceOnce(const std::string& ns, const std::string& pod_name, int64_t epoch);
  // Labels `pod_name` dc at `epoch`. Returns false when it already was (nothing written).
  Result<bool> Promote(const std::string& ns, const std::string& domain_name,
                       const DomainSpec& spec, const std::string& pod_name, int64_t epoch);
  Result<bool> PromoteOnce(const std::string& ns, const std::string& domain_name,
                           const DomainSpec& spec, const std::string& pod_name, int64_t epoch);
  // Marks `member` unhealthy when its health plugin or its role hook keeps failing.
  void ApplyPlugins(const std::string& ns, const std::string& domain_name, const DomainSpec& spec,
                    Member& member) const;
  // Tells the health monitor which members to check.
  void UpdateHealthTargets(const std::string& ns, const std::string& name, const DomainSpec& spec,
                           const Observed& view);
  // Tells the hook runner every reachable member's role at the current epoch.
  void UpdateRoleHooks(const std::string& ns, const std::string& name, const DomainSpec& spec,
                       const Observed& view);
  // HealthCheckFailed / RoleHookFailed events, once per failing streak.
  void ReportPluginFailures(const nlohmann::json& domain, const Observed& view, Memory& memory);
  // Restarts members whose health plugin failed; returns the restarts in flight. Sets
  // `retry_in` when a back-off or the concurrency limit holds one back.
  int RestartFailed(const nlohmann::json& domain, const DomainSpec& spec, const Observed& view,
                    Memory& memory, std::optional<Clock::Monotonic::duration>& retry_in);
  Status LabelPc(const std::string& ns, const std::string& domain_name, const Member& member);
  Status WriteLease(const nlohmann::json& domain, const DomainSpec& spec,
                    election::LeaseRecord& lease, bool existed);
  Status WriteStatus(const nlohmann::json& domain, nlohmann::json status);
  Status CleanUp(const std::string& ns, const std::string& name);
  void ReportInvalidSpec(const nlohmann::json& domain, const SpecError& error, Memory& memory);
  void ReportFailover(const std::string& ns, const std::string& name, const std::string& reason,
                      Clock::Monotonic::duration took);
  void ReportState(const std::string& ns, const std::string& name, const Observed& view,
                   int healthy);
  void ForgetDomain(const std::string& ns, const std::string& name);
  std::vector<cache::ObjectPtr> PodsOf(const nlohmann::json& domain, const DomainSpec& spec) const;
  Memory& MemoryOf(const std::string& key);

  client::ApiClient& client_;
  DomainCaches caches_;
  events::EventRecorder& events_;
  metrics::Metrics* metrics_;
  DomainPlugins plugins_;
  Clock& clock_;
  std::mutex memory_mutex_;
  std::map<std::string, Memory> memory_;  // by namespace/name; entries are stable
};

}  // namespace dpcm::domain
