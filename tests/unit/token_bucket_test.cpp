// TokenBucket on a FakeClock: burst, refill at qps, blocking Wait and cancellation.
#include "pkg/ratelimit/token_bucket.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <stop_token>
#include <thread>

#include "pkg/clock/clock.h"

namespace dpcm {
namespace {

using namespace std::chrono_literals;

// A FakeClock that counts the threads asleep in it, so a test can wait until a waiter
// is really blocked before moving time.
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
  void Advance(Monotonic::duration duration) { fake_.Advance(duration); }
  // Waits (for real, in 1 ms steps, at most `timeout`) until `count` threads sleep.
  bool WaitForSleepers(int count, std::chrono::milliseconds timeout = 2000ms) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (sleepers_.load() < count) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
    return true;
  }

 private:
  FakeClock fake_;
  std::atomic<int> sleepers_{0};
};

TEST_CASE("TokenBucket gives the whole burst at once, then refuses") {
  FakeClock clock;
  TokenBucket bucket(10, 3, clock);
  CHECK(bucket.TryAccept());
  CHECK(bucket.TryAccept());
  CHECK(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket refills at qps, up to burst") {
  FakeClock clock;
  TokenBucket bucket(10, 3, clock);
  for (int i = 0; i < 3; ++i) REQUIRE(bucket.TryAccept());
  clock.Advance(50ms);  // half a token
  CHECK_FALSE(bucket.TryAccept());
  clock.Advance(50ms);  // one token
  CHECK(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());
  clock.Advance(10s);  // would be 100 tokens; capped at the burst
  CHECK(bucket.TryAccept());
  CHECK(bucket.TryAccept());
  CHECK(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket treats a burst below 1 as 1") {
  FakeClock clock;
  TokenBucket bucket(5, 0, clock);
  CHECK(bucket.burst() == 1);
  CHECK(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket::Wait takes a token at once while the burst lasts") {
  FakeClock clock;
  TokenBucket bucket(1, 2, clock);
  const std::stop_source stop;
  CHECK(bucket.Wait(stop.get_token()));
  CHECK(bucket.Wait(stop.get_token()));
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket::Wait blocks until the clock has refilled a token") {
  ObservedClock clock;
  TokenBucket bucket(10, 1, clock);  // one token per 100 ms
  REQUIRE(bucket.TryAccept());
  std::stop_source stop;
  auto waited = std::async(std::launch::async, [&] { return bucket.Wait(stop.get_token()); });
  REQUIRE(clock.WaitForSleepers(1));
  clock.Advance(60ms);
  CHECK(waited.wait_for(20ms) == std::future_status::timeout);  // still 40 ms short
  clock.Advance(40ms);
  REQUIRE(waited.wait_for(2s) == std::future_status::ready);
  CHECK(waited.get());
  // The waiter consumed the refilled token.
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket::Wait serves waiters in turn, one per refill") {
  ObservedClock clock;
  TokenBucket bucket(10, 1, clock);
  REQUIRE(bucket.TryAccept());
  std::stop_source stop;
  auto first = std::async(std::launch::async, [&] { return bucket.Wait(stop.get_token()); });
  REQUIRE(clock.WaitForSleepers(1));
  auto second = std::async(std::launch::async, [&] { return bucket.Wait(stop.get_token()); });
  REQUIRE(clock.WaitForSleepers(2));
  clock.Advance(100ms);
  REQUIRE(first.wait_for(2s) == std::future_status::ready);
  CHECK(first.get());
  CHECK(second.wait_for(20ms) == std::future_status::timeout);  // reserved the next token
  clock.Advance(100ms);
  REQUIRE(second.wait_for(2s) == std::future_status::ready);
  CHECK(second.get());
}

TEST_CASE("TokenBucket::Wait returns false when stopped and gives its token back") {
  ObservedClock clock;
  TokenBucket bucket(1, 1, clock);  // one token per second
  REQUIRE(bucket.TryAccept());
  std::stop_source stop;
  auto waited = std::async(std::launch::async, [&] { return bucket.Wait(stop.get_token()); });
  REQUIRE(clock.WaitForSleepers(1));
  stop.request_stop();
  REQUIRE(waited.wait_for(2s) == std::future_status::ready);
  CHECK_FALSE(waited.get());
  // Had the cancelled reservation been kept, one second would only pay it back.
  clock.Advance(1s);
  CHECK(bucket.TryAccept());
}

TEST_CASE("TokenBucket::Wait with an already stopped token and an empty bucket returns false") {
  FakeClock clock;
  TokenBucket bucket(1, 1, clock);
  REQUIRE(bucket.TryAccept());
  std::stop_source stop;
  stop.request_stop();
  CHECK_FALSE(bucket.Wait(stop.get_token()));
  clock.Advance(1s);
  CHECK(bucket.TryAccept());
}

TEST_CASE("TokenBucket with qps <= 0 never limits") {
  FakeClock clock;
  for (const double qps : {0.0, -1.0}) {
    TokenBucket bucket(qps, 1, clock);
    for (int i = 0; i < 1000; ++i) REQUIRE(bucket.TryAccept());
    std::stop_source stop;
    stop.request_stop();
    CHECK(bucket.Wait(stop.get_token()));  // no waiting, so nothing to cancel
  }
}

}  // namespace
}  // namespace dpcm
