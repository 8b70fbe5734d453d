#include "pkg/controller/controller.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace dpcm::controller {
namespace {

workqueue::WorkQueueOptions QueueOptions(ControllerOptions& options, Clock& clock) {
  workqueue::WorkQueueOptions queue;
  queue.name = options.name;
  queue.clock = &clock;
  queue.rate_limiter = std::move(options.rate_limiter);
  queue.observer = std::move(options.queue_observer);
  return queue;
}

}  // namespace

std::string Request::Key() const { return ns.empty() ? name : ns + "/" + name; }

Request Request::FromKey(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return {"", std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

Controller::Controller(ControllerOptions options, Reconciler& reconciler)
    : name_(options.name),
      workers_(std::max(options.workers, 1)),
      clock_(options.clock != nullptr ? *options.clock : RealClock::Instance()),
      reconciler_(reconciler),
      observer_(std::move(options.observer)),
      queue_(QueueOptions(options, clock_)),
      conflict_backoff_(std::chrono::milliseconds(5), std::chrono::seconds(1)) {}

void Controller::Enqueue(const Request& request) { queue_.Add(request.Key()); }

void Controller::EnqueueUrgent(const Request& request) {
  const std::string key = request.Key();
  queue_.AddUrgent(key);
  std::lock_guard lock(running_mutex_);
  if (const auto it = running_.find(key); it != running_.end()) it->second.request_stop();
}

Status Controller::Run(const std::stop_token& stop) {
  if (started_.exchange(true)) {
    return Status::Internal("controller " + name_ + ": Run called twice");
  }
  spdlog::info("controller {}: starting {} workers and one for urgent requests", name_, workers_);
  {
    std::vector<std::jthread> workers;
    workers.reserve(static_cast<std::size_t>(workers_) + 1);
    for (int i = 0; i < workers_; ++i) {
      workers.emplace_back([this, stop] { Work(stop, false); });
    }
    workers.emplace_back([this, stop] { Work(stop, true); });
    std::mutex mutex;
    std::condition_variable_any stopped;
    std::unique_lock lock(mutex);
    stopped.wait(lock, stop, [] { return false; });
    spdlog::info("controller {}: stopping", name_);
    queue_.ShutDown();
  }  // joins the workers
  spdlog::info("controller {}: stopped", name_);
  return Status::Ok();
}

void Controller::Work(const std::stop_token& stop, bool urgent_only) {
  while (auto key = urgent_only ? queue_.GetUrgent() : queue_.Get()) {
    const auto started = clock_.Now();
    bool preempted = false;
    const auto outcome = urgent_only ? ReconcileCatching(Request::FromKey(*key), stop)
                                     : ReconcilePreemptible(*key, stop, preempted);
    ApplyOutcome(*key, outcome, clock_.Now() - started, preempted);
    queue_.Done(*key);
  }
}

Result<ReconcileResult> Controller::ReconcilePreemptible(const std::string& key,
                                                         const std::stop_token& stop,
                                                         bool& preempted) {
  std::stop_source source;
  {
    std::lock_guard lock(running_mutex_);
    running_.insert_or_assign(key, source);
  }
  Result<ReconcileResult> outcome = Status::Internal("not reconciled");
  {
    const std::stop_callback on_stop(stop, [&source] { source.request_stop(); });
    outcome = ReconcileCatching(Request::FromKey(key), source.get_token());
  }
  std::lock_guard lock(running_mutex_);
  running_.erase(key);
  preempted = source.stop_requested() && !stop.stop_requested();
  return outcome;
}

Result<ReconcileResult> Controller::ReconcileCatching(const Request& request,
                                                      const std::stop_token& stop) {
  try {
    return reconciler_.Reconcile(request, stop);
  } catch (const std::exception& e) {
    spdlog::error("controller {}: reconcile {} threw: {}", name_, request.Key(), e.what());
    return Status::Internal(std::string("reconciler threw: ") + e.what());
  } catch (...) {
    spdlog::error("controller {}: reconcile {} threw a non-exception", name_, request.Key());
    return Status::Internal("reconciler threw a non-exception");
  }
}

void Controller::ApplyOutcome(const std::string& key, const Result<ReconcileResult>& outcome,
                              Clock::Monotonic::duration elapsed, bool preempted) {
  const auto observe = [&](ReconcileOutcome result) {
    if (observer_ != nullptr) observer_->OnReconcile(result, elapsed);
  };
  if (!outcome.ok() && preempted) {
    // Not an error: the urgent request that preempted it is queued (handed out after
    // Done) and redoes it, so no retry either.
    observe(ReconcileOutcome::kRequeue);
    spdlog::debug("controller {}: reconcile {} preempted by an urgent request: {}", name_, key,
                  outcome.status().ToString());
    return;
  }
  if (!outcome.ok()) {
    observe(ReconcileOutcome::kError);
    if (outcome.status().IsConflict()) {
      spdlog::debug("controller {}: reconcile {}: {}; retrying", name_, key,
                    outcome.status().ToString());
      queue_.AddAfter(key, conflict_backoff_.When(key));
      return;
    }
    spdlog::warn("controller {}: reconcile {} failed (retry {}): {}", name_, key,
                 queue_.NumRequeues(key) + 1, outcome.status().ToString());
    queue_.AddRateLimited(key);
    return;
  }
  conflict_backoff_.Forget(key);
  const ReconcileResult& result = *outcome;
  if (result.requeue_after) {
    // A deadline that has already passed (or is less than a millisecond away and was
    // rounded down) is due now: dropping it would leave the request unreconciled until
    // some unrelated event.
    queue_.Forget(key);
    queue_.AddAfter(key, std::max(*result.requeue_after, std::chrono::milliseconds::zero()));
    observe(ReconcileOutcome::kRequeueAfter);
    return;
  }
  if (result.requeue) {
    queue_.AddRateLimited(key);
    observe(ReconcileOutcome::kRequeue);
    return;
  }
  queue_.Forget(key);
  observe(ReconcileOutcome::kSuccess);
}

}  // namespace dpcm::controller
