// Client-side rate limiting: a token bucket of `qps` refill and `burst` capacity.
#pragma once

#include <mutex>
#include <stop_token>

#include "pkg/clock/clock.h"

namespace dpcm {

// The limiter behind --kube-api-qps / --kube-api-burst (client-go's flowcontrol).
// Requests reserve a token in arrival order; a reservation that runs the bucket below
// zero waits for the refill. Thread-safe.
class TokenBucket {
 public:
  // `qps` <= 0 disables limiting. `burst` < 1 is treated as 1. `clock` must outlive this.
  TokenBucket(double qps, int burst, Clock& clock);

  // Takes a token, waiting for it when none is left. Returns false (and gives the
  // token back) if `stop` fires first.
  bool Wait(const std::stop_token& stop);
  // Takes a token only if one is available now.
  bool TryAccept();

  double qps() const { return qps_; }
  int burst() const { return burst_; }

 private:
  void Refill(Clock::Monotonic::time_point now);  // requires mutex_

  const double qps_;
  const int burst_;
  Clock& clock_;
  std::mutex mutex_;
  double tokens_;
  Clock::Monotonic::time_point last_;
};

}  // namespace dpcm
