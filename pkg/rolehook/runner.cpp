#include "pkg/rolehook/runner.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

namespace dpcm::rolehook {
namespace {

bool Acknowledged(const HookState& state, const Assignment& want) {
  return state.acked_role == want.role && state.acked_epoch == want.epoch;
}

scheduler::SchedulerOptions SchedulerOptionsOf(const RunnerOptions& options) {
  return {"rolehook", options.workers, options.clock};
}

}  // namespace

RoleHookRunner::RoleHookRunner(ChangeHandler on_change, RunnerOptions options)
    : on_change_(std::move(on_change)),
      options_(std::move(options)),
      backoff_(options_.initial_backoff, options_.max_backoff),
      scheduler_(SchedulerOptionsOf(options_),
                 [this](const std::string& key) { return Deliver(key); }) {
  if (!options_.deliver) options_.deliver = DeliverOverNetwork;
}

RoleHookRunner::~RoleHookRunner() { Stop(); }

void RoleHookRunner::Stop() { scheduler_.Stop(); }

void RoleHookRunner::Update(const std::string& ns, const std::string& domain_name,
                            const HookSpec& spec, const std::vector<Assignment>& assignments) {
  const std::string key = ns + "/" + domain_name;
  {
    std::lock_guard lock(mutex_);
    if (spec.kind == HookKind::kNone || assignments.empty()) {
      // A delivery in flight finds the domain gone and drops its results.
      domains_.erase(key);
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
    if (!changed) return;
  }
  scheduler_.RunNow(key);
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

std::vector<Assignment> RoleHookRunner::DueLocked(const Domain& domain, TimePoint now,
                                                  TimePoint& next_retry) {
  next_retry = TimePoint::max();
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

std::optional<RoleHookRunner::TimePoint> RoleHookRunner::Deliver(const std::string& key) {
  Clock& clock = scheduler_.clock();
  std::unique_lock lock(mutex_);
  auto found = domains_.find(key);
  if (found == domains_.end()) return std::nullopt;
  const uint64_t id = found->second.id;
  const HookSpec spec = found->second.spec;
  TimePoint next_retry;
  const auto batch = DueLocked(found->second, clock.Now(), next_retry);

  bool notify = false;
  bool forgotten = false;
  for (const auto& want : batch) {
    lock.unlock();
    Status delivered = Status::Internal("not delivered");
    try {
      delivered = options_.deliver(spec, want);
    } catch (const std::exception& e) {
      delivered = Status::Internal(e.what());
    }
    if (options_.observer != nullptr) options_.observer->OnDelivery(want, delivered.ok());
    lock.lock();
    found = domains_.find(key);
    if (found == domains_.end() || found->second.id != id) {
      forgotten = true;  // forgotten meanwhile
      break;
    }
    auto m = found->second.members.find(want.instance);
    if (m == found->second.members.end() || !(m->second.want == want)) continue;
    HookState& state = m->second.state;
    if (delivered.ok()) {
      spdlog::debug("{}/{}: told {} role {} at epoch {}", want.ns, want.domain, want.pod, want.role,
                    want.epoch);
      const bool promotion = want.role == "dc" && !Acknowledged(state, want);
      notify = notify || state.consecutive_failures != 0 || promotion;
      if (!Acknowledged(state, want)) state.acked_at = clock.Now();
      state.acked_role = want.role;
      state.acked_epoch = want.epoch;
      state.consecutive_failures = 0;
      state.message.clear();
    } else {
      spdlog::info("{}/{}: role hook {}={} epoch {} failed: {}", want.ns, want.domain, want.pod,
                   want.role, want.epoch, delivered.message());
      ++state.consecutive_failures;
      state.message = delivered.message();
      m->second.retry_at = clock.Now() + backoff_.After(state.consecutive_failures);
      next_retry = std::min(next_retry, m->second.retry_at);
      notify = true;
    }
  }
  lock.unlock();
  if (notify && on_change_) {
    const auto slash = key.find('/');
    on_change_(key.substr(0, slash), key.substr(slash + 1));
  }
  // An Update during the run has asked the scheduler for another run already.
  if (forgotten || next_retry == TimePoint::max()) return std::nullopt;
  return next_retry;
}

}  // namespace dpcm::rolehook
