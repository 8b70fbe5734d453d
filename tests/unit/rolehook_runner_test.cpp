// RoleHookRunner with a recording fake on a fake clock: ordering, retries with back-off and
// memory of what each member acknowledged.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "pkg/rolehook/hook.h"
#include "pkg/rolehook/runner.h"
#include "tests/support/eventually.h"
#include "tests/support/fake_member.h"

namespace dpcm::rolehook {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;
using testing::AdvanceUntil;
using testing::Eventually;

Assignment Assign(const std::string& pod, const std::string& role, int64_t epoch,
                  const std::string& restarts = "0") {
  return {"default", "web", pod, "uid-" + pod + "/" + restarts, "127.0.0.1", role, epoch};
}

// A fake application side: records every delivery with its start and end (real time, for
// "one at a time") and the runner's fake clock at its start (for back-off); `member` says
// which pods fail, take time or hang.
class FakeApps {
 public:
  struct Call {
    Assignment assignment;
    Steady::time_point started;
    Steady::time_point finished;
    Clock::Monotonic::time_point at;  // the runner's clock when it started
  };

  explicit FakeApps(Clock& clock) : clock_(clock) {}

  Status Deliver(const Assignment& a) {
    const auto started = Steady::now();
    const auto at = clock_.Now();
    {
      std::lock_guard lock(mutex_);
      ++started_;
    }
    const bool fail = member.Reach(a.pod, a.pod);
    std::lock_guard lock(mutex_);
    calls_.push_back({a, started, Steady::now(), at});
    if (fail) return Status::Transport(a.pod + " is unreachable");
    return Status::Ok();
  }

  std::vector<Call> Calls() {
    std::lock_guard lock(mutex_);
    return calls_;
  }
  // Deliveries finished.
  std::size_t Count() {
    std::lock_guard lock(mutex_);
    return calls_.size();
  }
  // Deliveries started (including those in flight).
  int Started() {
    std::lock_guard lock(mutex_);
    return started_;
  }
  std::vector<Call> CallsOf(const std::string& pod) {
    std::lock_guard lock(mutex_);
    std::vector<Call> out;
    for (const auto& c : calls_) {
      if (c.assignment.pod == pod) out.push_back(c);
    }
    return out;
  }

  testing::MemberBehaviour member{2ms};  // by pod name

 private:
  Clock& clock_;
  std::mutex mutex_;
  std::vector<Call> calls_;
  int started_ = 0;
};

RunnerOptions FakeOptions(FakeApps& apps, FakeClock& clock,
                          std::chrono::milliseconds initial_backoff = 50ms,
                          std::chrono::milliseconds max_backoff = 1000ms) {
  RunnerOptions options;
  options.deliver = [&apps](const HookSpec&, const Assignment& a) { return apps.Deliver(a); };
  options.clock = &clock;
  options.initial_backoff = initial_backoff;
  options.max_backoff = max_backoff;
  return options;
}

// Any hook: the fake delivers it without looking.
HookSpec AnyHook() {
  HookSpec spec;
  spec.kind = HookKind::kHttp;
  spec.http_port = 8080;
  return spec;
}

bool Acked(const RoleHookRunner& runner, const Assignment& a) {
  const HookState state = runner.Get(a.ns, a.domain, a.instance);
  return state.acked_role == a.role && state.acked_epoch == a.epoch;
}

bool AllAcked(const RoleHookRunner& runner, const std::vector<Assignment>& assignments) {
  return std::all_of(assignments.begin(), assignments.end(),
                     [&](const Assignment& a) { return Acked(runner, a); });
}

TEST_CASE("RoleHookRunner tells the old DC of its demotion before the new DC of its promotion") {
  FakeClock clock;
  FakeApps apps(clock);
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock));
  // The old DC "z" sorts last by name: only the ordering rule can put it first.
  const std::vector<Assignment> first = {Assign("z", "dc", 1), Assign("a", "pc", 1),
                                         Assign("m", "pc", 1)};
  runner.Update("default", "web", AnyHook(), first);
  REQUIRE(Eventually([&] { return AllAcked(runner, first); }));
  const std::size_t before = apps.Count();
  CHECK(before == 3);

  const std::vector<Assignment> failover = {Assign("z", "pc", 2), Assign("a", "dc", 2),
                                            Assign("m", "pc", 2)};
  runner.Update("default", "web", AnyHook(), failover);
  REQUIRE(Eventually([&] { return AllAcked(runner, failover); }));
  const auto calls = apps.Calls();
  REQUIRE(calls.size() == before + 3);
  std::string order;
  for (std::size_t i = before; i < calls.size(); ++i) {
    order += calls[i].assignment.pod + "=" + calls[i].assignment.role + " ";
  }
  // The member last acknowledged as DC hears first, the promotion comes last.
  CHECK(order == "z=pc m=pc a=dc ");
  // One at a time within a domain.
  for (std::size_t i = 1; i < calls.size(); ++i) CHECK(calls[i].started >= calls[i - 1].finished);
}

TEST_CASE("RoleHookRunner promotes the new DC even when the old DC cannot be reached") {
  FakeClock clock;
  FakeApps apps(clock);
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock, 50ms));
  const std::vector<Assignment> first = {Assign("z", "dc", 1), Assign("a", "pc", 1)};
  runner.Update("default", "web", AnyHook(), first);
  REQUIRE(Eventually([&] { return AllAcked(runner, first); }));

  apps.member.SetFailing("z", true);
  const Assignment promote = Assign("a", "dc", 2);
  runner.Update("default", "web", AnyHook(), {Assign("z", "pc", 2), promote});
  // No clock advance: the promotion does not wait for the old DC's back-off.
  REQUIRE(Eventually([&] { return Acked(runner, promote); }));
  const auto old_dc = apps.CallsOf("z");
  const auto new_dc = apps.CallsOf("a");
  REQUIRE(old_dc.size() == 2);
  CHECK(old_dc[1].assignment.role == "pc");
  CHECK(old_dc[1].finished <= new_dc.back().started);  // tried first, then moved on
  CHECK(runner.Get("default", "web", "uid-z/0").consecutive_failures == 1);
}

TEST_CASE("RoleHookRunner does not resend what a member has acknowledged") {
  FakeClock clock;
  FakeApps apps(clock);
  testing::ChangeCounter changes;
  RoleHookRunner runner(changes.Handler(), FakeOptions(apps, clock));
  std::vector<Assignment> want = {Assign("a", "dc", 1), Assign("b", "pc", 1)};
  runner.Update("default", "web", AnyHook(), want);
  REQUIRE(Eventually([&] { return AllAcked(runner, want); }));
  CHECK(apps.Count() == 2);
  const HookState state = runner.Get("default", "web", "uid-a/0");
  CHECK(state.acked_role == "dc");
  CHECK(state.acked_epoch == 1);
  CHECK(state.consecutive_failures == 0);

  for (int i = 0; i < 3; ++i) runner.Update("default", "web", AnyHook(), want);
  clock.Advance(60s);

  // Only the member whose assignment changed is told. (A domain's runs are serial: a
  // resend caused by the repeated Updates would have come before this one.)
  want[1].epoch = 2;
  runner.Update("default", "web", AnyHook(), want);
  REQUIRE(Eventually([&] { return AllAcked(runner, want); }));
  runner.Stop();  // every run that was going to happen has
  const auto calls = apps.Calls();
  REQUIRE(calls.size() == 3);
  CHECK(calls[2].assignment.pod == "b");
  CHECK(calls[2].assignment.epoch == 2);
  // Nothing failed; the one report is a's promotion being acknowledged.
  CHECK(changes.Count("default/web") == 1);
}

TEST_CASE("RoleHookRunner records when a promotion was acknowledged and reports it") {
  FakeClock clock;
  FakeApps apps(clock);
  testing::ChangeCounter changes;
  RoleHookRunner runner(changes.Handler(), FakeOptions(apps, clock));
  CHECK_FALSE(runner.Get("default", "web", "uid-a/0").acked_at.has_value());
  const auto start = clock.Now();
  runner.Update("default", "web", AnyHook(), {Assign("a", "pc", 1), Assign("b", "dc", 1)});
  REQUIRE(Eventually([&] { return Acked(runner, Assign("b", "dc", 1)); }));
  CHECK(runner.Get("default", "web", "uid-b/0").acked_at == start);
  CHECK(runner.Get("default", "web", "uid-a/0").acked_at == start);
  REQUIRE(Eventually([&] { return changes.Count("default/web") == 1; }));

  // The failover: b is demoted, a promoted at epoch 2, later on the runner's clock.
  clock.Advance(5s);
  runner.Update("default", "web", AnyHook(), {Assign("a", "dc", 2), Assign("b", "pc", 2)});
  REQUIRE(Eventually([&] { return Acked(runner, Assign("a", "dc", 2)); }));
  CHECK(runner.Get("default", "web", "uid-a/0").acked_at == start + 5s);
  // The demotion alone is not reported; the promotion is.
  REQUIRE(Eventually([&] { return changes.Count("default/web") == 2; }));
  runner.Stop();
  CHECK(changes.Count("default/web") == 2);
}

TEST_CASE("RoleHookRunner retries a failing delivery with growing delays, then resets on success") {
  FakeClock clock;
  FakeApps apps(clock);
  apps.member.SetFailing("a", true);
  testing::ChangeCounter changes;
  RoleHookRunner runner(changes.Handler(), FakeOptions(apps, clock, 50ms, 1000ms));
  const Assignment want = Assign("a", "dc", 4);
  runner.Update("default", "web", AnyHook(), {want});

  const auto failures = [&] {
    return runner.Get("default", "web", want.instance).consecutive_failures;
  };
  // Each retry waits the back-off on the clock, 50, 100, 200 ms, and not a moment more.
  auto backoff = 50ms;
  for (int n = 1; n <= 3; ++n, backoff *= 2) {
    CAPTURE(n);
    REQUIRE(Eventually([&] { return failures() == n; }));
    clock.Advance(backoff - 1ms);
    CHECK(apps.Started() == n);
    clock.Advance(1ms);
  }
  REQUIRE(Eventually([&] { return failures() == 4; }));
  const HookState failing = runner.Get("default", "web", want.instance);
  CHECK(failing.acked_role.empty());
  CHECK(failing.acked_epoch == -1);
  CHECK(failing.message.find("unreachable") != std::string::npos);
  CHECK(changes.Count("default/web") >= 1);
  const auto calls = apps.CallsOf("a");
  REQUIRE(calls.size() == 4);
  CHECK(calls[1].at - calls[0].at == 50ms);
  CHECK(calls[2].at - calls[1].at == 100ms);
  CHECK(calls[3].at - calls[2].at == 200ms);

  const int changes_while_failing = changes.Count("default/web");
  apps.member.SetFailing("a", false);
  REQUIRE(AdvanceUntil(
      clock, [&] { return Acked(runner, want); }, 5ms));
  const HookState recovered = runner.Get("default", "web", want.instance);
  CHECK(recovered.consecutive_failures == 0);
  CHECK(recovered.message.empty());
  CHECK(Eventually([&] { return changes.Count("default/web") > changes_while_failing; }));
}

TEST_CASE("RoleHookRunner caps the back-off at max_backoff") {
  FakeClock clock;
  FakeApps apps(clock);
  apps.member.SetFailing("a", true);
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock, 20ms, 60ms));
  const Assignment want = Assign("a", "dc", 1);
  runner.Update("default", "web", AnyHook(), {want});
  // Seven attempts at 20, 40, 60, 60, 60, 60 ms.
  const std::vector<std::chrono::milliseconds> backoffs = {20ms, 40ms, 60ms, 60ms, 60ms, 60ms};
  for (std::size_t n = 1; n <= backoffs.size(); ++n) {
    REQUIRE(Eventually([&] { return apps.CallsOf("a").size() == n; }));
    // The runner sets the next attempt's time from the clock after the call returns: move
    // the clock only once it has (else the back-off would count from the moved clock).
    REQUIRE(Eventually([&] {
      return runner.Get("default", "web", want.instance).consecutive_failures ==
             static_cast<int>(n);
    }));
    clock.Advance(backoffs[n - 1]);
  }
  REQUIRE(Eventually([&] { return apps.CallsOf("a").size() == 7; }));
  const auto calls = apps.CallsOf("a");
  for (std::size_t i = 1; i < calls.size(); ++i) {
    CAPTURE(i);
    CHECK(calls[i].at - calls[i - 1].at == backoffs[i - 1]);
  }
}

TEST_CASE("RoleHookRunner tells a restarted container (a new instance) its role again") {
  FakeClock clock;
  FakeApps apps(clock);
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock));
  const Assignment before = Assign("a", "dc", 3, "0");
  runner.Update("default", "web", AnyHook(), {before});
  REQUIRE(Eventually([&] { return Acked(runner, before); }));

  const Assignment restarted = Assign("a", "dc", 3, "1");
  runner.Update("default", "web", AnyHook(), {restarted});
  REQUIRE(Eventually([&] { return Acked(runner, restarted); }));
  const auto calls = apps.CallsOf("a");
  REQUIRE(calls.size() == 2);
  CHECK(calls[1].assignment.instance == "uid-a/1");
  CHECK(runner.Get("default", "web", "uid-a/0").acked_role.empty());  // the old one is gone
}

TEST_CASE("RoleHookRunner::Forget drops a domain's state and its pending retries") {
  FakeClock clock;
  FakeApps apps(clock);
  apps.member.SetFailing("b", true);
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock, 50ms));
  const Assignment a = Assign("a", "dc", 1);
  runner.Update("default", "web", AnyHook(), {a, Assign("b", "pc", 1)});
  REQUIRE(AdvanceUntil(
      clock, [&] { return Acked(runner, a) && apps.CallsOf("b").size() >= 2; }, 5ms));

  runner.Forget("default", "web");
  CHECK(runner.Get("default", "web", a.instance).acked_role.empty());
  CHECK(runner.Get("default", "web", "uid-b/0").consecutive_failures == 0);
  const std::size_t b_calls = apps.CallsOf("b").size();
  clock.Advance(10s);  // b's retry comes due, and finds its domain gone

  // Known again later, the domain starts from scratch: everything is told anew.
  runner.Update("default", "web", AnyHook(), {a});
  REQUIRE(Eventually([&] { return Acked(runner, a); }));
  clock.Advance(10s);
  runner.Stop();  // every run that was going to happen has
  CHECK(apps.CallsOf("a").size() == 2);
  CHECK(apps.CallsOf("b").size() <= b_calls + 1);  // at most the delivery in flight
}

TEST_CASE("RoleHookRunner: a slow domain does not hold up another") {
  FakeClock clock;
  FakeApps apps(clock);
  apps.member.Hold("slow");
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock));
  const std::shared_ptr<void> release(nullptr, [&](void*) { apps.member.ReleaseAll(); });
  runner.Update("default", "slow-domain", AnyHook(),
                {{"default", "slow-domain", "slow", "uid-slow/0", "127.0.0.1", "dc", 1}});
  REQUIRE(Eventually([&] { return apps.Started() == 1; }));
  const Assignment quick = Assign("quick", "dc", 1);
  runner.Update("default", "web", AnyHook(), {quick});
  REQUIRE(Eventually([&] { return Acked(runner, quick); }));
  CHECK(apps.CallsOf("slow").empty());  // still hanging
}

TEST_CASE("RoleHookRunner::Stop returns once deliveries in flight finish") {
  FakeClock clock;
  FakeApps apps(clock);
  apps.member.SetDelay("a", 200ms);
  RoleHookRunner runner(nullptr, FakeOptions(apps, clock));
  runner.Update("default", "web", AnyHook(), {Assign("a", "dc", 1)});
  REQUIRE(Eventually([&] { return apps.Started() == 1; }));
  const auto start = Steady::now();
  runner.Stop();
  CHECK(Steady::now() - start < 1500ms);
  CHECK(apps.Count() == 1);  // the delivery in flight finished
}

}  // namespace
}  // namespace dpcm::rolehook
