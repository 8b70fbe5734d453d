#include "cmd/dpcm-operator/domain_metrics.h"

#include "pkg/domain/spec.h"

namespace dpcm {

void MetricsDomainObserver::Failover(const std::string& ns, const std::string& domain,
                                     const domain::FailoverRecord& record) {
  const auto seconds = [](std::chrono::steady_clock::duration d) {
    return std::chrono::duration<double>(d).count();
  };
  metrics_.FailoversTotal(ns, domain, record.reason)->Increment();
  metrics_.FailoverDuration(ns, domain)->Observe(seconds(record.took()));
  for (const auto& [phase, at] : record.phases) {
    metrics_.FailoverPhaseDuration(ns, domain, phase)->Observe(seconds(at));
  }
}

void MetricsDomainObserver::FailoverPhase(const std::string& ns, const std::string& domain,
                                          const std::string& phase,
                                          std::chrono::steady_clock::duration at) {
  metrics_.FailoverPhaseDuration(ns, domain, phase)
      ->Observe(std::chrono::duration<double>(at).count());
}

void MetricsDomainObserver::Restarted(const std::string& ns, const std::string& domain,
                                      const std::string& reason) {
  metrics_.PodRestartsTotal(ns, domain, reason)->Increment();
}

void MetricsDomainObserver::Counts(const std::string& ns, const std::string& domain,
                                   const domain::DomainCounts& counts) {
  metrics_.DomainActivePods(ns, domain)->Set(counts.dc_healthy + counts.dc_unhealthy);
  metrics_.DomainEpoch(ns, domain)->Set(static_cast<double>(counts.epoch));
  metrics_.DomainMembers(ns, domain, domain::kRoleDc, true)->Set(counts.dc_healthy);
  metrics_.DomainMembers(ns, domain, domain::kRoleDc, false)->Set(counts.dc_unhealthy);
  metrics_.DomainMembers(ns, domain, domain::kRolePc, true)->Set(counts.pc_healthy);
  metrics_.DomainMembers(ns, domain, domain::kRolePc, false)->Set(counts.pc_unhealthy);
  metrics_.DomainTerminatingMembers(ns, domain)->Set(counts.terminating);
  metrics_.SetDomainDcPods(ns, domain, counts.dc_pods);
  for (const auto& [type, status] : counts.conditions) {
    metrics_.DomainCondition(ns, domain, type)->Set(status ? 1 : 0);
  }
}

void MetricsDomainObserver::Forget(const std::string& ns, const std::string& domain) {
  metrics_.ForgetDomain(ns, domain);
}

}  // namespace dpcm
