#include "pkg/ratelimit/token_bucket.h"

#include <algorithm>

namespace dpcm {

TokenBucket::TokenBucket(double qps, int burst, Clock& clock)
    : qps_(qps),
      burst_(std::max(burst, 1)),
      clock_(clock),
      tokens_(static_cast<double>(burst_)),
      last_(clock.Now()) {}

void TokenBucket::Refill(Clock::Monotonic::time_point now) {
  const double elapsed = std::chrono::duration<double>(now - last_).count();
  if (elapsed > 0) {
    tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed * qps_);
    last_ = now;
  }
}

bool TokenBucket::Wait(const std::stop_token& stop) {
  if (qps_ <= 0) return true;
  Clock::Monotonic::duration wait{};
  {
    std::lock_guard lock(mutex_);
    Refill(clock_.Now());
    tokens_ -= 1;
    if (tokens_ >= 0) return true;
    wait = std::chrono::duration_cast<Clock::Monotonic::duration>(
        std::chrono::duration<double>(-tokens_ / qps_));
  }
  if (clock_.SleepFor(wait, stop)) return true;
  std::lock_guard lock(mutex_);
  tokens_ += 1;  // cancelled: return the reservation
  return false;
}

bool TokenBucket::TryAccept() {
  if (qps_ <= 0) return true;
  std::lock_guard lock(mutex_);
  Refill(clock_.Now());
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

}  // namespace dpcm
