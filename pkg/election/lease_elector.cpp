#include "pkg/election/lease_elector.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <random>

namespace dpcm::election {
namespace {

using std::chrono::milliseconds;

std::string Seconds(milliseconds duration) {
  std::array<char, 32> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%gs", static_cast<double>(duration.count()) / 1000);
  return buffer.data();
}

// The election-relevant part of two records is the same (client-go compares the records,
// not the resourceVersion: a label change is not a renewal).
bool SameRecord(const LeaseRecord& a, const LeaseRecord& b) {
  return a.holder == b.holder && a.lease_duration_seconds == b.lease_duration_seconds &&
         a.acquire_time == b.acquire_time && a.renew_time == b.renew_time &&
         a.transitions == b.transitions;
}

int CeilSeconds(milliseconds duration) { return static_cast<int>((duration.count() + 999) / 1000); }

}  // namespace

// --- ApiLeaseLock ------------------------------------------------------------------------

ApiLeaseLock::ApiLeaseLock(client::ApiClient& client, std::string ns, std::string name)
    : client_(client), ns_(std::move(ns)), name_(std::move(name)) {}

Result<LeaseRecord> ApiLeaseLock::Get() {
  auto lease = client_.Get(client::resources::Leases(), ns_, name_);
  if (!lease.ok()) return lease.status();
  last_ = std::move(*lease);
  return ParseLease(last_);
}

Result<LeaseRecord> ApiLeaseLock::Create(const LeaseRecord& record) {
  client::Json lease = {{"metadata", {{"name", name_}, {"namespace", ns_}}}};
  LeaseRecord fresh = record;
  fresh.name = name_;
  fresh.resource_version.clear();
  ApplyLease(fresh, lease);
  auto created = client_.Create(client::resources::Leases(), ns_, lease);
  if (!created.ok()) return created.status();
  last_ = std::move(*created);
  return ParseLease(last_);
}

Result<LeaseRecord> ApiLeaseLock::Update(const LeaseRecord& record) {
  if (record.resource_version.empty()) {
    return Status::Invalid("update Lease " + Describe() + ": no resourceVersion to condition on");
  }
  client::Json lease = last_.is_object() ? last_ : client::Json{{"metadata", {{"namespace", ns_}}}};
  LeaseRecord named = record;
  named.name = name_;
  ApplyLease(named, lease);
  lease["metadata"]["resourceVersion"] = record.resource_version;
  auto updated = client_.Update(client::resources::Leases(), ns_, lease);
  if (!updated.ok()) return updated.status();
  last_ = std::move(*updated);
  return ParseLease(last_);
}

// --- LeaseElector ------------------------------------------------------------------------

std::string DefaultIdentity() {
  std::array<char, 256> host{};
  if (gethostname(host.data(), host.size() - 1) != 0 || host[0] == '\0') {
    std::snprintf(host.data(), host.size(), "dpcm-operator");
  }
  std::random_device random;
  std::array<char, 40> suffix{};
  std::snprintf(suffix.data(), suffix.size(), "%08x%08x", random(), random());
  return std::string(host.data()) + "_" + suffix.data();
}

Result<std::unique_ptr<LeaseElector>> LeaseElector::Create(LeaseElectorOptions options,
                                                           LeaseLock& lock,
                                                           LeaderCallbacks callbacks) {
  if (options.name.empty()) return Status::Config("leader election: the Lease name is empty");
  if (options.identity.empty()) return Status::Config("leader election: the identity is empty");
  if (options.retry_period <= milliseconds(0)) {
    return Status::Config("leader election: the retry period must be positive");
  }
  if (options.lease_duration <= options.renew_deadline) {
    return Status::Config(
        "leader election: the lease duration (" + Seconds(options.lease_duration) +
        ") must be greater than the renew deadline (" + Seconds(options.renew_deadline) + ")");
  }
  // client-go: renewDeadline must be greater than retryPeriod*JitterFactor (1.2).
  if (options.renew_deadline * 5 <= options.retry_period * 6) {
    return Status::Config(
        "leader election: the renew deadline (" + Seconds(options.renew_deadline) +
        ") must be greater than 1.2 x the retry period (" + Seconds(options.retry_period) + ")");
  }
  return std::unique_ptr<LeaseElector>(
      new LeaseElector(std::move(options), lock, std::move(callbacks)));
}

LeaseElector::LeaseElector(LeaseElectorOptions options, LeaseLock& lock, LeaderCallbacks callbacks)
    : options_(std::move(options)),
      lock_(lock),
      callbacks_(std::move(callbacks)),
      clock_(options_.clock != nullptr ? *options_.clock : RealClock::Instance()) {
  if (options_.observer != nullptr) options_.observer->OnLeading(options_.name, false);
}

LeaseElector::~LeaseElector() = default;

void LeaseElector::Observe(const LeaseRecord& record, Clock::Monotonic::time_point now) {
  if (observed_ && SameRecord(*observed_, record)) {
    observed_->resource_version = record.resource_version;
    return;
  }
  const bool new_holder = !observed_ || observed_->holder != record.holder;
  observed_ = record;
  observed_at_ = now;
  if (!new_holder) return;
  {
    std::lock_guard lock(mutex_);
    leader_ = record.holder;
  }
  if (record.holder.empty()) {
    spdlog::info("leader election {}: the Lease is free", lock_.Describe());
  } else {
    spdlog::info("leader election {}: the leader is {}{}", lock_.Describe(), record.holder,
                 record.holder == options_.identity ? " (this replica)" : "");
  }
  if (callbacks_.on_new_leader) callbacks_.on_new_leader(record.holder);
}

void LeaseElector::SetLeading(Clock::Monotonic::time_point deadline) {
  bool started = false;
  {
    std::lock_guard lock(mutex_);
    started = !leading_;
    leading_ = true;
    guard_until_ = deadline;
  }
  if (!started) return;
  spdlog::info("leader election {}: became the leader as {}", lock_.Describe(), options_.identity);
  if (options_.observer != nullptr) options_.observer->OnLeading(options_.name, true);
  if (callbacks_.on_started_leading) callbacks_.on_started_leading();
  changed_.notify_all();
}

void LeaseElector::StopLeading(const std::string& why) {
  bool stopped = false;
  {
    std::lock_guard lock(mutex_);
    stopped = leading_;
    leading_ = false;
  }
  if (!stopped) return;
  spdlog::warn("leader election {}: no longer the leader: {}", lock_.Describe(), why);
  if (options_.observer != nullptr) options_.observer->OnLeading(options_.name, false);
  if (callbacks_.on_stopped_leading) callbacks_.on_stopped_leading();
  changed_.notify_all();
}

bool LeaseElector::TryAcquireOrRenew() {
  // The guard's deadline counts from before the request: a standby sees the write no
  // earlier than that, so its LeaseDuration starts later than our RenewDeadline does.
  const auto started = clock_.Now();
  const auto wall = clock_.WallNow();
  auto current = lock_.Get();
  if (!current.ok()) {
    if (!current.status().IsNotFound()) {
      spdlog::debug("leader election {}: read failed: {}", lock_.Describe(),
                    current.status().ToString());
      return false;
    }
    LeaseRecord record;
    record.holder = options_.identity;
    record.lease_duration_seconds = CeilSeconds(options_.lease_duration);
    record.acquire_time = wall;
    record.renew_time = wall;
    auto created = lock_.Create(record);
    if (!created.ok()) {
      spdlog::debug("leader election {}: create failed: {}", lock_.Describe(),
                    created.status().ToString());
      return false;
    }
    Observe(*created, clock_.Now());
    SetLeading(started + options_.renew_deadline);
    return true;
  }

  Observe(*current, clock_.Now());
  const bool held_by_us = current->holder == options_.identity;
  if (!current->holder.empty() && !held_by_us) {
    const milliseconds valid_for = current->lease_duration_seconds > 0
                                       ? milliseconds(current->lease_duration_seconds * 1000LL)
                                       : options_.lease_duration;
    if (clock_.Now() < observed_at_ + valid_for) {
      StopLeading("the Lease is held by " + current->holder);
      return false;
    }
    spdlog::info("leader election {}: the Lease of {} has not changed for {}; taking it over",
                 lock_.Describe(), current->holder, Seconds(valid_for));
  }

  LeaseRecord next = *current;
  next.holder = options_.identity;
  next.lease_duration_seconds = CeilSeconds(options_.lease_duration);
  next.renew_time = wall;
  if (!held_by_us) {
    next.acquire_time = wall;
    next.transitions = current->transitions + 1;
  }
  auto updated = lock_.Update(next);
  if (!updated.ok()) {
    spdlog::debug("leader election {}: {} failed: {}", lock_.Describe(),
                  held_by_us ? "renew" : "acquire", updated.status().ToString());
    return false;
  }
  Observe(*updated, clock_.Now());
  SetLeading(started + options_.renew_deadline);
  return true;
}

Status LeaseElector::Run(const std::stop_token& stop) {
  struct EndMark {
    LeaseElector& elector;
    ~EndMark() {
      {
        std::lock_guard lock(elector.mutex_);
        elector.run_ended_ = true;
      }
      elector.changed_.notify_all();
    }
  } end_mark{*this};

  spdlog::info("leader election {}: {} is a candidate (lease {}, renew deadline {}, retry {})",
               lock_.Describe(), options_.identity, Seconds(options_.lease_duration),
               Seconds(options_.renew_deadline), Seconds(options_.retry_period));
  while (!stop.stop_requested() && !TryAcquireOrRenew()) {
    if (!clock_.SleepFor(options_.retry_period, stop)) break;
  }
  if (stop.stop_requested()) return Status::Ok();

  while (clock_.SleepFor(options_.retry_period, stop)) {
    if (TryAcquireOrRenew()) continue;
    if (!leader().empty() && leader() != options_.identity) {
      return Status::Cancelled("leadership lost: the Lease " + lock_.Describe() + " is held by " +
                               leader());
    }
    if (!IsLeader()) {
      StopLeading("no renewal succeeded within the renew deadline (" +
                  Seconds(options_.renew_deadline) + ")");
      return Status::Cancelled("leadership lost: the Lease " + lock_.Describe() +
                               " was not renewed within " + Seconds(options_.renew_deadline));
    }
  }
  return Status::Ok();
}

Status LeaseElector::Release() {
  StopLeading("releasing the Lease");  // closes the write guard before the Lease is freed
  if (!observed_ || observed_->holder != options_.identity) return Status::Ok();
  LeaseRecord next = *observed_;
  const auto wall = clock_.WallNow();
  next.holder.clear();
  next.lease_duration_seconds = 1;
  next.acquire_time = wall;
  next.renew_time = wall;
  auto updated = lock_.Update(next);
  if (!updated.ok()) {
    return updated.status().WithContext("release the Lease " + lock_.Describe());
  }
  Observe(*updated, clock_.Now());
  spdlog::info("leader election {}: released the Lease", lock_.Describe());
  return Status::Ok();
}

bool LeaseElector::IsLeader() const {
  const auto now = clock_.Now();
  std::lock_guard lock(mutex_);
  return leading_ && now < guard_until_;
}

Status LeaseElector::CheckLeading() const {
  if (IsLeader()) return Status::Ok();
  return Status::Cancelled("write refused: this replica (" + options_.identity +
                           ") does not hold the leader Lease " + options_.name +
                           " or its renew deadline has passed");
}

bool LeaseElector::AwaitLeading(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, stop, [&] { return leading_ || run_ended_; });
  return leading_;
}

std::string LeaseElector::leader() const {
  std::lock_guard lock(mutex_);
  return leader_;
}

}  // namespace dpcm::election
