// Exponential back-off: a first delay that doubles after every further failure, up to a cap.
#pragma once

#include <chrono>

namespace dpcm::backoff {

// initial, 2 × initial, 4 × initial, ... capped at `max` (client-go's
// ItemExponentialFailureRateLimiter and wait.Backoff without jitter). A value type: the
// caller keeps the failure count, so one policy serves every key, member or stream.
class Exponential {
 public:
  using Duration = std::chrono::steady_clock::duration;

  // `max` below `initial` counts as `initial`; negative durations count as zero.
  Exponential(Duration initial, Duration max);

  // The wait after `failures` failures in a row: zero for none, `initial` after the
  // first, doubled after each further one, never above `max`. Does not overflow,
  // however large `failures` is.
  Duration After(int failures) const;

  Duration initial() const { return initial_; }
  Duration max() const { return max_; }

 private:
  Duration initial_;
  Duration max_;
};

}  // namespace dpcm::backoff
