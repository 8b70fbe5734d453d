#include "pkg/clock/clock.h"

namespace dpcm {

bool RealClock::SleepFor(Monotonic::duration duration, const std::stop_token& stop) {
  return SleepUntil(Monotonic::now() + duration, stop);
}

bool RealClock::SleepUntil(Monotonic::time_point deadline, const std::stop_token& stop) {
  std::mutex mutex;
  std::condition_variable_any never_notified;
  std::unique_lock lock(mutex);
  never_notified.wait_until(lock, stop, deadline, [] { return false; });
  return !stop.stop_requested();
}

RealClock& RealClock::Instance() {
  static RealClock clock;
  return clock;
}

FakeClock::FakeClock()
    : now_(Monotonic::time_point{} + std::chrono::hours(1)),
      wall_now_(Wall::time_point{} + std::chrono::hours(24 * 365 * 50)) {}

Clock::Monotonic::time_point FakeClock::Now() const {
  std::lock_guard lock(mutex_);
  return now_;
}

Clock::Wall::time_point FakeClock::WallNow() const {
  std::lock_guard lock(mutex_);
  return wall_now_;
}

bool FakeClock::SleepFor(Monotonic::duration duration, const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  const auto deadline = now_ + duration;
  changed_.wait(lock, stop, [&] { return now_ >= deadline; });
  return now_ >= deadline;
}

bool FakeClock::SleepUntil(Monotonic::time_point deadline, const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, stop, [&] { return now_ >= deadline; });
  return now_ >= deadline;
}

void FakeClock::Advance(Monotonic::duration duration) {
  {
    std::lock_guard lock(mutex_);
    now_ += duration;
    wall_now_ += std::chrono::duration_cast<Wall::duration>(duration);
  }
  changed_.notify_all();
}

}  // namespace dpcm
