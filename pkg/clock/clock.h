// Time as an injected dependency: a monotonic clock, wall time and stoppable sleeps.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stop_token>

namespace dpcm {

// Everything that waits or measures time takes a Clock, so tests can drive time
// instead of sleeping (client-go's "to allow for less flaky testing").
class Clock {
 public:
  using Monotonic = std::chrono::steady_clock;
  using Wall = std::chrono::system_clock;

  virtual ~Clock() = default;
  // Monotonic now: only for durations and deadlines, never shown to users.
  virtual Monotonic::time_point Now() const = 0;
  // Wall-clock now: for timestamps written to the API (renewTime, lastFailoverTime).
  virtual Wall::time_point WallNow() const = 0;
  // Blocks for `duration` or until `stop` is requested. Returns false when stopped.
  virtual bool SleepFor(Monotonic::duration duration, const std::stop_token& stop) = 0;
  // Blocks until Now() reaches `deadline` or `stop` is requested. Returns false when
  // stopped. Unlike SleepFor(deadline - Now()), a clock that moves between the caller's
  // Now() and the sleep cannot push the wake-up later. The default does exactly that
  // subtraction; RealClock and FakeClock wait for the deadline itself.
  virtual bool SleepUntil(Monotonic::time_point deadline, const std::stop_token& stop) {
    return SleepFor(deadline - Now(), stop);
  }
};

// The process's real clocks. Thread-safe; a single shared instance is enough.
class RealClock final : public Clock {
 public:
  Monotonic::time_point Now() const override { return Monotonic::now(); }
  Wall::time_point WallNow() const override { return Wall::now(); }
  bool SleepFor(Monotonic::duration duration, const std::stop_token& stop) override;
  bool SleepUntil(Monotonic::time_point deadline, const std::stop_token& stop) override;

  // The process-wide instance.
  static RealClock& Instance();
};

// A clock that moves only when told to. Sleepers wake when Advance() passes their
// deadline or their stop token fires. Thread-safe.
class FakeClock final : public Clock {
 public:
  FakeClock();
  Monotonic::time_point Now() const override;
  Wall::time_point WallNow() const override;
  bool SleepFor(Monotonic::duration duration, const std::stop_token& stop) override;
  bool SleepUntil(Monotonic::time_point deadline, const std::stop_token& stop) override;

  // Moves both clocks forward by `duration` and wakes sleepers that are due.
  void Advance(Monotonic::duration duration);

 private:
  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  Monotonic::time_point now_;
  Wall::time_point wall_now_;
};

}  // namespace dpcm
