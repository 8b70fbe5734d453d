// Runs keyed work at due times on a pool of worker threads, timed by an injected Clock.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pkg/clock/clock.h"
#include "pkg/workqueue/workqueue.h"

namespace dpcm::scheduler {

struct SchedulerOptions {
  std::string name;        // the work queue's name (for logs)
  int workers = 1;         // values < 1 count as 1
  Clock* clock = nullptr;  // null = the real clock; must outlive the scheduler
};

// Per-key timers served by `workers` threads, on a workqueue::WorkQueue (dedupe, one worker
// per key, delayed adds on the injected clock). What runs is one function of the key, which
// says when the key is due next: the health monitor checks a member and comes back one
// period later, the role hook runner delivers a domain's hooks and comes back at the next
// retry. The scheduler holds no state of its own about keys; the caller does.
//
// Guarantees: a key runs on one worker at a time; a key asked for (RunNow, or RunAt a time
// that has come) while it runs runs once more right after, so nothing asked for during a
// run is lost; RunAt twice before the key is due keeps the earlier time. Not guaranteed:
// RunNow does not cancel a pending RunAt (the key runs again then), and there is no
// Cancel, so work must tolerate a run that finds nothing to do (and return nullopt or its
// real next due time). Thread-safe.
class Scheduler {
 public:
  using TimePoint = Clock::Monotonic::time_point;
  // Does the work for `key` on a worker thread, with no lock of the scheduler held; returns
  // when `key` is due next (a time already passed: at once), or nullopt for "not until
  // scheduled again". Must not throw (an exception is logged and counts as nullopt).
  using Work = std::function<std::optional<TimePoint>(const std::string& key)>;

  // Starts the workers. `work` may be called as soon as a key is scheduled.
  Scheduler(const SchedulerOptions& options, Work work);
  ~Scheduler();  // Stop()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Runs `key` as soon as a worker is free (after its current run if it is running).
  void RunNow(const std::string& key);
  // Runs `key` once the clock reaches `due` (at once when it has).
  void RunAt(const std::string& key, TimePoint due);
  // Drops every waiting key, lets each worker finish its current run, and joins them.
  // Later RunNow/RunAt calls do nothing. Safe to call more than once.
  void Stop();

  // The injected clock: callers compute due times with it.
  Clock& clock() const { return clock_; }

 private:
  void Serve();

  Clock& clock_;
  Work work_;
  workqueue::WorkQueue queue_;
  std::vector<std::jthread> workers_;  // last: they start once everything above exists
};

}  // namespace dpcm::scheduler
