#include "tests/podsim/work_queue.h"

namespace dpcm::podsim {

void WorkQueue::AddLocked(const std::string& key) {
  if (shut_down_ || !dirty_.insert(key).second) return;
  if (processing_.count(key) == 0) queue_.push_back(key);
  changed_.notify_one();
}

void WorkQueue::Add(const std::string& key) {
  std::lock_guard lock(mutex_);
  AddLocked(key);
}

void WorkQueue::AddAfter(const std::string& key, Clock::duration delay) {
  if (delay <= Clock::duration::zero()) {
    Add(key);
    return;
  }
  std::lock_guard lock(mutex_);
  if (shut_down_) return;
  const auto at = Clock::now() + delay;
  const auto pending = delayed_at_.find(key);
  if (pending != delayed_at_.end()) {
    if (pending->second <= at) return;
    for (auto [it, end] = delayed_.equal_range(pending->second); it != end; ++it) {
      if (it->second == key) {
        delayed_.erase(it);
        break;
      }
    }
  }
  delayed_at_[key] = at;
  delayed_.emplace(at, key);
  changed_.notify_all();  // a sleeping Get may need to wake earlier
}

void WorkQueue::PromoteDueLocked(Clock::time_point now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    const std::string key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    delayed_at_.erase(key);
    AddLocked(key);
  }
}

std::optional<std::string> WorkQueue::Get(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (true) {
    if (shut_down_ || stop.stop_requested()) return std::nullopt;
    PromoteDueLocked(Clock::now());
    if (!queue_.empty()) {
      std::string key = std::move(queue_.front());
      queue_.pop_front();
      dirty_.erase(key);
      processing_.insert(key);
      return key;
    }
    if (delayed_.empty()) {
      changed_.wait(lock, stop,
                    [this] { return shut_down_ || !queue_.empty() || !delayed_.empty(); });
    } else {
      const auto next = delayed_.begin()->first;
      changed_.wait_until(lock, stop, next, [this, next] {
        return shut_down_ || !queue_.empty() || delayed_.empty() || delayed_.begin()->first < next;
      });
    }
  }
}

void WorkQueue::Done(const std::string& key) {
  std::lock_guard lock(mutex_);
  processing_.erase(key);
  if (dirty_.count(key) != 0 && !shut_down_) {
    queue_.push_back(key);
    changed_.notify_one();
  }
}

void WorkQueue::ShutDown() {
  std::lock_guard lock(mutex_);
  shut_down_ = true;
  changed_.notify_all();
}

size_t WorkQueue::depth() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace dpcm::podsim
