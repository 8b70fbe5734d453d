// Queues keys for controller workers: dedupe, one worker per key, delayed adds, retry backoff.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "pkg/clock/clock.h"
#include "pkg/workqueue/rate_limiter.h"

namespace dpcm::workqueue {

// Receives the queue's measurements (client-go's MetricsProvider); metrics::
// NewWorkQueueObserver feeds them to the workqueue_* families. Called with the queue's
// lock held: implementations must be quick and must not call back into the queue.
class QueueObserver {
 public:
  virtual ~QueueObserver() = default;
  // A key became waiting (an Add that was not a duplicate).
  virtual void OnAdd() = 0;
  // The number of keys waiting to be handed out, after every change.
  virtual void OnDepth(std::size_t depth) = 0;
  // How long a key waited between becoming waiting and being handed to a worker.
  virtual void OnQueueLatency(Clock::Monotonic::duration latency) = 0;
  // How long a worker held a key, from Get to Done.
  virtual void OnWorkDuration(Clock::Monotonic::duration duration) = 0;
  // AddRateLimited was called (a retry).
  virtual void OnRetry() = 0;
};

struct WorkQueueOptions {
  std::string name;                           // the workqueue_* "name" label
  Clock* clock = nullptr;                     // null = the real clock; must outlive the queue
  std::unique_ptr<RateLimiter> rate_limiter;  // null = DefaultControllerRateLimiter
  std::unique_ptr<QueueObserver> observer;    // optional
};

// client-go's three layers in one thread-safe class:
//  - plain: Add dedupes a key that is already waiting; Get hands a key to one worker,
//    and a key being processed is not handed out again until its Done, however often it
//    is added meanwhile (it is queued once more after Done instead);
//  - delaying: AddAfter adds a key once the clock passes a delay. A timer thread sleeps
//    on the injected Clock, so tests drive it with FakeClock::Advance. Get and Len also
//    release due keys themselves, so a test that advances a FakeClock and then calls
//    them sees the key without waiting for the timer thread;
//  - rate limited: AddRateLimited adds after the RateLimiter's backoff for the key;
//    Forget resets that backoff;
//  - urgent (dpcm's own): AddUrgent puts a key in a lane that Get serves before every
//    other waiting key, and GetUrgent serves only that lane. A failure that must be
//    acted on at once (a DC that died) never waits behind housekeeping, however many
//    keys are queued: the controller keeps one worker for this lane alone.
class WorkQueue {
 public:
  using Duration = Clock::Monotonic::duration;
  using TimePoint = Clock::Monotonic::time_point;

  explicit WorkQueue(WorkQueueOptions options = {});
  // Shuts the queue down and joins its timer thread.
  ~WorkQueue();
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  // Marks `key` as needing processing. Does nothing if it is already waiting or the queue
  // is shutting down; if a worker holds it, it is handed out again after Done.
  void Add(const std::string& key);
  // Blocks until a key is available and hands it to the caller, who must call Done(key)
  // when finished. Returns nullopt once the queue is shutting down, even if keys are
  // still waiting.
  std::optional<std::string> Get();
  // Like Add, but the key goes to the urgent lane, which Get and GetUrgent serve before
  // anything else (in the order of AddUrgent). A key already waiting in the normal lane
  // moves to the urgent one; a key being processed is handed out again after Done, from
  // the urgent lane.
  void AddUrgent(const std::string& key);
  // Like Get, but blocks until an urgent key is available (normal keys are left to Get).
  std::optional<std::string> GetUrgent();
  // Ends the caller's processing of `key` (from Get). If it was added meanwhile it is
  // queued again. A key that is not being processed is ignored.
  void Done(const std::string& key);

  // Adds `key` once `delay` has passed on the clock; a delay <= 0 adds now. A key already
  // waiting for its delay keeps the earlier of the two times.
  void AddAfter(const std::string& key, Duration delay);
  // Adds `key` once the clock reaches `due` (now if it has), like AddAfter. For a caller
  // that holds a deadline: converting it to a delay and back would let the clock move in
  // between and push the deadline later.
  void AddAt(const std::string& key, TimePoint due);

  // Adds `key` after the rate limiter's next backoff for it (a retry after a failure).
  void AddRateLimited(const std::string& key);
  // Resets the rate limiter's memory of `key` (call when it was processed successfully).
  // Does not remove the key from the queue.
  void Forget(const std::string& key);
  // Failures recorded for `key` since it was last forgotten.
  int NumRequeues(const std::string& key) const;

  // Stops the queue: wakes every Get caller (they return nullopt), drops waiting and
  // delayed keys, and ignores later adds. Safe to call more than once.
  void ShutDown();
  bool ShuttingDown() const;

  // The number of keys waiting to be handed out (not those being processed, nor those
  // whose delay has not passed yet).
  std::size_t Len();

  const std::string& name() const { return name_; }

 private:
  void AddLocked(const std::string& key, TimePoint now, bool urgent = false);  // requires mutex_
  std::string TakeLocked(std::deque<std::string>& lane);                       // requires mutex_
  void AddAtLocked(const std::string& key, TimePoint due, TimePoint now);      // requires mutex_
  void ReleaseDueLocked(TimePoint now);                                        // requires mutex_
  void ReportDepthLocked() const;                                              // requires mutex_
  void TimerLoop();

  const std::string name_;
  Clock& clock_;
  std::unique_ptr<RateLimiter> rate_limiter_;
  std::unique_ptr<QueueObserver> observer_;

  mutable std::mutex mutex_;
  std::condition_variable ready_;                // a key was queued, or shutdown
  std::condition_variable timer_changed_;        // the earliest delayed key changed, or shutdown
  bool shutting_down_ = false;                   // guarded by mutex_
  std::deque<std::string> queue_;                // guarded by mutex_; waiting, in order
  std::deque<std::string> urgent_;               // guarded by mutex_; urgent, served first
  std::unordered_set<std::string> urgent_keys_;  // guarded by mutex_; in urgent_ or due there
  std::unordered_set<std::string> dirty_;        // guarded by mutex_; needs processing
  std::unordered_set<std::string> processing_;   // guarded by mutex_; held by a worker
  std::unordered_map<std::string, TimePoint> added_at_;     // guarded by mutex_; with observer
  std::unordered_map<std::string, TimePoint> started_at_;   // guarded by mutex_; with observer
  std::set<std::pair<TimePoint, std::string>> delayed_;     // guarded by mutex_; by due time
  std::unordered_map<std::string, TimePoint> delayed_due_;  // guarded by mutex_
  std::stop_source timer_interrupt_;  // guarded by mutex_; cuts the timer's current sleep
  std::jthread timer_;                // last: starts after everything above exists
};

}  // namespace dpcm::workqueue
