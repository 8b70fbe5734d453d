// Delivers role hooks in the background: demotions before the promotion, retries with back-off.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pkg/backoff/backoff.h"
#include "pkg/clock/clock.h"
#include "pkg/rolehook/hook.h"
#include "pkg/scheduler/scheduler.h"

namespace dpcm::rolehook {

// What a member's application has acknowledged, and how its deliveries go.
struct HookState {
  std::string acked_role;  // "" until the first acknowledgement
  int64_t acked_epoch = -1;
  // When the acknowledgement of acked_role/acked_epoch arrived, on the runner's clock
  // (RunnerOptions::clock); unset until the first acknowledgement.
  std::optional<Clock::Monotonic::time_point> acked_at;
  int consecutive_failures = 0;
  std::string message;  // the last failure
};

// Told of every delivery (metrics::RoleHookMetrics counts them in dpcm_role_hooks_total).
// Called on a worker thread with no lock held; must be quick and thread-safe.
class DeliveryObserver {
 public:
  virtual ~DeliveryObserver() = default;
  // One delivery of `assignment` was acknowledged (`ok`) or not.
  virtual void OnDelivery(const Assignment& assignment, bool ok) = 0;
};

struct RunnerOptions {
  int workers = 4;
  // Sends one assignment; tests inject fakes. Default: DeliverOverNetwork (the operator
  // runs no commands).
  std::function<Status(const HookSpec&, const Assignment&)> deliver;
  DeliveryObserver* observer = nullptr;  // optional; must outlive the runner
  Clock* clock = nullptr;                // null = the real clock; must outlive the runner
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{10000};
};

// Level-based: the reconciler says what every member must have been told; the runner
// delivers what is missing on its own threads (a scheduler::Scheduler keyed by domain,
// never the caller's). Within a domain deliveries run one at a time and in order: every
// "pc" first, members last told "dc" before the rest, then the "dc" - so the old DC hears
// of its demotion (or is found unreachable) before the new DC hears of its promotion. A
// failed delivery is retried with exponential back-off on the injected clock. Domains do
// not wait for each other. Thread-safe.
class RoleHookRunner {
 public:
  // `on_change(ns, domain)` runs on a worker thread when a member's delivery starts or
  // stops failing, or its failure count moves, and when a member acknowledges a new "dc"
  // assignment (the flight recorder's hooksAcknowledged); it must not block.
  using ChangeHandler = std::function<void(const std::string& ns, const std::string& domain)>;

  RoleHookRunner(ChangeHandler on_change, RunnerOptions options);
  ~RoleHookRunner();  // Stop()
  RoleHookRunner(const RoleHookRunner&) = delete;
  RoleHookRunner& operator=(const RoleHookRunner&) = delete;

  // Sets what the members of ns/domain must be told (spec kind kNone, or none: forget
  // the domain). Members not listed are forgotten.
  void Update(const std::string& ns, const std::string& domain, const HookSpec& spec,
              const std::vector<Assignment>& assignments);
  void Forget(const std::string& ns, const std::string& domain);
  // The state of member `instance` (see Assignment::instance).
  HookState Get(const std::string& ns, const std::string& domain,
                const std::string& instance) const;
  // Ends the workers (waiting for deliveries in flight, bounded by their timeouts).
  void Stop();

 private:
  using TimePoint = Clock::Monotonic::time_point;
  struct Member {
    Assignment want;
    HookState state;
    TimePoint retry_at{};
  };
  struct Domain {
    HookSpec spec;
    std::map<std::string, Member> members;  // by instance
    uint64_t id = 0;  // tells a domain forgotten and set again apart from its old self
  };

  // The scheduler's work for one domain: delivers what is due; returns the next retry.
  std::optional<TimePoint> Deliver(const std::string& key);
  // The deliveries due now, in order; and when the next retry is due (max() if none).
  static std::vector<Assignment> DueLocked(const Domain& domain, TimePoint now,
                                           TimePoint& next_retry);

  ChangeHandler on_change_;
  RunnerOptions options_;
  const backoff::Exponential backoff_;  // after options_: built from it
  mutable std::mutex mutex_;
  std::map<std::string, Domain> domains_;  // by ns/domain; guarded by mutex_
  uint64_t next_id_ = 1;                   // guarded by mutex_
  scheduler::Scheduler scheduler_;         // last: its workers call Deliver
};

}  // namespace dpcm::rolehook
