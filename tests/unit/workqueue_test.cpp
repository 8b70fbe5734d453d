// WorkQueue and its rate limiters on a FakeClock: dedupe, one worker per key, delays,
// backoff, shutdown and the observer hooks.
#include "pkg/workqueue/workqueue.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pkg/clock/clock.h"
#include "pkg/workqueue/rate_limiter.h"
#include "tests/support/eventually.h"

namespace dpcm::workqueue {
namespace {

using namespace std::chrono_literals;

using testing::Eventually;

WorkQueueOptions OnClock(Clock& clock) {
  WorkQueueOptions options;
  options.name = "test";
  options.clock = &clock;
  return options;
}

TEST_CASE("WorkQueue hands out keys in order and dedupes a key that is already waiting") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  queue.Add("a");
  queue.Add("b");
  queue.Add("a");
  CHECK(queue.Len() == 2);
  CHECK(queue.Get() == "a");
  CHECK(queue.Get() == "b");
  CHECK(queue.Len() == 0);
}

TEST_CASE("WorkQueue queues a key added during processing again only after Done") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  queue.Add("a");
  REQUIRE(queue.Get() == "a");
  queue.Add("a");
  queue.Add("a");
  CHECK(queue.Len() == 0);  // held by a worker: not handed out twice
  queue.Done("a");
  CHECK(queue.Len() == 1);  // once, however often it was added meanwhile
  CHECK(queue.Get() == "a");
  queue.Done("a");
  CHECK(queue.Len() == 0);
  queue.Done("never-handed-out");  // ignored
  CHECK(queue.Len() == 0);
}

TEST_CASE("WorkQueue never hands one key to two workers at once, and loses no re-add") {
  // Four workers; each re-adds the key it holds (and the next one) while processing it,
  // the case a naive queue gets wrong, while the test thread adds too.
  WorkQueue queue;
  constexpr int kKeys = 5;
  constexpr int kBudget = 3000;  // processings that still re-add
  const auto key_name = [](int k) { return "ns/key-" + std::to_string(k % kKeys); };
  std::atomic<long> sequence{0};
  std::atomic<bool> overlap{false};
  std::atomic<int> processed{0};
  std::mutex mutex;
  std::map<std::string, int> in_flight;      // guarded by mutex
  std::map<std::string, long> last_started;  // guarded by mutex
  std::map<std::string, long> last_added;    // guarded by mutex
  const auto add = [&](const std::string& key) {
    {
      std::lock_guard lock(mutex);
      last_added[key] = ++sequence;
    }
    queue.Add(key);
  };

  std::vector<std::jthread> workers;
  workers.reserve(4);
  for (int w = 0; w < 4; ++w) {
    workers.emplace_back([&] {
      while (auto key = queue.Get()) {
        {
          std::lock_guard lock(mutex);
          if (++in_flight[*key] > 1) overlap = true;
          last_started[*key] = ++sequence;
        }
        const int n = ++processed;
        if (n < kBudget) {
          add(*key);
          add(key_name(n));
        }
        std::this_thread::yield();
        {
          std::lock_guard lock(mutex);
          --in_flight[*key];
        }
        queue.Done(*key);
      }
    });
  }
  for (int i = 0; i < 200; ++i) add(key_name(i));
  // Every key is processed once more after its last Add.
  CHECK(Eventually([&] {
    std::lock_guard lock(mutex);
    for (const auto& [key, added] : last_added) {
      if (last_started[key] < added) return false;
    }
    return processed.load() >= kBudget;
  }));
  queue.ShutDown();
  workers.clear();
  CHECK_FALSE(overlap.load());
  CHECK(processed.load() >= kBudget);
}

TEST_CASE("WorkQueue AddAfter adds the key only once the clock passes the delay") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  queue.AddAfter("a", 100ms);
  CHECK(queue.Len() == 0);
  clock.Advance(99ms);
  CHECK(queue.Len() == 0);
  clock.Advance(1ms);
  CHECK(queue.Len() == 1);
  CHECK(queue.Get() == "a");
  queue.Done("a");

  SUBCASE("a zero delay adds at once") {
    queue.AddAfter("b", 0ms);
    CHECK(queue.Len() == 1);
  }
  SUBCASE("a key waiting twice keeps the earlier time and is added once") {
    queue.AddAfter("b", 100ms);
    queue.AddAfter("b", 50ms);
    queue.AddAfter("c", 10ms);
    queue.AddAfter("c", 100ms);
    clock.Advance(10ms);
    CHECK(queue.Len() == 1);  // c
    clock.Advance(40ms);
    CHECK(queue.Len() == 2);  // b
    clock.Advance(100ms);
    CHECK(queue.Len() == 2);
  }
}

TEST_CASE("WorkQueue AddAt adds the key when the clock reaches the deadline, however it moves") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  const auto deadline = clock.Now() + 100ms;
  clock.Advance(60ms);  // the clock moves between taking the deadline and AddAt
  queue.AddAt("a", deadline);
  clock.Advance(39ms);
  CHECK(queue.Len() == 0);
  clock.Advance(1ms);
  CHECK(queue.Len() == 1);  // at the deadline, not 60 ms after it

  queue.AddAt("b", clock.Now() - 1ms);  // passed: at once
  CHECK(queue.Len() == 2);
}

TEST_CASE("WorkQueue AddAfter wakes a Get that is already blocked") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  auto got = std::async(std::launch::async, [&] { return queue.Get(); });
  queue.AddAfter("a", 1s);
  clock.Advance(500ms);
  CHECK(got.wait_for(20ms) == std::future_status::timeout);
  // The timer thread sleeps on the FakeClock: step time until it hands the key out.
  bool woke = false;
  for (int step = 0; step < 500 && !woke; ++step) {
    clock.Advance(10ms);
    woke = got.wait_for(1ms) == std::future_status::ready;
  }
  REQUIRE(woke);
  CHECK(got.get() == "a");
}

// Many keys on many due times, re-added by the workers as a controller's requeue_after
// does, the workers idle between keys.
// them: with every worker blocked in Get, only the timer thread can hand them out.
// Every key must come back every round, none lost, none stalled.
void CheckDelayedRounds(Clock& clock, const std::function<void()>& tick) {
  WorkQueue queue(OnClock(clock));
  constexpr int kKeys = 500;
  constexpr int kRounds = 5;
  std::mutex mutex;
  std::map<std::string, int> rounds;
  std::atomic<int> finished{0};
  auto delay_of = [](int key, int round) {
    return std::chrono::milliseconds(1 + (key * 7 + round * 13) % 97);
  };
  for (int i = 0; i < kKeys; ++i) queue.AddAfter(std::to_string(i), delay_of(i, 0));
  std::vector<std::jthread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&] {
      while (auto key = queue.Get()) {
        int round = 0;
        {
          std::lock_guard lock(mutex);
          round = ++rounds[*key];
        }
        if (round < kRounds) {
          queue.AddAfter(*key, delay_of(std::stoi(*key), round));
        } else {
          ++finished;
        }
        queue.Done(*key);
      }
    });
  }
  for (int i = 0; i < 20000 && finished < kKeys; ++i) tick();
  CHECK(finished.load() == kKeys);
  queue.ShutDown();
  workers.clear();
  std::lock_guard lock(mutex);
  for (const auto& [key, n] : rounds) CHECK(n == kRounds);
}

TEST_CASE("WorkQueue AddAfter keeps releasing many keys on many due times (fake clock)") {
  FakeClock clock;
  CheckDelayedRounds(clock, [&] {
    clock.Advance(1ms);
    std::this_thread::sleep_for(50us);
  });
}

TEST_CASE("WorkQueue AddAfter keeps releasing many keys on many due times (real clock)") {
  CheckDelayedRounds(RealClock::Instance(), [] { std::this_thread::sleep_for(1ms); });
}

TEST_CASE("WorkQueue AddUrgent is served before every other waiting key") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  queue.Add("a");
  queue.Add("b");
  queue.Add("c");
  queue.AddUrgent("x");
  queue.AddUrgent("b");  // moves up from the normal lane, without a second copy
  queue.AddUrgent("x");  // already urgent: no duplicate
  CHECK(queue.Len() == 4);
  CHECK(queue.Get() == "x");
  CHECK(queue.Get() == "b");
  CHECK(queue.Get() == "a");
  CHECK(queue.Get() == "c");
  CHECK(queue.Len() == 0);
  for (const char* key : {"x", "b", "a", "c"}) queue.Done(key);

  SUBCASE("a key made urgent while a worker holds it comes back first after Done") {
    queue.Add("held");
    CHECK(queue.Get() == "held");
    queue.Add("other");
    queue.AddUrgent("held");
    CHECK(queue.Len() == 1);  // only "other" waits; "held" is still being processed
    queue.Done("held");
    CHECK(queue.Get() == "held");
    CHECK(queue.Get() == "other");
  }
  SUBCASE("GetUrgent leaves normal keys to Get") {
    queue.Add("normal");
    auto urgent = std::async(std::launch::async, [&] { return queue.GetUrgent(); });
    CHECK(urgent.wait_for(20ms) == std::future_status::timeout);
    queue.AddUrgent("now");
    REQUIRE(urgent.wait_for(5s) == std::future_status::ready);
    CHECK(urgent.get() == "now");
    CHECK(queue.Get() == "normal");
  }
  SUBCASE("ShutDown ends GetUrgent") {
    auto urgent = std::async(std::launch::async, [&] { return queue.GetUrgent(); });
    queue.ShutDown();
    REQUIRE(urgent.wait_for(5s) == std::future_status::ready);
    CHECK_FALSE(urgent.get().has_value());
    queue.AddUrgent("late");
    CHECK(queue.Len() == 0);
  }
}

TEST_CASE("WorkQueue AddRateLimited backs off 5 ms, 10 ms, 20 ms, ... and Forget resets it") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));  // the default controller rate limiter
  const auto expect_backoff = [&](std::chrono::milliseconds backoff) {
    queue.AddRateLimited("a");
    clock.Advance(backoff - 1ms);
    CHECK(queue.Len() == 0);
    clock.Advance(1ms);
    CHECK(queue.Len() == 1);
    REQUIRE(queue.Get() == "a");
    queue.Done("a");
  };
  int requeues = 0;
  for (const auto backoff : {5ms, 10ms, 20ms, 40ms, 80ms}) {
    CAPTURE(backoff.count());
    expect_backoff(backoff);
    CHECK(queue.NumRequeues("a") == ++requeues);
  }
  CHECK(queue.NumRequeues("b") == 0);
  queue.Forget("a");
  CHECK(queue.NumRequeues("a") == 0);
  expect_backoff(5ms);
}

TEST_CASE("ItemExponentialFailureRateLimiter doubles per key up to its maximum") {
  ItemExponentialFailureRateLimiter limiter(5ms, 1000s);
  CHECK(limiter.When("a") == 5ms);
  CHECK(limiter.When("a") == 10ms);
  CHECK(limiter.When("b") == 5ms);                  // per key
  for (int i = 0; i < 200; ++i) limiter.When("a");  // no overflow
  CHECK(limiter.When("a") == 1000s);
  CHECK(limiter.NumRequeues("a") == 203);
  limiter.Forget("a");
  CHECK(limiter.When("a") == 5ms);
}

TEST_CASE("BucketRateLimiter lets a burst through, then spaces retries at qps") {
  FakeClock clock;
  BucketRateLimiter limiter(10, 100, clock);
  for (int i = 0; i < 100; ++i) REQUIRE(limiter.When("k" + std::to_string(i)) == 0ms);
  CHECK(limiter.When("x") == 100ms);
  CHECK(limiter.When("y") == 200ms);
  clock.Advance(1s);  // refills 10 tokens, 2 of them already reserved
  for (int i = 0; i < 8; ++i) REQUIRE(limiter.When("z") == 0ms);
  CHECK(limiter.When("z") == 100ms);
  CHECK(limiter.NumRequeues("z") == 0);
}

TEST_CASE("DefaultControllerRateLimiter takes the larger of per-key backoff and the bucket") {
  FakeClock clock;
  auto limiter = DefaultControllerRateLimiter(clock);
  for (int i = 0; i < 100; ++i) REQUIRE(limiter->When("k" + std::to_string(i)) == 5ms);
  CHECK(limiter->When("fresh") == 100ms);  // the bucket is empty: first failure waits more
  CHECK(limiter->NumRequeues("k0") == 1);
  limiter->Forget("k0");
  CHECK(limiter->NumRequeues("k0") == 0);
}

TEST_CASE("WorkQueue ShutDown wakes every blocked Get and ignores later adds") {
  FakeClock clock;
  WorkQueue queue(OnClock(clock));
  std::vector<std::future<std::optional<std::string>>> getters;
  getters.reserve(3);
  for (int i = 0; i < 3; ++i) {
    getters.push_back(std::async(std::launch::async, [&] { return queue.Get(); }));
  }
  queue.AddAfter("later", 1s);
  CHECK(getters[0].wait_for(20ms) == std::future_status::timeout);
  queue.ShutDown();
  for (auto& getter : getters) {
    REQUIRE(getter.wait_for(2s) == std::future_status::ready);
    CHECK_FALSE(getter.get().has_value());
  }
  CHECK(queue.ShuttingDown());
  queue.Add("a");
  queue.AddRateLimited("b");
  clock.Advance(2s);
  CHECK(queue.Len() == 0);
  CHECK_FALSE(queue.Get().has_value());
  queue.ShutDown();  // twice is fine
}

class RecordingObserver final : public QueueObserver {
 public:
  void OnAdd() override { ++adds; }
  void OnDepth(std::size_t value) override { depth = value; }
  void OnQueueLatency(Clock::Monotonic::duration value) override { latencies.push_back(value); }
  void OnWorkDuration(Clock::Monotonic::duration value) override { work.push_back(value); }
  void OnRetry() override { ++retries; }

  int adds = 0;
  std::size_t depth = 0;
  std::vector<Clock::Monotonic::duration> latencies;
  std::vector<Clock::Monotonic::duration> work;
  int retries = 0;
};

TEST_CASE("WorkQueue reports adds, depth, queue latency, work duration and retries") {
  FakeClock clock;
  auto options = OnClock(clock);
  auto observer = std::make_unique<RecordingObserver>();
  RecordingObserver& seen = *observer;
  options.observer = std::move(observer);
  WorkQueue queue(std::move(options));

  queue.Add("a");
  queue.Add("a");  // a duplicate is not an add
  queue.Add("b");
  CHECK(seen.adds == 2);
  CHECK(seen.depth == 2);
  clock.Advance(30ms);
  REQUIRE(queue.Get() == "a");
  CHECK(seen.depth == 1);
  REQUIRE(seen.latencies.size() == 1);
  CHECK(seen.latencies[0] == 30ms);
  clock.Advance(20ms);
  queue.Done("a");
  REQUIRE(seen.work.size() == 1);
  CHECK(seen.work[0] == 20ms);
  queue.AddRateLimited("c");
  CHECK(seen.retries == 1);
  CHECK(seen.adds == 2);  // not yet: c waits for its backoff
  clock.Advance(5ms);
  CHECK(queue.Len() == 2);
  CHECK(seen.adds == 3);
  CHECK(seen.depth == 2);
}

}  // namespace
}  // namespace dpcm::workqueue
