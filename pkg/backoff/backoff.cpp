#include "pkg/backoff/backoff.h"

#include <algorithm>

namespace dpcm::backoff {

Exponential::Exponential(Duration initial, Duration max)
    : initial_(std::max(initial, Duration::zero())), max_(std::max(max, initial_)) {}

Exponential::Duration Exponential::After(int failures) const {
  if (failures <= 0) return Duration::zero();
  Duration delay = initial_;
  // Doubling stops at the cap, so the loop is short and nothing overflows.
  for (int i = 1; i < failures && delay < max_; ++i) {
    delay = delay > max_ / 2 ? max_ : delay * 2;
  }
  return std::min(delay, max_);
}

}  // namespace dpcm::backoff
