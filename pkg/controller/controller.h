// Runs a Reconciler over a work queue of namespace/name requests on N worker threads.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <unordered_map>

#include "pkg/clock/clock.h"
#include "pkg/status/status.h"
#include "pkg/workqueue/rate_limiter.h"
#include "pkg/workqueue/workqueue.h"

namespace dpcm::controller {

// What to reconcile: only the object's namespace and name (level-based: the reconciler
// reads the current state itself, it is not told what changed).
struct Request {
  std::string ns;  // empty for cluster-scoped objects
  std::string name;

  // "ns/name", or "name" when ns is empty (client-go's MetaNamespaceKeyFunc).
  std::string Key() const;
  // The inverse of Key(): splits at the first '/'; a key without one is a name alone.
  static Request FromKey(std::string_view key);

  bool operator==(const Request&) const = default;
};

// What the reconciler asks for when it succeeded.
struct ReconcileResult {
  // Reconcile again after this long (a level-based timer: a failover delay, a restart
  // back-off). Wins over `requeue`. Zero or negative means at once (a deadline that has
  // passed), never "unset": a timer must not be lost to rounding.
  std::optional<std::chrono::milliseconds> requeue_after;
  // Reconcile again after the rate limiter's backoff for this key.
  bool requeue = false;

  // Nothing more to do until the object changes.
  static ReconcileResult Done() { return {}; }
  static ReconcileResult RequeueAfter(std::chrono::milliseconds delay) { return {delay, false}; }
  static ReconcileResult Requeue() { return {std::nullopt, true}; }
};

// controller-runtime's reconcile.Reconciler. Called from several worker threads at once,
// but never for the same request on two of them at once. An error is retried with the
// rate limiter's backoff; so is an exception (which is logged and treated as an error,
// never propagated). `stop` fires when the controller is shutting down, or when an urgent
// request for the same object came while a normal worker reconciles it (the reconcile is
// preempted: it is run again at once, from the start, by the urgent worker): return soon,
// and do not wait for anything the object's state does not need (client::CancelWaitsScope
// for the API client's rate limiter).
class Reconciler {
 public:
  virtual ~Reconciler() = default;
  virtual Result<ReconcileResult> Reconcile(const Request& request,
                                            const std::stop_token& stop) = 0;
};

// How a reconcile ended, as the controller counts it (controller-runtime's `result` label).
enum class ReconcileOutcome { kSuccess, kError, kRequeue, kRequeueAfter };

// Told of every reconcile (metrics::NewReconcileObserver feeds controller_runtime_reconcile_*
// families). Called on worker threads, possibly at once; must be quick and thread-safe.
class ReconcileObserver {
 public:
  virtual ~ReconcileObserver() = default;
  // One reconcile ended with `outcome` (kError also for an exception) after `took`.
  virtual void OnReconcile(ReconcileOutcome outcome, Clock::Monotonic::duration took) = 0;
};

struct ControllerOptions {
  std::string name;  // the "controller" metric label and the work queue's name
  int workers = 2;   // --workers; values < 1 count as 1
  // How failed requests back off; null = workqueue::DefaultControllerRateLimiter.
  std::unique_ptr<workqueue::RateLimiter> rate_limiter;
  Clock* clock = nullptr;  // null = the real clock; must outlive the controller
  std::unique_ptr<ReconcileObserver> observer;               // optional
  std::unique_ptr<workqueue::QueueObserver> queue_observer;  // optional: the queue's measurements
};

// The controller-runtime controller: a rate-limited work queue of request keys and N
// workers that take a key, call the Reconciler, and hand the outcome to one function that
// decides the queue action and counts it:
//   conflict error       -> AddAfter(per-key backoff, 5 ms doubling to 1 s)
//                                            controller_runtime_reconcile_total{result=error},
//                                            controller_runtime_reconcile_errors_total
//   other error (or exception) -> AddRateLimited  (the same two series)
//   requeue_after set    -> Forget, AddAfter {result=requeue_after}  (<= 0: at once)
//   requeue              -> AddRateLimited   {result=requeue}
//   done                 -> Forget           {result=success}
// and every reconcile is timed in controller_runtime_reconcile_time_seconds (both through
// the ReconcileObserver; the queue reports to queue_observer).
// A conflict (a stale cache, a concurrent writer) is expected and resolves itself once the
// cache catches up; it is retried soon on its own key's backoff and never draws on the
// rate limiter's overall bucket. Otherwise a burst of conflicts (hundreds while many
// domains converge) would reserve that bucket minutes ahead, and every key it delays
// waits that long, whatever its own requeue says.
// Besides the N workers, one more worker serves only EnqueueUrgent's requests, so an
// urgent request starts at once even while every other worker is busy. An urgent request
// for an object a normal worker is reconciling at that moment preempts that reconcile
// (its `stop` fires): otherwise the urgent one waits until it ends, and while domains
// converge at 20 requests a second a normal reconcile's writes wait for rate-limiter tokens
// behind other domains' for hundreds of milliseconds. A preempted reconcile that fails is
// not retried on the rate limiter: the urgent one redoes it.
// Enqueue methods are thread-safe and may be called before, during or after Run (they are
// ignored once Run has returned).
class Controller {
 public:
  // `reconciler` must outlive the controller.
  Controller(ControllerOptions options, Reconciler& reconciler);
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  // Asks for `request` to be reconciled. Many requests for the same object before a worker
  // takes it collapse into one reconcile.
  void Enqueue(const Request& request);
  // Asks for `request` to be reconciled before anything else that waits (a failure that
  // must be acted on at once). Served by a worker kept for urgent requests.
  void EnqueueUrgent(const Request& request);

  // Starts the workers and blocks until `stop` is requested; then shuts the queue down
  // (waiting requests are dropped), lets each worker finish its current reconcile, and
  // joins them. Runs once: a second call returns an Internal error at once.
  Status Run(const std::stop_token& stop);

  const std::string& name() const { return name_; }
  // The queue, for inspection (Len, NumRequeues) and tests.
  workqueue::WorkQueue& queue() { return queue_; }

 private:
  // Takes keys until the queue shuts down; the urgent worker takes only urgent keys.
  void Work(const std::stop_token& stop, bool urgent_only);
  // Calls the reconciler, turning an exception into an error.
  Result<ReconcileResult> ReconcileCatching(const Request& request, const std::stop_token& stop);
  // The one place that maps a reconcile outcome to the queue action and the observer.
  void ApplyOutcome(const std::string& key, const Result<ReconcileResult>& outcome,
                    Clock::Monotonic::duration elapsed, bool preempted);
  // One reconcile on a normal worker, preemptible by EnqueueUrgent; returns whether it was.
  Result<ReconcileResult> ReconcilePreemptible(const std::string& key, const std::stop_token& stop,
                                               bool& preempted);

  const std::string name_;
  const int workers_;
  Clock& clock_;
  Reconciler& reconciler_;
  std::unique_ptr<ReconcileObserver> observer_;  // may be null
  workqueue::WorkQueue queue_;
  workqueue::ItemExponentialFailureRateLimiter conflict_backoff_;
  // What normal workers reconcile now, each with the source of its reconcile's `stop`.
  std::mutex running_mutex_;
  std::unordered_map<std::string, std::stop_source> running_;  // guarded by running_mutex_
  std::atomic<bool> started_{false};
};

}  // namespace dpcm::controller
