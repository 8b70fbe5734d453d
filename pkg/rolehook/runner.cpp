#include "pkg/rolehook/runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "pkg/metrics/metrics.h"

namespace dpcm::rolehook {
namespace {

bool Acknowledged(const HookState& state, const Assignment& want) {
  return state.acked_role == want.role && state.acked_epoch == want.epoch;
}

}  // namespace

RoleHookRunner::RoleHookRunner(ChangeHandler on_change, RunnerOptions options)
    : on_change_(std::move(on_change)),
      options_(std::move(options)),
      backoff_(options_.initial_backoff, options_.max_backoff) {
  if (!options_.deliver) options_.deliver = DeliverOverNetwork;
  const int workers = options_.workers > 0 ? options_.workers : 1;
  workers_.reserve(static_cast<std::size_t>(workers));
  for (int i = 0; i < workers; ++i) workers_.emplace_back([this] { Work(); });
}

RoleHookRunner::~RoleHookRunner() { Stop(); }

void RoleHookRunner::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void RoleHookRunner::ScheduleLocked(const std::string& key, Domain& domain,
                                    Steady::time_point when) {
  if (domain.in_flight) {
    domain.dirty = true;
    return;
  }
  due_.erase({domain.due, key});
  domain.due = when;
  due_.insert({when, key});
  wake_.notify_one();
}

void RoleHookRunner::Update(const std::string& ns, const std::string& domain_name,
                            const HookSpec& spec, const std::vector<Assignment>& assignments) {
  const std::string key = ns + "/" + domain_name;
  std::lock_guard lock(mutex_);
  if (spec.kind == HookKind::kNone || assignments.empty()) {
    const auto it = domains_.find(key);
    if (it != domains_.end()) {
      due_.erase({it->second.due, key});
      domains_.erase(it);  // a worker in flight finds it gone and drops its results
    }
    return;
  }
  auto [slot, created] = domains_.try_emplace(key);
  Domain& domain = slot->second;
  if (created) domain.id = next_id_++;
  bool changed = !(domain.spec == spec);
  domain.spec = spec;
  std::map<std::string, Member> members;
  for (const auto& want : assignments) {
    Member member;
    if (auto it = domain.members.find(want.instance); it != domain.members.end()) {
      member = std::move(it->second);
    }
    if (!(member.want == want)) {
      changed = true;
      // A new assignment is sent at once, whatever the back-off of the previous one.
      if (!Acknowledged(member.state, want)) member.retry_at = {};
    }
    member.want = want;
    members[want.instance] = std::move(member);
  }
  changed = changed || members.size() != domain.members.size();
  domain.members = std::move(members);
  if (changed) ScheduleLocked(key, domain, Steady::now());
}

void RoleHookRunner::Forget(const std::string& ns, const std::string& domain) {
  Update(ns, domain, HookSpec{}, {});
}

HookState RoleHookRunner::Get(const std::string& ns, const std::string& domain,
                              const std::string& instance) const {
  std::lock_guard lock(mutex_);
  const auto d = domains_.find(ns + "/" + domain);
  if (d == domains_.end()) return {};
  const auto m = d->second.members.find(instance);
  return m == d->second.members.end() ? HookState{} : m->second.state;
}

std::vector<Assignment> RoleHookRunner::DueLocked(const Domain& domain, Steady::time_point now,
                                                  Steady::time_point& next_retry) {
  next_retry = Steady::time_point::max();
  std::vector<const Member*> demotions;
  std::vector<const Member*> promotions;
  for (const auto& [instance, member] : domain.members) {
    if (Acknowledged(member.state, member.want)) continue;
    if (member.retry_at > now) {
      next_retry = std::min(next_retry, member.retry_at);
      continue;
    }
    (member.want.role == "dc" ? promotions : demotions).push_back(&member);
  }
  // Members that were told "dc" hear first that they are not.
  std::stable_sort(demotions.begin(), demotions.end(), [](const Member* a, const Member* b) {
    return (a->state.acked_role == "dc") > (b->state.acked_role == "dc");
  });
  std::vector<Assignment> out;
  out.reserve(demotions.size() + promotions.size());
  for (const auto* m : demotions) out.push_back(m->want);
  for (const auto* m : promotions) out.push_back(m->want);
  return out;
}

void RoleHookRunner::Work() {
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
    auto found = domains_.find(key);
    if (found == domains_.end()) continue;
    const uint64_t id = found->second.id;
    found->second.in_flight = true;
    found->second.dirty = false;
    Steady::time_point next_retry;
    const HookSpec spec = found->second.spec;
    const auto batch = DueLocked(found->second, Steady::now(), next_retry);

    bool notify = false;
    for (const auto& want : batch) {
      lock.unlock();
      Status delivered = Status::Internal("not delivered");
      try {
        delivered = options_.deliver(spec, want);
      } catch (const std::exception& e) {
        delivered = Status::Internal(e.what());
      }
      if (options_.metrics != nullptr) {
        options_.metrics
            ->RoleHooksTotal(want.ns, want.domain, delivered.ok() ? "success" : "failure")
            ->Increment();
      }
      lock.lock();
      found = domains_.find(key);
      if (found == domains_.end() || found->second.id != id) break;  // forgotten meanwhile
      auto m = found->second.members.find(want.instance);
      if (m == found->second.members.end() || !(m->second.want == want)) continue;
      HookState& state = m->second.state;
      if (delivered.ok()) {
        spdlog::debug("{}/{}: told {} role {} at epoch {}", want.ns, want.domain, want.pod,
                      want.role, want.epoch);
        notify = notify || state.consecutive_failures != 0;
        state.acked_role = want.role;
        state.acked_epoch = want.epoch;
        state.consecutive_failures = 0;
        state.message.clear();
      } else {
        spdlog::info("{}/{}: role hook {}={} epoch {} failed: {}", want.ns, want.domain, want.pod,
                     want.role, want.epoch, delivered.message());
        ++state.consecutive_failures;
        state.message = delivered.message();
        m->second.retry_at = Steady::now() + backoff_.After(state.consecutive_failures);
        next_retry = std::min(next_retry, m->second.retry_at);
        notify = true;
      }
    }
    if (found != domains_.end() && found->second.id == id) {
      Domain& domain = found->second;
      domain.in_flight = false;
      if (domain.dirty) {
        ScheduleLocked(key, domain, Steady::now());
      } else if (next_retry != Steady::time_point::max()) {
        ScheduleLocked(key, domain, next_retry);
      }
    }
    if (notify && on_change_) {
      const auto slash = key.find('/');
      lock.unlock();
      on_change_(key.substr(0, slash), key.substr(slash + 1));
      lock.lock();
    }
  }
}

}  // namespace dpcm::rolehook
