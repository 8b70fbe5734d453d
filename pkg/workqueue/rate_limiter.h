// Retry pacing for the work queue: how long a failed key waits before its next attempt.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "pkg/backoff/backoff.h"
#include "pkg/clock/clock.h"

namespace dpcm::workqueue {

// client-go's workqueue.RateLimiter. Implementations are thread-safe.
class RateLimiter {
 public:
  virtual ~RateLimiter() = default;
  // Records one more failure of `key` and returns how long it should wait before its
  // next attempt (zero = now).
  virtual Clock::Monotonic::duration When(const std::string& key) = 0;
  // Stops tracking `key`: its next failure starts again from the first delay.
  virtual void Forget(const std::string& key) = 0;
  // How many failures of `key` have been recorded since it was last forgotten.
  virtual int NumRequeues(const std::string& key) const = 0;
};

// Per-key exponential backoff: base, 2×base, 4×base, ... capped at `max_delay`.
class ItemExponentialFailureRateLimiter final : public RateLimiter {
 public:
  ItemExponentialFailureRateLimiter(Clock::Monotonic::duration base_delay,
                                    Clock::Monotonic::duration max_delay);

  Clock::Monotonic::duration When(const std::string& key) override;
  void Forget(const std::string& key) override;
  int NumRequeues(const std::string& key) const override;

 private:
  const backoff::Exponential backoff_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, int> failures_;  // guarded by mutex_
};

// An overall token bucket (`qps` refill, `burst` capacity) shared by all keys, in the
// reservation style of Go's rate.Limiter: every call takes a token now, and a call that
// runs the bucket below zero is told to wait until the refill covers it. It never
// blocks. (ratelimit::TokenBucket only offers a blocking Wait and TryAccept, so the
// reservation is kept here.) Keys are not tracked: Forget does nothing, NumRequeues is 0.
class BucketRateLimiter final : public RateLimiter {
 public:
  // `qps` <= 0 disables limiting; `burst` < 1 is treated as 1. `clock` must outlive this.
  BucketRateLimiter(double qps, int burst, Clock& clock);

  Clock::Monotonic::duration When(const std::string& key) override;
  void Forget(const std::string& /*key*/) override {}
  int NumRequeues(const std::string& /*key*/) const override { return 0; }

 private:
  const double qps_;
  const double burst_;
  Clock& clock_;
  std::mutex mutex_;
  double tokens_;                      // guarded by mutex_; negative = reserved ahead
  Clock::Monotonic::time_point last_;  // guarded by mutex_
};

// The longest delay any of its limiters asks for; Forget goes to all of them and
// NumRequeues is the largest count.
class MaxOfRateLimiter final : public RateLimiter {
 public:
  explicit MaxOfRateLimiter(std::vector<std::unique_ptr<RateLimiter>> limiters);

  Clock::Monotonic::duration When(const std::string& key) override;
  void Forget(const std::string& key) override;
  int NumRequeues(const std::string& key) const override;

 private:
  std::vector<std::unique_ptr<RateLimiter>> limiters_;
};

// client-go's DefaultControllerRateLimiter: the larger of a per-key exponential backoff
// from 5 ms to 1000 s and an overall bucket of 10 qps with a burst of 100. `clock` must
// outlive the limiter.
std::unique_ptr<RateLimiter> DefaultControllerRateLimiter(Clock& clock);

}  // namespace dpcm::workqueue
