// The domain reconciler's observer, reporting to the operator's Prometheus metrics
// (dpcm_failovers_total and friends).
#pragma once

#include "pkg/domain/domain_observer.h"
#include "pkg/metrics/metrics.h"

namespace dpcm {

// Thread-safe (Metrics is). `metrics` must outlive it.
class MetricsDomainObserver final : public domain::DomainObserver {
 public:
  explicit MetricsDomainObserver(metrics::Metrics& metrics) : metrics_(metrics) {}
  void Failover(const std::string& ns, const std::string& domain,
                const domain::FailoverRecord& record) override;
  void FailoverPhase(const std::string& ns, const std::string& domain, const std::string& phase,
                     std::chrono::steady_clock::duration at) override;
  void Restarted(const std::string& ns, const std::string& domain,
                 const std::string& reason) override;
  void Counts(const std::string& ns, const std::string& domain,
              const domain::DomainCounts& counts) override;
  void Forget(const std::string& ns, const std::string& domain) override;

 private:
  metrics::Metrics& metrics_;
};

}  // namespace dpcm
