#include "pkg/metrics/workqueue_observer.h"

#include <chrono>

namespace dpcm::metrics {
namespace {

double Seconds(Clock::Monotonic::duration duration) {
  return std::chrono::duration<double>(duration).count();
}

class WorkQueueMetrics final : public workqueue::QueueObserver {
 public:
  WorkQueueMetrics(Metrics& metrics, const std::string& name)
      : depth_(metrics.WorkQueueDepth(name)),
        adds_(metrics.WorkQueueAddsTotal(name)),
        queue_duration_(metrics.WorkQueueQueueDuration(name)),
        work_duration_(metrics.WorkQueueWorkDuration(name)),
        retries_(metrics.WorkQueueRetriesTotal(name)) {}

  void OnAdd() override { adds_.Increment(); }
  void OnDepth(std::size_t depth) override { depth_.Set(static_cast<double>(depth)); }
  void OnQueueLatency(Clock::Monotonic::duration latency) override {
    queue_duration_.Observe(Seconds(latency));
  }
  void OnWorkDuration(Clock::Monotonic::duration duration) override {
    work_duration_.Observe(Seconds(duration));
  }
  void OnRetry() override { retries_.Increment(); }

 private:
  prometheus::Gauge& depth_;
  prometheus::Counter& adds_;
  prometheus::Histogram& queue_duration_;
  prometheus::Histogram& work_duration_;
  prometheus::Counter& retries_;
};

}  // namespace

std::unique_ptr<workqueue::QueueObserver> NewWorkQueueObserver(Metrics& metrics,
                                                               const std::string& name) {
  return std::make_unique<WorkQueueMetrics>(metrics, name);
}

}  // namespace dpcm::metrics
