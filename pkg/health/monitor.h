// Runs every member's health check on its own schedule in a small thread pool and keeps the
// verdicts.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pkg/clock/clock.h"
#include "pkg/health/probe.h"
#include "pkg/scheduler/scheduler.h"

namespace dpcm::health {

// A member's health as the checks have found it, with Kubernetes probe semantics: it
// turns unhealthy after failure_threshold consecutive failures and healthy again after
// success_threshold consecutive successes. A member not checked yet is healthy.
struct Verdict {
  bool probed = false;
  bool healthy = true;
  int consecutive_failures = 0;
  int consecutive_successes = 0;
  std::string message;  // the last failure's reason ("" while passing)
};

// Told of every check (metrics::HealthCheckMetrics counts them in dpcm_health_checks_total
// and its duration histogram). Called on a worker thread with no lock held; must be quick
// and thread-safe.
class CheckObserver {
 public:
  virtual ~CheckObserver() = default;
  // One check of `target` ended with `outcome` after `took` on the monitor's clock.
  virtual void OnCheck(const Target& target, Outcome outcome, Clock::Monotonic::duration took) = 0;
};

struct MonitorOptions {
  int workers = 8;
  // Makes the checker for a kind; tests inject fakes. Default: MakeNetworkChecker (the
  // operator runs no commands).
  std::function<std::unique_ptr<Checker>(ProbeKind)> make_checker;
  CheckObserver* observer = nullptr;  // optional; must outlive the monitor
  Clock* clock = nullptr;             // null = the real clock; must outlive the monitor
};

// Checks run on `workers` threads (a scheduler::Scheduler), never on the caller's: Update
// and Get only touch memory. Each member has at most one check in flight and is next
// checked one period after its last check started (on the injected clock), so a hanging
// member occupies one worker for its timeout and never delays the others. Thread-safe.
class HealthMonitor {
 public:
  // `on_change(ns, domain)` runs on a worker thread whenever a member's verdict changes
  // (healthy flips, or the failure count or message moves); it must not block.
  using ChangeHandler = std::function<void(const std::string& ns, const std::string& domain)>;

  HealthMonitor(ChangeHandler on_change, MonitorOptions options);
  ~HealthMonitor();  // Stop()
  HealthMonitor(const HealthMonitor&) = delete;
  HealthMonitor& operator=(const HealthMonitor&) = delete;

  // Sets the members of domain ns/domain to check with `spec` (kind kNone, or no
  // targets: stop checking the domain). Members are identified by pod uid: one that
  // stays keeps its verdict (a new IP starts it over); a new one is checked at once.
  void Update(const std::string& ns, const std::string& domain, const ProbeSpec& spec,
              const std::vector<Target>& targets);
  // Forgets the domain (e.g. it was deleted).
  void Forget(const std::string& ns, const std::string& domain);
  // The verdict for the member with pod `uid`; the default Verdict when not checked.
  Verdict Get(const std::string& ns, const std::string& domain, const std::string& uid) const;
  // Ends the workers (waiting for checks in flight, bounded by their timeouts).
  void Stop();

 private:
  using TimePoint = Clock::Monotonic::time_point;
  struct Domain {
    std::shared_ptr<const ProbeSpec> spec;
    std::shared_ptr<const Checker> checker;
  };
  struct Entry {
    Target target;
    std::shared_ptr<const ProbeSpec> spec;
    std::shared_ptr<const Checker> checker;
    Verdict verdict;
    TimePoint due;  // the next check; an earlier run (a stale schedule) does not check
  };

  // The scheduler's work for one member: checks it if due; returns its next due time.
  std::optional<TimePoint> Check(const std::string& key);
  // Applies one result; true when the verdict changed in a way the domain cares about.
  static bool Record(Verdict& verdict, const ProbeSpec& spec, const CheckResult& result);

  ChangeHandler on_change_;
  MonitorOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Domain> domains_;                  // by ns/domain; guarded by mutex_
  std::map<std::string, std::shared_ptr<Entry>> entries_;  // by ns/domain/uid; guarded by mutex_
  scheduler::Scheduler scheduler_;                         // last: its workers call Check
};

}  // namespace dpcm::health
