#include "pkg/scheduler/scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

namespace dpcm::scheduler {
namespace {

workqueue::WorkQueueOptions QueueOptions(const SchedulerOptions& options, Clock& clock) {
  workqueue::WorkQueueOptions queue;
  queue.name = options.name;
  queue.clock = &clock;
  return queue;
}

}  // namespace

Scheduler::Scheduler(const SchedulerOptions& options, Work work)
    : clock_(options.clock != nullptr ? *options.clock : RealClock::Instance()),
      work_(std::move(work)),
      queue_(QueueOptions(options, clock_)) {
  const int workers = std::max(options.workers, 1);
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Serve(); });
}

Scheduler::~Scheduler() { Stop(); }

void Scheduler::RunNow(const std::string& key) { queue_.Add(key); }

void Scheduler::RunAt(const std::string& key, TimePoint due) { queue_.AddAt(key, due); }

void Scheduler::Stop() {
  queue_.ShutDown();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void Scheduler::Serve() {
  while (auto key = queue_.Get()) {
    std::optional<TimePoint> next;
    try {
      next = work_(*key);
    } catch (const std::exception& e) {
      spdlog::error("scheduler {}: work for {} threw: {}", queue_.name(), *key, e.what());
    }
    // Before Done: a due time already passed re-adds the key while it is still held, so it
    // runs again right after Done, like a RunNow during the run.
    if (next) RunAt(*key, *next);
    queue_.Done(*key);
  }
}

}  // namespace dpcm::scheduler
