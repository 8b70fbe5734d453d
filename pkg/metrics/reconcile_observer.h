// Feeds a controller's reconciles to the controller_runtime_reconcile_* families.
#pragma once

#include <memory>
#include <string>

#include "pkg/controller/controller.h"
#include "pkg/metrics/metrics.h"

namespace dpcm::metrics {

// An observer for ControllerOptions::observer that counts controller `name`'s reconciles in
// controller_runtime_reconcile_total{controller,result} (errors also in
// controller_runtime_reconcile_errors_total) and times them in
// controller_runtime_reconcile_time_seconds. The series are created, at zero, right away.
// `metrics` must outlive the observer.
std::unique_ptr<controller::ReconcileObserver> NewReconcileObserver(Metrics& metrics,
                                                                    const std::string& name);

// Both of a controller's observers (reconciles and its work queue's workqueue_* families),
// set in `options` under options.name.
void ObserveController(Metrics& metrics, controller::ControllerOptions& options);

}  // namespace dpcm::metrics
