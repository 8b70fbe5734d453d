// Delivers role hooks in the background: demotions before the promotion, retries with back-off.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pkg/backoff/backoff.h"
#include "pkg/rolehook/hook.h"

namespace dpcm::metrics {
class Metrics;
}

namespace dpcm::rolehook {

// What a member's application has acknowledged, and how its deliveries go.
struct HookState {
  std::string acked_role;  // "" until the first acknowledgement
  int64_t acked_epoch = -1;
  int consecutive_failures = 0;
  std::string message;  // the last failure
};

struct RunnerOptions {
  int workers = 4;
  // Sends one assignment; tests inject fakes. Default: DeliverOverNetwork (the operator
  // runs no commands).
  std::function<Status(const HookSpec&, const Assignment&)> deliver;
  metrics::Metrics* metrics = nullptr;  // dpcm_role_hooks_total
  std::chrono::milliseconds initial_backoff{250};
  std::chrono::milliseconds max_backoff{10000};
};

// Level-based: the reconciler says what every member must have been told; the runner
// delivers what is missing on its own threads (never the caller's). Within a domain
// deliveries run one at a time and in order: every "pc" first, members last told "dc"
// before the rest, then the "dc" - so the old DC hears of its demotion (or is found
// unreachable) before the new DC hears of its promotion. A failed delivery is retried
// with exponential back-off. Domains do not wait for each other. Thread-safe.
class RoleHookRunner {
 public:
  // `on_change(ns, domain)` runs on a worker thread when a member's delivery starts or
  // stops failing, or its failure count moves; it must not block.
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
  using Steady = std::chrono::steady_clock;
  struct Member {
    Assignment want;
    HookState state;
    Steady::time_point retry_at{};
  };
  struct Domain {
    HookSpec spec;
    std::map<std::string, Member> members;  // by instance
    uint64_t id = 0;  // tells a domain forgotten and set again apart from its old self
    bool in_flight = false;
    bool dirty = false;  // updated while in flight
    Steady::time_point due{};
  };

  void Work();
  void ScheduleLocked(const std::string& key, Domain& domain, Steady::time_point when);
  // The deliveries due now, in order; and when the next retry is due (max() if none).
  static std::vector<Assignment> DueLocked(const Domain& domain, Steady::time_point now,
                                           Steady::time_point& next_retry);

  ChangeHandler on_change_;
  RunnerOptions options_;
  const backoff::Exponential backoff_;  // after options_: built from it
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::map<std::string, Domain> domains_;  // by ns/domain
  uint64_t next_id_ = 1;
  std::set<std::pair<Steady::time_point, std::string>> due_;
  std::vector<std::thread> workers_;
};

}  // namespace dpcm::rolehook
