#include "pkg/health/monitor.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <set>

namespace dpcm::health {
namespace {

std::string DomainKey(const std::string& ns, const std::string& domain) {
  return ns + "/" + domain;
}

std::string EntryKey(const std::string& ns, const std::string& domain, const std::string& uid) {
  return ns + "/" + domain + "/" + uid;
}

scheduler::SchedulerOptions SchedulerOptionsOf(const MonitorOptions& options) {
  return {"health", options.workers, options.clock};
}

}  // namespace

HealthMonitor::HealthMonitor(ChangeHandler on_change, MonitorOptions options)
    : on_change_(std::move(on_change)),
      options_(std::move(options)),
      scheduler_(SchedulerOptionsOf(options_),
                 [this](const std::string& key) { return Check(key); }) {
  if (!options_.make_checker) options_.make_checker = MakeNetworkChecker;
}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::Stop() { scheduler_.Stop(); }

void HealthMonitor::Update(const std::string& ns, const std::string& domain, const ProbeSpec& spec,
                           const std::vector<Target>& targets) {
  const std::string domain_key = DomainKey(ns, domain);
  const std::string prefix = domain_key + "/";
  std::vector<std::string> due_now;
  {
    std::lock_guard lock(mutex_);
    if (spec.kind == ProbeKind::kNone || targets.empty()) {
      domains_.erase(domain_key);
    } else {
      Domain& d = domains_[domain_key];
      if (!d.spec || !(*d.spec == spec)) {
        d.spec = std::make_shared<const ProbeSpec>(spec);
        d.checker = std::shared_ptr<const Checker>(options_.make_checker(spec.kind));
      }
    }
    const auto domain_it = domains_.find(domain_key);
    std::set<std::string> wanted;
    if (domain_it != domains_.end() && domain_it->second.checker) {
      const Domain& d = domain_it->second;
      const auto now = scheduler_.clock().Now();
      for (const auto& target : targets) {
        const std::string key = EntryKey(ns, domain, target.uid);
        wanted.insert(key);
        auto& slot = entries_[key];
        if (!slot || slot->target.pod_ip != target.pod_ip) {
          // New, or a new IP: starts over and is checked at once.
          if (!slot) slot = std::make_shared<Entry>();
          slot->verdict = Verdict{};
          slot->due = now;
          due_now.push_back(key);
        }
        slot->target = target;
        slot->spec = d.spec;
        slot->checker = d.checker;
      }
    }
    for (auto it = entries_.lower_bound(prefix);
         it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
      // A check in flight, or a run still scheduled, finds its entry gone and does nothing.
      it = wanted.count(it->first) != 0 ? std::next(it) : entries_.erase(it);
    }
  }
  for (const auto& key : due_now) scheduler_.RunNow(key);
}

void HealthMonitor::Forget(const std::string& ns, const std::string& domain) {
  Update(ns, domain, ProbeSpec{}, {});
}

Verdict HealthMonitor::Get(const std::string& ns, const std::string& domain,
                           const std::string& uid) const {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(EntryKey(ns, domain, uid));
  return it == entries_.end() ? Verdict{} : it->second->verdict;
}

bool HealthMonitor::Record(Verdict& verdict, const ProbeSpec& spec, const CheckResult& result) {
  const Verdict before = verdict;
  verdict.probed = true;
  if (result.healthy()) {
    verdict.consecutive_failures = 0;
    ++verdict.consecutive_successes;
    if (!verdict.healthy && verdict.consecutive_successes >= spec.success_threshold) {
      verdict.healthy = true;
    }
    if (verdict.healthy) verdict.message.clear();
  } else {
    verdict.consecutive_successes = 0;
    ++verdict.consecutive_failures;
    verdict.message = result.message;
    if (verdict.consecutive_failures >= spec.failure_threshold) verdict.healthy = false;
  }
  return !before.probed || before.healthy != verdict.healthy ||
         before.consecutive_failures != verdict.consecutive_failures ||
         before.message != verdict.message;
}

std::optional<HealthMonitor::TimePoint> HealthMonitor::Check(const std::string& key) {
  Clock& clock = scheduler_.clock();
  std::shared_ptr<Entry> entry;
  Target target;
  std::shared_ptr<const ProbeSpec> spec;
  std::shared_ptr<const Checker> checker;
  {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;  // forgotten
    entry = it->second;
    if (entry->due > clock.Now()) return entry->due;  // an old schedule; the real one stands
    target = entry->target;
    spec = entry->spec;
    checker = entry->checker;
  }

  const auto started = clock.Now();
  CheckResult result;
  try {
    result = checker->Check(*spec, target);
  } catch (const std::exception& e) {
    result = {Outcome::kError, e.what()};
  }
  const auto finished = clock.Now();
  if (options_.observer != nullptr) {
    options_.observer->OnCheck(target, result.outcome, finished - started);
  }
  if (!result.healthy()) {
    spdlog::debug("{}/{}: health check of {} failed: {}", target.ns, target.domain, target.pod,
                  result.message);
  }

  bool changed = false;
  TimePoint next;
  {
    std::lock_guard lock(mutex_);
    const auto again = entries_.find(key);
    if (again == entries_.end() || again->second != entry) return std::nullopt;  // forgotten
    // A check of an IP the member no longer has says nothing about it: drop the result
    // (Update has asked for a check of the new IP at once).
    if (entry->target.pod_ip != target.pod_ip) return entry->due;
    changed = Record(entry->verdict, *entry->spec, result);
    entry->due = std::max(started + entry->spec->period, finished);
    next = entry->due;
  }
  if (changed && on_change_) on_change_(target.ns, target.domain);
  return next;
}

}  // namespace dpcm::health
