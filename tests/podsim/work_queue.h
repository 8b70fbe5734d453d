// A keyed work queue: deduplicates keys, delays keys, and never hands one key to two workers.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>

namespace dpcm::podsim {

// The shape of client-go's workqueue, reduced to what the simulator needs:
// - Add(key) queues a key once however often it is added before a worker takes it;
// - a key added while a worker holds it is queued again when that worker calls Done;
// - AddAfter(key, d) queues it after d (the earliest of several pending delays wins).
// Thread-safe.
class WorkQueue {
 public:
  using Clock = std::chrono::steady_clock;

  void Add(const std::string& key);
  void AddAfter(const std::string& key, Clock::duration delay);
  // Blocks until a key is ready, the queue is shut down, or `stop` fires (then empty).
  // The caller owns the key until it calls Done(key).
  std::optional<std::string> Get(const std::stop_token& stop);
  void Done(const std::string& key);
  // Wakes every Get() with no key; later Gets return at once.
  void ShutDown();

  size_t depth() const;

 private:
  void AddLocked(const std::string& key);        // requires mutex_
  void PromoteDueLocked(Clock::time_point now);  // requires mutex_

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  std::deque<std::string> queue_;     // ready keys, in order
  std::set<std::string> dirty_;       // keys that need processing (queued or re-added)
  std::set<std::string> processing_;  // keys a worker holds
  std::multimap<Clock::time_point, std::string> delayed_;
  std::map<std::string, Clock::time_point> delayed_at_;  // key -> its pending time
  bool shut_down_ = false;
};

}  // namespace dpcm::podsim
