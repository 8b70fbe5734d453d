#include "pkg/ratelimit/token_bucket.h"

#include <algorithm>

namespace dpcm {

TokenBucket::TokenBucket(double qps, int burst, Clock& clock, int urgent_reserve)
    : qps_(qps),
      burst_(std::max(burst, 1)),
      urgent_reserve_(std::clamp(urgent_reserve, 0, burst_ - 1)),
      clock_(clock),
      tokens_(static_cast<double>(burst_)),
      last_(clock.Now()) {}

void TokenBucket::Refill(TimePoint now) {
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  if (elapsed > 0) {
    tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed * qps_);
    last_ = now;
  }
}

TokenBucket::Duration TokenBucket::TimeFor(double tokens) const {
  return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(tokens / qps_));
}

bool TokenBucket::Wait(const std::stop_token& stop, Lane lane) {
  if (qps_ <= 0) return true;
  std::unique_lock lock(mutex_);
  const TimePoint now = clock_.Now();
  Refill(now);
  tokens_ -= 1;
  const auto reserve = static_cast<double>(urgent_reserve_);
  if (lane == Lane::kNormal) {
    if (tokens_ >= reserve) return true;
    return WaitNormal(lock, now + TimeFor(reserve - tokens_), stop);
  }
  // Urgent: neither the reserve nor the normal waiters' reservations count against it...
  const double ahead = tokens_ + normal_waiting_;
  // ...but a token below the reserve line is one of theirs, so each waits for one more.
  if (normal_waiting_ > 0 && tokens_ < reserve) {
    normal_delay_ += TimeFor(std::min(1.0, reserve - tokens_));
  }
  if (ahead >= 0) return true;
  const TimePoint deadline = now + TimeFor(-ahead);
  lock.unlock();
  if (clock_.SleepUntil(deadline, stop)) return true;
  lock.lock();
  tokens_ += 1;  // cancelled: return the reservation
  return false;
}

bool TokenBucket::WaitNormal(std::unique_lock<std::mutex>& lock, TimePoint deadline,
                             const std::stop_token& stop) {
  ++normal_waiting_;
  Duration delay_seen = normal_delay_;
  for (;;) {
    lock.unlock();
    const bool slept = clock_.SleepUntil(deadline, stop);
    lock.lock();
    if (!slept) {
      tokens_ += 1;  // cancelled: return the reservation
      --normal_waiting_;
      return false;
    }
    if (normal_delay_ == delay_seen) {
      --normal_waiting_;
      return true;
    }
    deadline += normal_delay_ - delay_seen;  // urgent requests went first meanwhile
    delay_seen = normal_delay_;
  }
}

bool TokenBucket::TryAccept() {
  if (qps_ <= 0) return true;
  std::lock_guard lock(mutex_);
  Refill(clock_.Now());
  if (tokens_ < urgent_reserve_ + 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace dpcm
