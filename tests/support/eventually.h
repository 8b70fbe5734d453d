// Polls a condition until it holds or a timeout passes: for tests that wait on other threads or
// processes (and whole milliseconds for the figures they print).
#pragma once

#include <chrono>
#include <thread>

#include "pkg/clock/clock.h"

namespace dpcm::testing {

// Calls `condition` every `poll` until it returns true (then true) or `timeout` of real
// time passes (then one last check decides).
template <typename Condition>
bool Eventually(Condition condition,
                std::chrono::milliseconds timeout = std::chrono::milliseconds(5000),
                std::chrono::milliseconds poll = std::chrono::milliseconds(1)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(poll);
  }
  return condition();
}

// Advances `clock` by `step` until `condition` holds (then true), letting the threads that
// wait on the clock run between steps; gives up after `timeout` of real time.
template <typename Condition>
bool AdvanceUntil(FakeClock& clock, Condition condition, Clock::Monotonic::duration step,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  return Eventually(
      [&] {
        if (condition()) return true;
        clock.Advance(step);
        return false;
      },
      timeout);
}

// Whole milliseconds of `d`, for the figures the tests print.
inline long long Millis(std::chrono::nanoseconds d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

}  // namespace dpcm::testing
