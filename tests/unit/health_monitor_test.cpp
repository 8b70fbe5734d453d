// HealthMonitor with a scripted Checker: probe thresholds, change notifications, members that
// hang, new IPs, forgetting, stopping.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pkg/health/monitor.h"
#include "tests/support/eventually.h"
#include "tests/support/fake_member.h"

namespace dpcm::health {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
using testing::AdvanceUntil;
using testing::Eventually;

// What the fake checker answers: a check of an IP set failing fails, others pass (see
// testing::MemberBehaviour for delays and members that hang, by pod name). When gated, every
// check waits for a permit (Allow) before it answers, so a test can step through checks one
// at a time.
class Script {
 public:
  CheckResult Check(const Target& target) {
    {
      std::unique_lock lock(mutex_);
      ++calls_[target.pod];
      ips_[target.pod].push_back(target.pod_ip);
      changed_.wait(lock, [&] { return !gated_ || permits_ > 0; });
      if (gated_) --permits_;
    }
    if (member.Reach(target.pod, target.pod_ip)) {
      return {Outcome::kFailure, "scripted failure of " + target.pod_ip};
    }
    return {Outcome::kSuccess, ""};
  }

  void Gate() {
    std::lock_guard lock(mutex_);
    gated_ = true;
  }
  // Lets `n` more checks answer.
  void Allow(int n) {
    {
      std::lock_guard lock(mutex_);
      permits_ += n;
    }
    changed_.notify_all();
  }
  // Lets every check answer from now on, held ones too (so that the monitor can stop).
  void Open() {
    {
      std::lock_guard lock(mutex_);
      gated_ = false;
    }
    changed_.notify_all();
    member.ReleaseAll();
  }
  // Checks started for `pod` (including one waiting at the gate).
  int Calls(const std::string& pod) {
    std::lock_guard lock(mutex_);
    return calls_[pod];
  }
  std::vector<std::string> Ips(const std::string& pod) {
    std::lock_guard lock(mutex_);
    return ips_[pod];
  }

  testing::MemberBehaviour member;  // failing by IP; delays and holds by pod

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  bool gated_ = false;
  int permits_ = 0;
  std::map<std::string, int> calls_;
  std::map<std::string, std::vector<std::string>> ips_;
};

class FakeChecker final : public Checker {
 public:
  explicit FakeChecker(std::shared_ptr<Script> script) : script_(std::move(script)) {}
  CheckResult Check(const ProbeSpec& /*spec*/, const Target& target) const override {
    return script_->Check(target);
  }

 private:
  std::shared_ptr<Script> script_;
};

// Opens the script's gate when the test ends, before the monitor is stopped.
class OpenOnExit {
 public:
  explicit OpenOnExit(std::shared_ptr<Script> script) : script_(std::move(script)) {}
  ~OpenOnExit() { script_->Open(); }
  OpenOnExit(const OpenOnExit&) = delete;
  OpenOnExit& operator=(const OpenOnExit&) = delete;

 private:
  std::shared_ptr<Script> script_;
};

MonitorOptions FakeOptions(const std::shared_ptr<Script>& script, FakeClock& clock,
                           int workers = 4) {
  MonitorOptions options;
  options.workers = workers;
  options.clock = &clock;
  options.make_checker = [script](ProbeKind) -> std::unique_ptr<Checker> {
    return std::make_unique<FakeChecker>(script);
  };
  return options;
}

ProbeSpec FastSpec(int failure_threshold = 3, int success_threshold = 1) {
  ProbeSpec spec;
  spec.kind = ProbeKind::kCommand;  // any kind but kNone; the fake ignores it
  spec.period = 20ms;
  spec.timeout = 20ms;
  spec.failure_threshold = failure_threshold;
  spec.success_threshold = success_threshold;
  return spec;
}

Target Member(const std::string& pod, const std::string& ip) {
  return {"default", "web", pod, "uid-" + pod, ip, "pc"};
}

TEST_CASE("HealthMonitor: a member not checked yet is healthy") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  HealthMonitor monitor(nullptr, FakeOptions(script, clock));
  const Verdict verdict = monitor.Get("default", "web", "uid-nobody");
  CHECK_FALSE(verdict.probed);
  CHECK(verdict.healthy);
  CHECK(verdict.consecutive_failures == 0);
}

TEST_CASE(
    "HealthMonitor: unhealthy after failureThreshold failures, healthy after successThreshold") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  script->member.SetFailing("10.0.0.1", true);
  testing::ChangeCounter changes;
  HealthMonitor monitor(changes.Handler(), FakeOptions(script, clock));
  const ProbeSpec spec = FastSpec(/*failure_threshold=*/3, /*success_threshold=*/2);
  monitor.Update("default", "web", spec, {Member("web-0", "10.0.0.1")});
  const auto verdict = [&] { return monitor.Get("default", "web", "uid-web-0"); };

  // The first check runs at once, each further one a period later on the clock.
  for (int failures = 1; failures <= 3; ++failures) {
    CAPTURE(failures);
    if (failures > 1) clock.Advance(spec.period);
    REQUIRE(Eventually([&] { return verdict().consecutive_failures == failures; }));
    const Verdict v = verdict();
    CHECK(v.probed);
    CHECK(v.healthy == (failures < 3));  // unhealthy exactly at the 3rd
    CHECK(v.message == "scripted failure of 10.0.0.1");
    CHECK(Eventually([&] { return changes.Count("default/web") == failures; }));
  }
  CHECK(script->Calls("web-0") == 3);  // no check before its period is up

  script->member.SetFailing("10.0.0.1", false);
  clock.Advance(spec.period);
  REQUIRE(Eventually([&] { return verdict().consecutive_successes == 1; }));
  CHECK_FALSE(verdict().healthy);  // one success is not enough
  CHECK(verdict().consecutive_failures == 0);
  CHECK(Eventually([&] { return changes.Count("default/web") == 4; }));

  clock.Advance(spec.period);
  REQUIRE(Eventually([&] { return verdict().consecutive_successes == 2; }));
  CHECK(verdict().healthy);
  CHECK(verdict().message.empty());
  CHECK(Eventually([&] { return changes.Count("default/web") == 5; }));

  // Further passing checks change nothing, so nobody is told. (A member's checks run one
  // after the other: once the 6th has been recorded, the 5th has told whatever it told.)
  for (int successes = 3; successes <= 6; ++successes) {
    clock.Advance(spec.period);
    REQUIRE(Eventually([&] { return verdict().consecutive_successes == successes; }));
  }
  CHECK(changes.Count("default/web") == 5);
}

TEST_CASE("HealthMonitor: a hanging check does not delay another member's checks") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  script->member.Hold("slow");
  HealthMonitor monitor(nullptr, FakeOptions(script, clock, /*workers=*/2));
  OpenOnExit open{script};
  const ProbeSpec spec = FastSpec();
  monitor.Update("default", "web", spec, {Member("slow", "10.0.0.1"), Member("fast", "10.0.0.2")});
  REQUIRE(Eventually([&] { return script->Calls("slow") == 1 && script->Calls("fast") == 1; }));
  // While "slow" hangs through ten of its periods, "fast" is checked every period.
  for (int checks = 2; checks <= 11; ++checks) {
    CAPTURE(checks);
    REQUIRE(Eventually([&] {
      return monitor.Get("default", "web", "uid-fast").consecutive_successes == checks - 1;
    }));
    clock.Advance(spec.period);
    REQUIRE(Eventually([&] { return script->Calls("fast") == checks; }));
  }
  // One check in flight per member: the slow one never runs on both workers at once.
  CHECK(script->Calls("slow") == 1);
  CHECK_FALSE(monitor.Get("default", "web", "uid-slow").probed);
}

TEST_CASE("HealthMonitor checks a new member at once, not one period later") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  HealthMonitor monitor(nullptr, FakeOptions(script, clock));
  ProbeSpec spec = FastSpec();
  spec.period = 60s;
  monitor.Update("default", "web", spec, {Member("web-0", "10.0.0.1")});
  CHECK(Eventually([&] { return monitor.Get("default", "web", "uid-web-0").probed; }, 5000ms));
  CHECK(script->Calls("web-0") == 1);
}

TEST_CASE("HealthMonitor: a member whose pod IP changes starts over with the new IP") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  script->Gate();
  script->member.SetFailing("10.0.0.1", true);
  HealthMonitor monitor(nullptr, FakeOptions(script, clock));
  OpenOnExit open{script};
  const ProbeSpec spec = FastSpec(/*failure_threshold=*/1);
  monitor.Update("default", "web", spec, {Member("web-0", "10.0.0.1")});
  const auto verdict = [&] { return monitor.Get("default", "web", "uid-web-0"); };
  script->Allow(1);
  REQUIRE(Eventually([&] { return !verdict().healthy; }));

  // The same member and IP again: the verdict stays.
  monitor.Update("default", "web", spec, {Member("web-0", "10.0.0.1")});
  CHECK_FALSE(verdict().healthy);

  // The next check against the old IP is under way when the IP changes.
  clock.Advance(spec.period);
  REQUIRE(Eventually([&] { return script->Calls("web-0") == 2; }));
  monitor.Update("default", "web", spec, {Member("web-0", "10.0.0.2")});
  Verdict reset = verdict();
  CHECK_FALSE(reset.probed);
  CHECK(reset.healthy);

  // That stale check fails, but it was about the old IP: it must not count. The new IP is
  // checked at once, without waiting for a period.
  script->Allow(1);
  REQUIRE(Eventually([&] { return script->Calls("web-0") == 3; }));
  CHECK(script->Ips("web-0").back() == "10.0.0.2");
  reset = verdict();
  CHECK_FALSE(reset.probed);
  CHECK(reset.healthy);

  script->Allow(1);
  REQUIRE(Eventually([&] { return verdict().probed; }));
  CHECK(verdict().healthy);
  CHECK(verdict().consecutive_successes == 1);
}

TEST_CASE("HealthMonitor stops checking members left out of an Update, and forgotten domains") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  HealthMonitor monitor(nullptr, FakeOptions(script, clock));
  const ProbeSpec spec = FastSpec();
  monitor.Update("default", "web", spec,
                 {Member("web-0", "10.0.0.1"), Member("web-1", "10.0.0.2")});
  monitor.Update("other", "db", spec, {{"other", "db", "db-0", "uid-db-0", "10.0.1.1", "dc"}});
  REQUIRE(AdvanceUntil(
      clock, [&] { return script->Calls("web-1") >= 3 && script->Calls("db-0") >= 3; },
      spec.period));

  monitor.Update("default", "web", spec, {Member("web-0", "10.0.0.1")});
  CHECK_FALSE(monitor.Get("default", "web", "uid-web-1").probed);
  const int web1 = script->Calls("web-1");
  const int web0 = script->Calls("web-0");
  REQUIRE(AdvanceUntil(
      clock, [&] { return script->Calls("web-0") >= web0 + 5; }, spec.period));
  CHECK(script->Calls("web-1") <= web1 + 1);  // at most the check that was in flight

  monitor.Forget("default", "web");
  CHECK_FALSE(monitor.Get("default", "web", "uid-web-0").probed);
  const int web0_forgotten = script->Calls("web-0");
  const int db0 = script->Calls("db-0");
  REQUIRE(AdvanceUntil(
      clock, [&] { return script->Calls("db-0") >= db0 + 5; }, spec.period));
  CHECK(script->Calls("web-0") <= web0_forgotten + 1);  // other domains go on

  // kNone, or no targets, forgets too.
  ProbeSpec none = FastSpec();
  none.kind = ProbeKind::kNone;
  monitor.Update("other", "db", none, {{"other", "db", "db-0", "uid-db-0", "10.0.1.1", "dc"}});
  CHECK_FALSE(monitor.Get("other", "db", "uid-db-0").probed);
  const int db0_none = script->Calls("db-0");
  for (int i = 0; i < 5; ++i) clock.Advance(spec.period);
  monitor.Stop();  // joins the workers: every run that was going to happen has
  CHECK(script->Calls("db-0") <= db0_none + 1);
}

TEST_CASE("HealthMonitor::Stop returns promptly while checks are running") {
  FakeClock clock;
  auto script = std::make_shared<Script>();
  script->member.SetDelay("web-0", 100ms);
  script->member.SetDelay("web-1", 100ms);
  HealthMonitor monitor(nullptr, FakeOptions(script, clock, /*workers=*/8));
  const ProbeSpec spec = FastSpec();
  monitor.Update(
      "default", "web", spec,
      {Member("web-0", "10.0.0.1"), Member("web-1", "10.0.0.2"), Member("web-2", "10.0.0.3")});
  REQUIRE(AdvanceUntil(
      clock, [&] { return script->Calls("web-2") >= 3; }, spec.period));
  const auto start = Steady::now();
  monitor.Stop();
  CHECK(Steady::now() - start < 1000ms);
  const int after = script->Calls("web-2");
  clock.Advance(10 * spec.period);
  CHECK(script->Calls("web-2") == after);
  monitor.Stop();  // again: harmless
}

}  // namespace
}  // namespace dpcm::health
