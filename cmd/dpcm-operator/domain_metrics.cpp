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
  metrics_.SetDomainState(ns, domain,
                          {.dc_healthy = counts.dc_healthy,
                           .dc_unhealthy = counts.dc_unhealthy,
                           .pc_healthy = counts.pc_healthy,
                           .pc_unhealthy = counts.pc_unhealthy,
                           .terminating = counts.terminating,
                           .epoch = counts.epoch,
                           .dc_pods = counts.dc_pods,
                           .conditions = counts.conditions});
}

void MetricsDomainObserver::Forget(const std::string& ns, const std::string& domain) {
  metrics_.ForgetDomain(ns, domain);
}

}  // namespace dpcm
