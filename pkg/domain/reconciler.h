// Reconciles one ProcessDomain: its pods, its Lease-based DC election and failover, Service and
// status.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pkg/cache/store.h"
#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/controller/controller.h"
#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"
#include "pkg/election/lease_record.h"
#include "pkg/events/event_recorder.h"

namespace dpcm::metrics {
class Metrics;
}

namespace dpcm::domain {

// The informer caches the reconciler reads (never writes).
struct DomainCaches {
  const cache::Store& domains;
  const cache::Store& pods;
  const cache::Store& leases;
  const cache::Store& services;
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
class DomainReconciler final : public controller::Reconciler {
 public:
  // Everything passed must outlive the reconciler. `metrics` may be null.
  DomainReconciler(client::ApiClient& client, DomainCaches caches, events::EventRecorder& events,
                   metrics::Metrics* metrics, Clock& clock = RealClock::Instance());

  Result<controller::ReconcileResult> Reconcile(const controller::Request& request,
                                                const std::stop_token& stop) override;

  // The domains a pod event concerns: its dpcm.io/domain label, and adopt-mode
  // domains in its namespace whose selector matches its labels.
  static std::vector<controller::Request> DomainsForPod(const nlohmann::json& pod,
                                                        const cache::Store& domains);

 private:
  // What the reconciler remembers about a domain between calls (lost on restart,
  // which only costs precision in the failover-duration metric).
  struct Memory {
    std::optional<Clock::Monotonic::time_point> dc_failure_seen;
    std::string dc_failure_reason;
    std::optional<int64_t> failovers;
    std::string failing_over_from;  // set once the Lease left a failed DC, until promoted
    std::string service_error;      // last ServiceFailed message, to report it once
    std::string last_failover_time;
    int64_t invalid_spec_generation = -1;
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
                       const std::string& pod_name, int64_t epoch);
  Result<bool> PromoteOnce(const std::string& ns, const std::string& domain_name,
                           const std::string& pod_name, int64_t epoch);
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
  Clock& clock_;
  std::mutex memory_mutex_;
  std::map<std::string, Memory> memory_;  // by namespace/name; entries are stable
};

}  // namespace dpcm::domain
