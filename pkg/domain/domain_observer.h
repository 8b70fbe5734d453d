// What the reconciler reports about domains to metrics, as a small interface (the operator wires it
// to Prometheus).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace dpcm::domain {

// Members of one domain by role and health, after a reconcile.
struct DomainCounts {
  int dc_healthy = 0;
  int dc_unhealthy = 0;
  int pc_healthy = 0;
  int pc_unhealthy = 0;
  int terminating = 0;               // members whose pod is being deleted
  std::vector<std::string> dc_pods;  // the pods labeled DC (one when all is well)
  int64_t epoch = 0;
  // The status conditions as written: type (Ready, Degraded, Progressing) → True?
  std::vector<std::pair<std::string, bool>> conditions;
};

// One failover as the flight recorder saw it: each phase's end, counted from the moment
// the failure of the old DC was first seen. Phases in order: "decided" (the reconcile
// chose the new DC), "fenced" (every other suspect fenced), "leaseWritten", "labeled"
// (the new DC labeled; absent when the promote failed and is left to a later reconcile).
// The last phase, "hooksAcknowledged" (the new DC's role hook acknowledged "dc"), comes
// later, through DomainObserver::FailoverPhase (flight_recorder.h).
struct FailoverRecord {
  std::string from;
  std::string to;
  std::string reason;
  int64_t epoch = 0;
  std::vector<std::pair<std::string, std::chrono::steady_clock::duration>> phases;
  // The domain has role hooks: the hooksAcknowledged phase is awaited.
  bool awaits_hooks = false;

  // The last phase's end: the failover's duration so far.
  std::chrono::steady_clock::duration took() const {
    return phases.empty() ? std::chrono::steady_clock::duration::zero() : phases.back().second;
  }
};

// Called from reconcile workers (any thread); implementations must be thread-safe.
class DomainObserver {
 public:
  virtual ~DomainObserver() = default;
  // The DC role left a member that is no longer fit (record.reason, e.g. "pod-deleted").
  virtual void Failover(const std::string& ns, const std::string& domain,
                        const FailoverRecord& record) = 0;
  // A phase of the last failover that ended after Failover was reported
  // ("hooksAcknowledged"), `at` counted from the failure being seen.
  virtual void FailoverPhase(const std::string& ns, const std::string& domain,
                             const std::string& phase, std::chrono::steady_clock::duration at) = 0;
  // A member was restarted for `reason` ("health-check-failed").
  virtual void Restarted(const std::string& ns, const std::string& domain,
                         const std::string& reason) = 0;
  virtual void Counts(const std::string& ns, const std::string& domain,
                      const DomainCounts& counts) = 0;
  // The domain is gone: drop everything reported about it.
  virtual void Forget(const std::string& ns, const std::string& domain) = 0;
};

}  // namespace dpcm::domain
