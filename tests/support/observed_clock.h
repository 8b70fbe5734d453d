// A FakeClock that counts its sleepers, so a test can wait until a thread really blocks.
#pragma once

#include <atomic>
#include <chrono>
#include <stop_token>
#include <thread>

#include "pkg/clock/clock.h"

namespace dpcm::testing {

// Moves only when told to (FakeClock) and counts the threads asleep in it: a test waits
// until a waiter is really blocked before it moves time, instead of guessing with a sleep.
class ObservedClock final : public Clock {
 public:
  Monotonic::time_point Now() const override { return fake_.Now(); }
  Wall::time_point WallNow() const override { return fake_.WallNow(); }
  bool SleepFor(Monotonic::duration duration, const std::stop_token& stop) override {
    ++sleepers_;
    const bool slept = fake_.SleepFor(duration, stop);
    --sleepers_;
    return slept;
  }
  bool SleepUntil(Monotonic::time_point deadline, const std::stop_token& stop) override {
    ++sleepers_;
    const bool slept = fake_.SleepUntil(deadline, stop);
    --sleepers_;
    return slept;
  }
  void Advance(Monotonic::duration duration) { fake_.Advance(duration); }
  // Waits (for real, in 1 ms steps, at most `timeout`) until `count` threads sleep.
  bool WaitForSleepers(int count,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(2000)) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (sleepers_.load() < count) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
  }

 private:
  FakeClock fake_;
  std::atomic<int> sleepers_{0};
};

}  // namespace dpcm::testing
