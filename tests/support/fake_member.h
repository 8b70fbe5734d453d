// Fakes of the member side for the health monitor's and role hook runner's tests: what a
// member does when reached, and who was told of changes.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace dpcm::testing {

// What a fake member does when the operator reaches it, by name: fail, take real time, or
// hang until released. Thread-safe.
class MemberBehaviour {
 public:
  // `default_delay`: the real time a member without SetDelay takes.
  explicit MemberBehaviour(std::chrono::milliseconds default_delay = {})
      : default_delay_(default_delay) {}

  void SetFailing(const std::string& name, bool failing) {
    std::lock_guard lock(mutex_);
    if (failing) {
      failing_.insert(name);
    } else {
      failing_.erase(name);
    }
  }
  // The real time reaching `name` takes (for Stop, which waits for work in flight).
  void SetDelay(const std::string& name, std::chrono::milliseconds delay) {
    std::lock_guard lock(mutex_);
    delay_[name] = delay;
  }
  // Reaching `name` hangs until ReleaseAll (which must come before the monitor or runner
  // stops: stopping waits for work in flight).
  void Hold(const std::string& name) {
    std::lock_guard lock(mutex_);
    held_.insert(name);
  }
  void ReleaseAll() {
    {
      std::lock_guard lock(mutex_);
      held_.clear();
    }
    changed_.notify_all();
  }
  // Reaches member `who`: waits while it is held, then takes its delay. Returns whether
  // `failing_name` (its name, or e.g. its IP) was set failing.
  bool Reach(const std::string& who, const std::string& failing_name) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return held_.count(who) == 0; });
    const bool fail = failing_.count(failing_name) != 0;
    const auto delay = delay_.count(who) != 0 ? delay_[who] : default_delay_;
    lock.unlock();
    std::this_thread::sleep_for(delay);
    return fail;
  }

 private:
  const std::chrono::milliseconds default_delay_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::string> failing_;
  std::set<std::string> held_;
  std::map<std::string, std::chrono::milliseconds> delay_;
};

// Counts on_change(ns, domain) calls per "ns/domain". Thread-safe.
class ChangeCounter {
 public:
  std::function<void(const std::string&, const std::string&)> Handler() {
    return [this](const std::string& ns, const std::string& domain) {
      std::lock_guard lock(mutex_);
      ++counts_[ns + "/" + domain];
    };
  }
  int Count(const std::string& key) {
    std::lock_guard lock(mutex_);
    return counts_[key];
  }

 private:
  std::mutex mutex_;
  std::map<std::string, int> counts_;
};

}  // namespace dpcm::testing
