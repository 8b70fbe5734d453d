// Feeds a WorkQueue's measurements to the workqueue_* metric families.
#pragma once

#include <memory>
#include <string>

#include "pkg/metrics/metrics.h"
#include "pkg/workqueue/workqueue.h"

namespace dpcm::metrics {

// An observer for WorkQueueOptions::observer that reports queue `name` as workqueue_depth,
// workqueue_adds_total, workqueue_queue_duration_seconds, workqueue_work_duration_seconds
// and workqueue_retries_total (controller-runtime's workqueue metrics provider). The series
// are created, at zero, right away. `metrics` must outlive the observer.
std::unique_ptr<workqueue::QueueObserver> NewWorkQueueObserver(Metrics& metrics,
                                                               const std::string& name);

}  // namespace dpcm::metrics
