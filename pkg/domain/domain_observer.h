// What the reconciler reports about domains to metrics, as a small interface (the operator wires it
// to Prometheus).
#pragma once

#include <chrono>
#include <string>

namespace dpcm::domain {

// Members of one domain by role and health, after a reconcile.
struct DomainCounts {
  int dc_healthy = 0;
  int dc_unhealthy = 0;
  int pc_healthy = 0;
  int pc_unhealthy = 0;
  int64_t epoch = 0;
};

// Called from reconcile workers (any thread); implementations must be thread-safe.
class DomainObserver {
 public:
  virtual ~DomainObserver() = default;
  // The DC role left a member that is no longer fit (`reason`, e.g. "pod-deleted"),
  // `took` after the failure was first seen.
  virtual void Failover(const std::string& ns, const std::string& domain, const std::string& reason,
                        std::chrono::steady_clock::duration took) = 0;
  // A member was restarted for `reason` ("health-check-failed").
  virtual void Restarted(const std::string& ns, const std::string& domain,
                         const std::string& reason) = 0;
  virtual void Counts(const std::string& ns, const std::string& domain,
                      const DomainCounts& counts) = 0;
  // The domain is gone: drop everything reported about it.
  virtual void Forget(const std::string& ns, const std::string& domain) = 0;
};

}  // namespace dpcm::domain
