// Client-side rate limiting: a token bucket of `qps` refill and `burst` capacity, two lanes.
#pragma once

#include <mutex>
#include <stop_token>

#include "pkg/clock/clock.h"

namespace dpcm {

// The limiter behind --kube-api-qps / --kube-api-burst (client-go's flowcontrol), with one
// addition: an urgent lane. Requests reserve a token in arrival order; a reservation that
// runs the bucket below zero waits for the refill. An urgent request is placed ahead of
// every normal request still waiting, which each wait one token longer for it: failover
// writes do not queue behind a backlog of status updates and Events, and the total rate
// stays within qps/burst (the urgent request takes a token a normal one had reserved, it
// does not mint one).
// `urgent_reserve` tokens of the burst are the urgent lane's alone: the normal lane waits
// once the bucket is down to them, so under a sustained normal load a handover's few
// requests still find tokens and go at once instead of one refill apart (at 20 qps, six
// requests would wait up to 300 ms). The normal lane's burst is burst - urgent_reserve, its
// rate still qps; the total never exceeds qps/burst. Thread-safe.
class TokenBucket {
 public:
  enum class Lane { kNormal, kUrgent };

  // `qps` <= 0 disables limiting. `burst` < 1 is treated as 1. `urgent_reserve` is clamped
  // to [0, burst - 1] (the normal lane keeps at least one token). `clock` must outlive this.
  TokenBucket(double qps, int burst, Clock& clock, int urgent_reserve = 0);

  // Takes a token, waiting for it when none is left: behind every earlier request of the
  // normal lane, or, in the urgent lane, behind earlier urgent requests only. Returns
  // false (and gives the token back) if `stop` fires first.
  bool Wait(const std::stop_token& stop, Lane lane = Lane::kNormal);
  // Takes a token only if one is available now (normal lane: not one of the urgent reserve).
  bool TryAccept();

  double qps() const { return qps_; }
  int burst() const { return burst_; }

 private:
  using Duration = Clock::Monotonic::duration;
  using TimePoint = Clock::Monotonic::time_point;

  void Refill(TimePoint now);             // requires mutex_
  Duration TimeFor(double tokens) const;  // the refill time of `tokens`
  // Sleeps on a normal reservation due at `deadline`, and on by every delay urgent
  // requests add meanwhile. `lock` holds mutex_ on entry and on return.
  bool WaitNormal(std::unique_lock<std::mutex>& lock, TimePoint deadline,
                  const std::stop_token& stop);

  const double qps_;
  const int burst_;
  const int urgent_reserve_;
  Clock& clock_;
  std::mutex mutex_;
  double tokens_;           // guarded by mutex_; below zero: reserved by waiters
  TimePoint last_;          // guarded by mutex_
  int normal_waiting_ = 0;  // guarded by mutex_; normal requests asleep on a reservation
  // guarded by mutex_; how far urgent requests have pushed back the normal lane in all
  // (a normal waiter sleeps on by what this grew while it slept)
  Duration normal_delay_{};
};

}  // namespace dpcm
