#include "pkg/metrics/reconcile_observer.h"

#include <chrono>

#include "pkg/metrics/workqueue_observer.h"

namespace dpcm::metrics {
namespace {

class ReconcileMetrics final : public controller::ReconcileObserver {
 public:
  ReconcileMetrics(Metrics& metrics, const std::string& name)
      : success_(metrics.ReconcileTotal(name, ReconcileOutcome::kSuccess)),
        error_(metrics.ReconcileTotal(name, ReconcileOutcome::kError)),
        requeue_(metrics.ReconcileTotal(name, ReconcileOutcome::kRequeue)),
        requeue_after_(metrics.ReconcileTotal(name, ReconcileOutcome::kRequeueAfter)),
        errors_(metrics.ReconcileErrorsTotal(name)),
        reconcile_time_(metrics.ReconcileTime(name)) {
    metrics.RegisterController(name);
  }

  void OnReconcile(controller::ReconcileOutcome outcome, Clock::Monotonic::duration took) override {
    reconcile_time_.Observe(std::chrono::duration<double>(took).count());
    switch (outcome) {
      case controller::ReconcileOutcome::kSuccess:
        success_.Increment();
        break;
      case controller::ReconcileOutcome::kError:
        error_.Increment();
        errors_.Increment();
        break;
      case controller::ReconcileOutcome::kRequeue:
        requeue_.Increment();
        break;
      case controller::ReconcileOutcome::kRequeueAfter:
        requeue_after_.Increment();
        break;
    }
  }

 private:
  prometheus::Counter& success_;
  prometheus::Counter& error_;
  prometheus::Counter& requeue_;
  prometheus::Counter& requeue_after_;
  prometheus::Counter& errors_;
  prometheus::Histogram& reconcile_time_;
};

}  // namespace

std::unique_ptr<controller::ReconcileObserver> NewReconcileObserver(Metrics& metrics,
                                                                    const std::string& name) {
  return std::make_unique<ReconcileMetrics>(metrics, name);
}

void ObserveController(Metrics& metrics, controller::ControllerOptions& options) {
  options.observer = NewReconcileObserver(metrics, options.name);
  options.queue_observer = NewWorkQueueObserver(metrics, options.name);
}

}  // namespace dpcm::metrics
