// Polls a condition until it holds or a timeout passes: for tests that wait on other threads or
// processes.
#pragma once

#include <chrono>
#include <thread>

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

}  // namespace dpcm::testing
