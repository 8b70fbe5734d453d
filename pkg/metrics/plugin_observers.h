// Feeds the health monitor's and the role hook runner's observations to the dpcm_* families.
#pragma once

#include <memory>

#include "pkg/health/monitor.h"
#include "pkg/metrics/metrics.h"
#include "pkg/rolehook/runner.h"

namespace dpcm::metrics {

// A health::CheckObserver that counts each check in dpcm_health_checks_total{namespace,
// domain,result} and observes its duration in dpcm_health_check_duration_seconds.
// `metrics` must outlive the observer.
std::unique_ptr<health::CheckObserver> NewHealthCheckObserver(Metrics& metrics);

// A rolehook::DeliveryObserver that counts each delivery in dpcm_role_hooks_total{namespace,
// domain,result="success"|"failure"}. `metrics` must outlive the observer.
std::unique_ptr<rolehook::DeliveryObserver> NewRoleHookObserver(Metrics& metrics);

}  // namespace dpcm::metrics
