// TokenBucket on a FakeClock: burst, refill at qps, blocking Wait, cancellation, the urgent
// lane and its reserve.
#include "pkg/ratelimit/token_bucket.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <stop_token>
#include <thread>
#include <utility>

#include "pkg/clock/clock.h"
#include "tests/support/observed_clock.h"

namespace dpcm {
namespace {

using namespace std::chrono_literals;

using testing::ObservedClock;
using Lane = TokenBucket::Lane;

// TokenBucket::Wait on a thread of its own. The destructor stops the wait and joins it, so a
// failed REQUIRE never leaves a thread asleep on a fake clock (the test fails, not hangs).
class Waiter {
 public:
  explicit Waiter(TokenBucket& bucket, Lane lane = Lane::kNormal)
      : result_(std::async(std::launch::async, [&bucket, lane, stop = stop_.get_token()] {
          return bucket.Wait(stop, lane);
        })) {}
  Waiter(const Waiter&) = delete;
  Waiter& operator=(const Waiter&) = delete;
  ~Waiter() {
    stop_.request_stop();
    if (result_.valid()) result_.wait();
  }

  // Whether Wait returned within `timeout`.
  bool Returned(std::chrono::milliseconds timeout = 2000ms) {
    return result_.wait_for(timeout) == std::future_status::ready;
  }
  bool Result() { return result_.get(); }
  void Stop() { stop_.request_stop(); }

 private:
  std::stop_source stop_;
  std::future<bool> result_;
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
  Waiter waited(bucket);
  REQUIRE(clock.WaitForSleepers(1));
  clock.Advance(60ms);
  CHECK_FALSE(waited.Returned(20ms));  // still 40 ms short
  clock.Advance(40ms);
  REQUIRE(waited.Returned());
  CHECK(waited.Result());
  // The waiter consumed the refilled token.
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket::Wait serves waiters in turn, one per refill") {
  ObservedClock clock;
  TokenBucket bucket(10, 1, clock);
  REQUIRE(bucket.TryAccept());
  Waiter first(bucket);
  REQUIRE(clock.WaitForSleepers(1));
  Waiter second(bucket);
  REQUIRE(clock.WaitForSleepers(2));
  clock.Advance(100ms);
  REQUIRE(first.Returned());
  CHECK(first.Result());
  CHECK_FALSE(second.Returned(20ms));  // reserved the next token
  clock.Advance(100ms);
  REQUIRE(second.Returned());
  CHECK(second.Result());
}

TEST_CASE("TokenBucket::Wait returns false when stopped and gives its token back") {
  ObservedClock clock;
  TokenBucket bucket(1, 1, clock);  // one token per second
  REQUIRE(bucket.TryAccept());
  Waiter waited(bucket);
  REQUIRE(clock.WaitForSleepers(1));
  waited.Stop();
  REQUIRE(waited.Returned());
  CHECK_FALSE(waited.Result());
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

TEST_CASE(
    "TokenBucket: an urgent request goes ahead of waiting normal ones, each waits a token more") {
  ObservedClock clock;
  TokenBucket bucket(10, 1, clock);  // one token per 100 ms
  REQUIRE(bucket.TryAccept());
  Waiter first(bucket);
  REQUIRE(clock.WaitForSleepers(1));  // due at 100 ms
  Waiter second(bucket);
  REQUIRE(clock.WaitForSleepers(2));  // due at 200 ms
  Waiter urgent(bucket, Lane::kUrgent);
  REQUIRE(clock.WaitForSleepers(3));
  clock.Advance(100ms);  // the first refill goes to the urgent request
  REQUIRE(urgent.Returned());
  CHECK(urgent.Result());
  CHECK_FALSE(first.Returned(20ms));  // sleeps on, 100 ms more
  clock.Advance(100ms);
  REQUIRE(first.Returned());
  CHECK(first.Result());
  CHECK_FALSE(second.Returned(20ms));
  clock.Advance(100ms);
  REQUIRE(second.Returned());
  CHECK(second.Result());
  CHECK_FALSE(bucket.TryAccept());  // three refills, three requests: no token was minted
}

TEST_CASE(
    "TokenBucket: urgent requests take a token at once while one is free, then queue in turn") {
  ObservedClock clock;
  TokenBucket bucket(10, 2, clock);
  const std::stop_source stop;
  CHECK(bucket.Wait(stop.get_token(), Lane::kUrgent));
  CHECK(bucket.Wait(stop.get_token(), Lane::kUrgent));
  Waiter first(bucket, Lane::kUrgent);
  REQUIRE(clock.WaitForSleepers(1));
  Waiter second(bucket, Lane::kUrgent);
  REQUIRE(clock.WaitForSleepers(2));
  clock.Advance(100ms);
  REQUIRE(first.Returned());
  CHECK(first.Result());
  CHECK_FALSE(second.Returned(20ms));
  clock.Advance(100ms);
  REQUIRE(second.Returned());
  CHECK(second.Result());
}

// A normal and an urgent requester, each asking again as soon as served, for 10 simulated
// seconds at 5 qps with a burst of 5 (of which `reserve` are the urgent lane's): counts
// the tokens each got in that time.
std::pair<int, int> CompeteForTenSeconds(int reserve) {
  FakeClock clock;
  TokenBucket bucket(5, 5, clock, reserve);
  std::stop_source stop;
  const auto end = clock.Now() + 10s;
  std::atomic<int> normal{0};
  std::atomic<int> urgent{0};
  auto requester = [&](Lane lane, std::atomic<int>& taken) {
    while (bucket.Wait(stop.get_token(), lane)) {
      if (clock.Now() <= end) ++taken;
    }
  };
  std::thread normal_thread(requester, Lane::kNormal, std::ref(normal));
  std::thread urgent_thread(requester, Lane::kUrgent, std::ref(urgent));
  while (clock.Now() < end + 1s) {
    std::this_thread::sleep_for(1ms);
    clock.Advance(10ms);
  }
  stop.request_stop();
  normal_thread.join();
  urgent_thread.join();
  return {normal.load(), urgent.load()};
}

TEST_CASE("TokenBucket: the urgent lane does not raise the rate, with or without a reserve") {
  // Together at most burst + 10 s x qps = 55 tokens; the urgent requester, always ahead of
  // the normal one's reservation, gets most of them.
  for (const int reserve : {0, 3}) {
    CAPTURE(reserve);
    const auto [normal, urgent] = CompeteForTenSeconds(reserve);
    CHECK(normal + urgent <= 55);
    CHECK(normal + urgent >= 45);
    CHECK(urgent > normal);
  }
}

TEST_CASE(
    "TokenBucket: the urgent reserve is kept from the normal lane, not from urgent requests") {
  FakeClock clock;
  TokenBucket bucket(10, 5, clock, 2);
  CHECK(bucket.TryAccept());
  CHECK(bucket.TryAccept());
  CHECK(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());  // the last two tokens are the reserve
  const std::stop_source stop;
  CHECK(bucket.Wait(stop.get_token(), Lane::kUrgent));  // at once: no clock moved
  CHECK(bucket.Wait(stop.get_token(), Lane::kUrgent));
  clock.Advance(100ms);  // one refill: the reserve's, not the normal lane's
  CHECK_FALSE(bucket.TryAccept());
  clock.Advance(200ms);
  CHECK(bucket.TryAccept());  // the reserve is whole again; now the normal lane's turn
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket: under a normal backlog an urgent request takes the reserve at once") {
  ObservedClock clock;
  TokenBucket bucket(10, 3, clock, 2);  // one token per 100 ms; a normal burst of 1
  REQUIRE(bucket.TryAccept());
  Waiter normal(bucket);
  REQUIRE(clock.WaitForSleepers(1));  // due at 100 ms
  Waiter urgent(bucket, Lane::kUrgent);
  REQUIRE(urgent.Returned());  // without the clock moving: the reserve
  CHECK(urgent.Result());
  clock.Advance(100ms);
  CHECK_FALSE(normal.Returned(20ms));  // waits a token longer: the reserve refills first
  clock.Advance(100ms);
  REQUIRE(normal.Returned());
  CHECK(normal.Result());
}

TEST_CASE("TokenBucket keeps at least one token for the normal lane") {
  FakeClock clock;
  TokenBucket bucket(10, 2, clock, 5);  // the reserve is clamped to 1
  CHECK(bucket.TryAccept());
  CHECK_FALSE(bucket.TryAccept());
}

TEST_CASE("TokenBucket: a cancelled urgent request gives its token back") {
  ObservedClock clock;
  TokenBucket bucket(1, 1, clock);
  REQUIRE(bucket.TryAccept());
  Waiter waited(bucket, Lane::kUrgent);
  REQUIRE(clock.WaitForSleepers(1));
  waited.Stop();
  REQUIRE(waited.Returned());
  CHECK_FALSE(waited.Result());
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
