// Scheduler: due times on a fake clock, re-runs asked for during a run, one run per key at a
// time, keys that do not wait for each other, stopping.
#include "pkg/scheduler/scheduler.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "tests/support/eventually.h"

namespace dpcm::scheduler {
namespace {

using namespace std::chrono_literals;
using testing::Eventually;

// Counts runs per key; keys in `held` wait in their run until released; each run returns
// the due time set for its key (none by default).
class Runs {
 public:
  std::optional<Scheduler::TimePoint> Run(const std::string& key) {
    std::unique_lock lock(mutex_);
    ++started_[key];
    ++running_;
    max_running_ = std::max(max_running_, running_);
    changed_.notify_all();
    changed_.wait(lock, [&] { return held_.count(key) == 0; });
    --running_;
    ++finished_[key];
    changed_.notify_all();
    const auto next = next_.find(key);
    return next == next_.end() ? std::nullopt : std::optional(next->second);
  }
  void Hold(const std::string& key) {
    std::lock_guard lock(mutex_);
    held_.insert(key);
  }
  void Release(const std::string& key) {
    {
      std::lock_guard lock(mutex_);
      held_.erase(key);
    }
    changed_.notify_all();
  }
  void SetNext(const std::string& key, std::optional<Scheduler::TimePoint> next) {
    std::lock_guard lock(mutex_);
    if (next) {
      next_[key] = *next;
    } else {
      next_.erase(key);
    }
  }
  int Started(const std::string& key) {
    std::lock_guard lock(mutex_);
    return started_[key];
  }
  int Finished(const std::string& key) {
    std::lock_guard lock(mutex_);
    return finished_[key];
  }
  int MaxRunning() {
    std::lock_guard lock(mutex_);
    return max_running_;
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::set<std::string> held_;
  std::map<std::string, Scheduler::TimePoint> next_;
  std::map<std::string, int> started_;
  std::map<std::string, int> finished_;
  int running_ = 0;
  int max_running_ = 0;
};

SchedulerOptions Options(FakeClock& clock, int workers = 2) { return {"test", workers, &clock}; }

TEST_CASE("Scheduler runs a key at once on RunNow and at its due time on RunAt") {
  FakeClock clock;
  Runs runs;
  Scheduler scheduler(Options(clock), [&](const std::string& key) { return runs.Run(key); });
  scheduler.RunNow("a");
  REQUIRE(Eventually([&] { return runs.Finished("a") == 1; }));

  scheduler.RunAt("b", clock.Now() + 10s);
  clock.Advance(9s);
  scheduler.RunNow("a");  // a run that lets the scheduler's threads turn over
  REQUIRE(Eventually([&] { return runs.Finished("a") == 2; }));
  CHECK(runs.Started("b") == 0);
  clock.Advance(1s);
  CHECK(Eventually([&] { return runs.Finished("b") == 1; }));

  // Scheduled twice before it is due: runs once, at the earlier time.
  scheduler.RunAt("c", clock.Now() + 5s);
  scheduler.RunAt("c", clock.Now() + 2s);
  clock.Advance(2s);
  REQUIRE(Eventually([&] { return runs.Finished("c") == 1; }));
  CHECK(runs.Started("c") == 1);
}

TEST_CASE("Scheduler runs a key again at the due time its work returns") {
  FakeClock clock;
  std::atomic<int> runs{0};
  // A period of one second from each run's start; the fifth run asks for a time already
  // passed (at once), the sixth for nothing more.
  Scheduler scheduler(Options(clock),
                      [&](const std::string&) -> std::optional<Scheduler::TimePoint> {
                        const int run = ++runs;
                        if (run == 5) return clock.Now() - 1s;
                        if (run == 6) return std::nullopt;
                        return clock.Now() + 1s;
                      });
  scheduler.RunNow("p");
  for (int i = 1; i <= 4; ++i) {
    CAPTURE(i);
    REQUIRE(Eventually([&] { return runs == i; }));
    clock.Advance(999ms);
    CHECK(runs == i);
    clock.Advance(1ms);
  }
  REQUIRE(Eventually([&] { return runs == 6; }));
  clock.Advance(1h);
  scheduler.Stop();
  CHECK(runs == 6);
}

TEST_CASE("Scheduler runs a key on one worker at a time and again if scheduled meanwhile") {
  FakeClock clock;
  Runs runs;
  Scheduler scheduler(Options(clock, /*workers=*/4),
                      [&](const std::string& key) { return runs.Run(key); });
  runs.Hold("a");
  scheduler.RunNow("a");
  REQUIRE(Eventually([&] { return runs.Started("a") == 1; }));
  scheduler.RunNow("a");
  scheduler.RunNow("a");
  scheduler.RunAt("a", clock.Now());
  // Another key does not wait for the held one.
  scheduler.RunNow("b");
  REQUIRE(Eventually([&] { return runs.Finished("b") == 1; }));
  CHECK(runs.Started("a") == 1);
  runs.Release("a");
  REQUIRE(Eventually([&] { return runs.Finished("a") == 2; }));
  CHECK(runs.Started("a") == 2);  // the three requests during the run made one more run
  CHECK(runs.MaxRunning() == 2);  // "a" and "b", never "a" twice
}

TEST_CASE("Scheduler::Stop waits for runs in flight and ignores later requests") {
  FakeClock clock;
  Runs runs;
  Scheduler scheduler(Options(clock), [&](const std::string& key) { return runs.Run(key); });
  runs.Hold("a");
  scheduler.RunNow("a");
  scheduler.RunAt("later", clock.Now() + 1s);
  REQUIRE(Eventually([&] { return runs.Started("a") == 1; }));
  std::jthread release([&] {
    std::this_thread::sleep_for(20ms);  // the run is in flight when Stop starts
    runs.Release("a");
  });
  scheduler.Stop();
  CHECK(runs.Finished("a") == 1);
  scheduler.RunNow("b");
  clock.Advance(2s);
  scheduler.Stop();  // again: harmless
  CHECK(runs.Started("b") == 0);
  CHECK(runs.Started("later") == 0);
}

}  // namespace
}  // namespace dpcm::scheduler
