#include "pkg/health/monitor.h"

#include <spdlog/spdlog.h>

#include "pkg/metrics/metrics.h"

namespace dpcm::health {
namespace {

std::string DomainKey(const std::string& ns, const std::string& domain) {
  return ns + "/" + domain;
}

std::string EntryKey(const std::string& ns, const std::string& domain, const std::string& uid) {
  return ns + "/" + domain + "/" + uid;
}

}  // namespace

HealthMonitor::HealthMonitor(ChangeHandler on_change, MonitorOptions options)
    : on_change_(std::move(on_change)), options_(std::move(options)) {
  if (!options_.make_checker) options_.make_checker = MakeNetworkChecker;
  const int workers = options_.workers > 0 ? options_.workers : 1;
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

HealthMonitor::~HealthMonitor() { Stop(); }

void HealthMonitor::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void HealthMonitor::Schedule(const std::string& key, Entry& entry, Steady::time_point due) {
  due_.erase({entry.due, key});
  entry.due = due;
  due_.insert({due, key});
}

void HealthMonitor::Update(const std::string& ns, const std::string& domain, const ProbeSpec& spec,
                           const std::vector<Target>& targets) {
  const std::string domain_key = DomainKey(ns, domain);
  const std::string prefix = domain_key + "/";
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
    const auto now = Steady::now();
    for (const auto& target : targets) {
      const std::string key = EntryKey(ns, domain, target.uid);
      wanted.insert(key);
      auto& slot = entries_[key];
      if (!slot) {
        slot = std::make_shared<Entry>();
        slot->target = target;
        slot->due = now;
        due_.insert({now, key});
      } else if (slot->target.pod_ip != target.pod_ip) {
        slot->verdict = Verdict{};
        if (due_.count({slot->due, key}) != 0) Schedule(key, *slot, now);
      }
      slot->target = target;
      slot->spec = d.spec;
      slot->checker = d.checker;
    }
  }
  for (auto it = entries_.lower_bound(prefix);
       it != entries_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    if (wanted.count(it->first) != 0) {
      ++it;
      continue;
    }
    due_.erase({it->second->due, it->first});
    it = entries_.erase(it);  // a check in flight finds its entry gone and drops its result
  }
  wake_.notify_all();
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

void HealthMonitor::Observe(const Target& target, const CheckResult& result,
                            Steady::duration took) {
  if (options_.metrics == nullptr) return;
  options_.metrics->HealthChecksTotal(target.ns, target.domain, OutcomeLabel(result.outcome))
      ->Increment();
  options_.metrics->HealthCheckDuration().Observe(std::chrono::duration<double>(took).count());
}

void HealthMonitor::Work() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (due_.empty()) {
      wake_.wait(lock);
      continue;
    }
    const auto [due, key] = *due_.begin();
    if (due > Steady::now()) {
      wake_.wait_until(lock, due);
      continue;
    }
    due_.erase(due_.begin());
    const auto it = entries_.find(key);
    if (it == entries_.end()) continue;
    const std::shared_ptr<Entry> entry = it->second;
    const Target target = entry->target;
    const auto spec = entry->spec;
    const auto checker = entry->checker;
    lock.unlock();

    const auto started = Steady::now();
    CheckResult result;
    try {
      result = checker->Check(*spec, target);
    } catch (const std::exception& e) {
      result = {Outcome::kError, e.what()};
    }
    const auto finished = Steady::now();
    Observe(target, result, finished - started);
    if (!result.healthy()) {
      spdlog::debug("{}/{}: health check of {} failed: {}", target.ns, target.domain, target.pod,
                    result.message);
    }

    lock.lock();
    const auto again = entries_.find(key);
    if (again == entries_.end() || again->second != entry) continue;  // forgotten meanwhile
    // A check of an IP the member no longer has says nothing about it: drop the result
    // and check the new IP at once.
    const bool stale = entry->target.pod_ip != target.pod_ip;
    const bool changed = !stale && Record(entry->verdict, *entry->spec, result);
    const auto next = stale ? finished : std::max(started + entry->spec->period, finished);
    entry->due = next;
    due_.insert({next, key});
    wake_.notify_one();
    if (changed && on_change_) {
      lock.unlock();
      on_change_(target.ns, target.domain);
      lock.lock();
    }
  }
}

}  // namespace dpcm::health
