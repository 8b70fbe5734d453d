#include "pkg/workqueue/workqueue.h"

#include <algorithm>

namespace dpcm::workqueue {

WorkQueue::WorkQueue(WorkQueueOptions options)
    : name_(std::move(options.name)),
      clock_(options.clock != nullptr ? *options.clock : RealClock::Instance()),
      rate_limiter_(options.rate_limiter != nullptr ? std::move(options.rate_limiter)
                                                    : DefaultControllerRateLimiter(clock_)),
      observer_(std::move(options.observer)),
      timer_([this] { TimerLoop(); }) {}

WorkQueue::~WorkQueue() {
  ShutDown();
  if (timer_.joinable()) timer_.join();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard lock(mutex_);
  AddLocked(key, clock_.Now());
}

void WorkQueue::AddLocked(const std::string& key, TimePoint now, bool urgent) {
  if (shutting_down_ || urgent_keys_.contains(key)) return;
  const bool waiting = !dirty_.insert(key).second;
  if (waiting && !urgent) return;
  if (waiting) {
    // Already waiting in the normal lane (or to be queued by Done): move it up.
    const auto it = std::find(queue_.begin(), queue_.end(), key);
    if (it != queue_.end()) queue_.erase(it);
  } else if (observer_ != nullptr) {
    observer_->OnAdd();
    added_at_.try_emplace(key, now);
    ReportDepthLocked();
  }
  if (urgent) urgent_keys_.insert(key);
  if (processing_.contains(key)) return;  // queued again by Done
  (urgent ? urgent_ : queue_).push_back(key);
  ready_.notify_all();  // one of the sleepers may be the urgent-only worker
}

void WorkQueue::AddUrgent(const std::string& key) {
  std::lock_guard lock(mutex_);
  AddLocked(key, clock_.Now(), true);
}

std::optional<std::string> WorkQueue::Get() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (shutting_down_) return std::nullopt;
    if (!urgent_.empty()) return TakeLocked(urgent_);
    if (queue_.empty()) ReleaseDueLocked(clock_.Now());
    if (!queue_.empty()) return TakeLocked(queue_);
    ready_.wait(lock);
  }
}

std::optional<std::string> WorkQueue::GetUrgent() {
  std::unique_lock lock(mutex_);
  for (;;) {
    if (shutting_down_) return std::nullopt;
    if (!urgent_.empty()) return TakeLocked(urgent_);
    ready_.wait(lock);
  }
}

std::string WorkQueue::TakeLocked(std::deque<std::string>& lane) {
  std::string key = std::move(lane.front());
  lane.pop_front();
  dirty_.erase(key);
  urgent_keys_.erase(key);
  processing_.insert(key);
  if (observer_ != nullptr) {
    const auto now = clock_.Now();
    if (const auto it = added_at_.find(key); it != added_at_.end()) {
      observer_->OnQueueLatency(now - it->second);
      added_at_.erase(it);
    }
    started_at_[key] = now;
    ReportDepthLocked();
  }
  return key;
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard lock(mutex_);
  if (processing_.erase(key) == 0) return;
  if (observer_ != nullptr) {
    if (const auto it = started_at_.find(key); it != started_at_.end()) {
      observer_->OnWorkDuration(clock_.Now() - it->second);
      started_at_.erase(it);
    }
  }
  if (!shutting_down_ && dirty_.contains(key)) {
    (urgent_keys_.contains(key) ? urgent_ : queue_).push_back(key);
    ready_.notify_all();
  }
}

void WorkQueue::AddAfter(const std::string& key, Duration delay) {
  std::lock_guard lock(mutex_);
  const TimePoint now = clock_.Now();
  AddAtLocked(key, now + delay, now);
}

void WorkQueue::AddAt(const std::string& key, TimePoint due) {
  std::lock_guard lock(mutex_);
  AddAtLocked(key, due, clock_.Now());
}

void WorkQueue::AddAtLocked(const std::string& key, TimePoint due, TimePoint now) {
  if (shutting_down_) return;
  if (due <= now) {
    AddLocked(key, now);
    return;
  }
  const auto [it, inserted] = delayed_due_.try_emplace(key, due);
  if (!inserted) {
    if (it->second <= due) return;  // already due sooner
    delayed_.erase({it->second, key});
    it->second = due;
  }
  const bool earliest = delayed_.empty() || due < delayed_.begin()->first;
  delayed_.emplace(due, key);
  if (earliest) {
    timer_interrupt_.request_stop();
    timer_changed_.notify_one();
  }
}

void WorkQueue::AddRateLimited(const std::string& key) {
  if (ShuttingDown()) return;
  const Duration delay = rate_limiter_->When(key);
  std::lock_guard lock(mutex_);
  if (shutting_down_) return;
  if (observer_ != nullptr) observer_->OnRetry();
  const TimePoint now = clock_.Now();
  AddAtLocked(key, now + delay, now);
}

void WorkQueue::Forget(const std::string& key) { rate_limiter_->Forget(key); }

int WorkQueue::NumRequeues(const std::string& key) const { return rate_limiter_->NumRequeues(key); }

void WorkQueue::ShutDown() {
  std::lock_guard lock(mutex_);
  if (shutting_down_) return;
  shutting_down_ = true;
  queue_.clear();
  urgent_.clear();
  urgent_keys_.clear();
  dirty_.clear();
  added_at_.clear();
  delayed_.clear();
  delayed_due_.clear();
  if (observer_ != nullptr) ReportDepthLocked();
  ready_.notify_all();
  timer_interrupt_.request_stop();
  timer_changed_.notify_all();
}

bool WorkQueue::ShuttingDown() const {
  std::lock_guard lock(mutex_);
  return shutting_down_;
}

std::size_t WorkQueue::Len() {
  std::lock_guard lock(mutex_);
  if (!shutting_down_) ReleaseDueLocked(clock_.Now());
  return queue_.size() + urgent_.size();
}

void WorkQueue::ReleaseDueLocked(TimePoint now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    const std::string key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    delayed_due_.erase(key);
    AddLocked(key, now);
  }
}

void WorkQueue::ReportDepthLocked() const { observer_->OnDepth(dirty_.size()); }

void WorkQueue::TimerLoop() {
  std::unique_lock lock(mutex_);
  while (!shutting_down_) {
    const TimePoint now = clock_.Now();
    ReleaseDueLocked(now);
    if (delayed_.empty()) {
      timer_changed_.wait(lock);
      continue;
    }
    // Until the deadline itself, not for (deadline - now): a clock moved meanwhile (a test's
    // FakeClock::Advance) must not push the wake-up later.
    const TimePoint due = delayed_.begin()->first;
    // A fresh source per sleep: AddAfter of an earlier key and ShutDown cut it short.
    timer_interrupt_ = std::stop_source();
    const std::stop_token interrupted = timer_interrupt_.get_token();
    lock.unlock();
    clock_.SleepUntil(due, interrupted);
    lock.lock();
  }
}

}  // namespace dpcm::workqueue
