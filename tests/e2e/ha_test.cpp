// Operator HA end to end: two leader-electing operators, the leader killed, paused or stopped.
#include <doctest/doctest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "pkg/client/api_client.h"
#include "pkg/election/lease_record.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
#include "tests/support/operator_env.h"
#include "tests/support/operator_replicas.h"
#include "tests/support/testenv.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::DcWatcher;
using testing::OperatorEnv;
using testing::OperatorReplicas;
using testing::TestEnv;
using SteadyClock = std::chrono::steady_clock;

template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout = 30s) {
  return testing::Eventually(condition, timeout, 10ms);
}

long long MillisSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
}

// Two operator replicas on a fresh namespace, a DC watcher on it (checked when the test
// ends). A takeover takes up to LeaseDuration + RetryPeriod, and a DC that died just
// before the leader may wait that long for its successor: the watcher allows a 15 s gap.
struct HaScenario {
  OperatorReplicas replicas{"ha"};
  client::ApiClient& api = replicas.api();
  std::unique_ptr<client::ApiClient> watcher_client = TestEnv::Client();
  DcWatcher watcher{*watcher_client, replicas.ns(), 15s};

  ~HaScenario() {
    for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
  }

  // Replica 0 first, so that it leads; then replica 1, a standby once its caches synced.
  void StartBoth() {
    REQUIRE(replicas.Start(0).ok());
    REQUIRE_MESSAGE(Eventually([&] { return replicas.Leader() == 0; }),
                    ("replica 0 did not lead; logs in " + replicas.log_dir()));
    REQUIRE(replicas.Start(1).ok());
    REQUIRE_MESSAGE(
        Eventually([&] { return testing::HttpGet(replicas.health_port(1), "/readyz").ok(); }),
        "the standby never turned ready");
  }
  void CreateDomain(const std::string& name, int members) {
    auto created = api.Create(client::resources::ProcessDomains(), replicas.ns(),
                              OperatorEnv::SampleDomain(name, members));
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  }
  Json Domain(const std::string& name) {
    auto domain = api.Get(client::resources::ProcessDomains(), replicas.ns(), name);
    REQUIRE_MESSAGE(domain.ok(), domain.status().ToString());
    return *domain;
  }
  // Waits for a DC and for the domain to report Running with every member healthy.
  std::string WaitRunning(const std::string& name, int members) {
    auto change = watcher.WaitForNewDc(name, "", 60s);
    REQUIRE_MESSAGE(change.has_value(), ("no DC elected for " + name));
    const std::string ready = std::to_string(members) + "/" + std::to_string(members);
    CHECK(Eventually([&] {
      const Json d = Domain(name);
      return d.value("/status/phase"_json_pointer, "") == "Running" &&
             d.value("/status/ready"_json_pointer, "") == ready &&
             d.value("/status/activePod"_json_pointer, "") == watcher.CurrentDc(name);
    }));
    return watcher.CurrentDc(name);
  }
  int64_t Epoch(const std::string& name) {
    return Domain(name).value("/status/epoch"_json_pointer, int64_t{0});
  }
  // Each member's role label and resourceVersion, to show that nothing was written.
  std::map<std::string, std::string> Roles(const std::string& name) {
    client::ListOptions options;
    options.label_selector = "dpcm.io/domain=" + name;
    auto pods = api.List(client::resources::Pods(), replicas.ns(), options);
    REQUIRE_MESSAGE(pods.ok(), pods.status().ToString());
    std::map<std::string, std::string> roles;
    for (const auto& pod : (*pods)["items"]) {
      roles[pod["metadata"]["name"]] =
          pod.value("/metadata/labels/dpcm.io~1role"_json_pointer, "") + "@" +
          pod.value("/metadata/resourceVersion"_json_pointer, "");
    }
    return roles;
  }
  // Waits until the operator Lease names a holder other than `previous` (and not ""),
  // returning it.
  std::string WaitForNewHolder(const std::string& previous, std::chrono::milliseconds timeout) {
    std::string holder;
    const bool changed = Eventually(
        [&] {
          holder = replicas.LeaseHolder();
          return holder != previous && !holder.empty() && holder != "<absent>";
        },
        timeout);
    REQUIRE_MESSAGE(changed, ("the operator Lease stayed with " + previous));
    return holder;
  }
};

TEST_CASE(
    "HA: the standby takes over from a SIGKILLed leader and DCs stay while no operator runs") {
  HaScenario s;
  s.StartBoth();
  s.CreateDomain("steady", 3);
  const std::string dc = s.WaitRunning("steady", 3);
  const int64_t epoch = s.Epoch("steady");
  const std::string first_holder = s.replicas.LeaseHolder();
  CHECK(s.replicas.ReconcileCount(1) == 0);  // the standby only keeps its caches warm
  CHECK(testing::HttpGet(s.replicas.health_port(1), "/healthz").ok());

  const auto killed_at = SteadyClock::now();
  s.replicas.process(0).Kill();
  const std::string second_holder = s.WaitForNewHolder(first_holder, 30s);
  const long long takeover_ms = MillisSince(killed_at);
  REQUIRE(Eventually([&] { return s.replicas.ReconcileCount(1) > 0; }));
  const long long reconcile_ms = MillisSince(killed_at);
  MESSAGE("leader SIGKILLed: standby holds the operator Lease after "
          << takeover_ms << " ms, first reconcile after " << reconcile_ms << " ms (lease "
          << s.replicas.timings().lease_duration << " s, retry "
          << s.replicas.timings().retry_period << " s)");
  CHECK(takeover_ms >= (s.replicas.timings().lease_duration - s.replicas.timings().retry_period) *
                           1000);  // not before the Lease could have expired
  CHECK(s.replicas.Leader() == 1);
  CHECK(s.watcher.CurrentDc("steady") == dc);  // the DC never moved
  CHECK(s.Epoch("steady") == epoch);

  // The new leader does the job: the DC's process dies, another member takes over.
  REQUIRE(s.replicas.KillPodProcess(dc).ok());
  auto moved = s.watcher.WaitForNewDc("steady", dc, 30s);
  REQUIRE_MESSAGE(moved.has_value(), "the new leader did not fail the domain over");
  const std::string second_dc = s.WaitRunning("steady", 3);
  const int64_t second_epoch = s.Epoch("steady");
  CHECK(second_epoch > epoch);

  // No operator at all: nothing is written, the DC keeps its label.
  const auto roles = s.Roles("steady");
  s.replicas.process(1).Kill();
  std::this_thread::sleep_for(std::chrono::seconds(2 * s.replicas.timings().lease_duration));
  CHECK(s.Roles("steady") == roles);
  CHECK(s.watcher.CurrentDc("steady") == second_dc);

  // A replica coming back takes the orphaned Lease after LeaseDuration and keeps the DC.
  const auto restarted_at = SteadyClock::now();
  REQUIRE(s.replicas.Start(0).ok());
  s.WaitForNewHolder(second_holder, 30s);
  MESSAGE("a restarted replica took the orphaned operator Lease after " << MillisSince(restarted_at)
                                                                        << " ms");
  REQUIRE(Eventually([&] { return s.replicas.ReconcileCount(0) > 0; }));
  std::this_thread::sleep_for(1s);
  CHECK(s.watcher.CurrentDc("steady") == second_dc);
  CHECK(s.Epoch("steady") == second_epoch);
}

TEST_CASE("HA: the leader SIGKILLed mid-failover: the standby completes it, never two DCs") {
  HaScenario s;
  s.StartBoth();
  s.CreateDomain("mid", 3);
  const std::string dc = s.WaitRunning("mid", 3);
  const int64_t epoch = s.Epoch("mid");
  const std::string first_holder = s.replicas.LeaseHolder();

  const auto killed_at = DcWatcher::WallClock::now();
  REQUIRE(s.replicas.KillPodProcess(dc).ok());
  s.replicas.process(0).Kill();
  s.WaitForNewHolder(first_holder, 30s);
  auto moved = s.watcher.WaitForNewDc("mid", dc, 30s);
  REQUIRE_MESSAGE(moved.has_value(), ("no failover after killing " + dc + " and the leader"));
  const auto acquired = s.replicas.LeaseAcquireTime();  // written by the new leader
  REQUIRE(acquired.has_value());
  const auto ms = [&](DcWatcher::WallClock::time_point at) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at - killed_at).count();
  };
  MESSAGE("DC and leader killed together: the standby acquired the operator Lease after "
          << ms(*acquired) << " ms; " << moved->dc << " was labeled DC after " << ms(moved->seen)
          << " ms");
  CHECK(moved->seen >= *acquired);  // the new leader moved the DC, not the killed one
  CHECK(s.replicas.Leader() == 1);
  s.WaitRunning("mid", 3);
  CHECK(s.Epoch("mid") > epoch);
}

TEST_CASE("HA: a SIGTERMed leader releases the Lease and the standby takes over at once") {
  HaScenario s;
  s.StartBoth();
  s.CreateDomain("term", 2);
  const std::string dc = s.WaitRunning("term", 2);
  const std::string first_holder = s.replicas.LeaseHolder();

  const auto stopped_at = SteadyClock::now();
  REQUIRE(kill(s.replicas.process(0).pid(), SIGTERM) == 0);
  s.WaitForNewHolder(first_holder, 30s);
  const long long takeover_ms = MillisSince(stopped_at);
  MESSAGE("leader SIGTERMed: standby holds the operator Lease after "
          << takeover_ms << " ms (lease " << s.replicas.timings().lease_duration << " s)");
  CHECK(takeover_ms < s.replicas.timings().lease_duration * 1000 / 2);
  CHECK(Eventually([&] { return !s.replicas.process(0).Running(); }, 10s));
  CHECK(s.replicas.process(0).Stop() == 0);  // a clean exit
  REQUIRE(Eventually([&] { return s.replicas.ReconcileCount(1) > 0; }));
  CHECK(s.replicas.Leader() == 1);
  CHECK(s.watcher.CurrentDc("term") == dc);
}

TEST_CASE("HA: a paused leader is deposed, and on resuming it stops writing and exits non-zero") {
  HaScenario s;
  s.StartBoth();
  s.CreateDomain("pause", 2);
  const std::string dc = s.WaitRunning("pause", 2);
  const std::string first_holder = s.replicas.LeaseHolder();
  const pid_t paused = s.replicas.process(0).pid();

  REQUIRE(kill(paused, SIGSTOP) == 0);
  const auto paused_at = SteadyClock::now();
  s.WaitForNewHolder(first_holder, 30s);
  MESSAGE("leader paused: standby holds the operator Lease after " << MillisSince(paused_at)
                                                                   << " ms");
  REQUIRE(Eventually([&] { return s.replicas.ReconcileCount(1) > 0; }));
  REQUIRE(kill(paused, SIGCONT) == 0);
  CHECK(Eventually([&] { return !s.replicas.process(0).Running(); }, 15s));
  CHECK(s.replicas.process(0).Stop() == 1);  // leadership lost: exit non-zero

  std::ifstream log(s.replicas.process(0).log_path());
  std::stringstream text;
  text << log.rdbuf();
  CHECK(text.str().find("leadership lost") != std::string::npos);

  // The new leader goes on: a failover under it.
  REQUIRE(s.replicas.KillPodProcess(dc).ok());
  CHECK(s.watcher.WaitForNewDc("pause", dc, 30s).has_value());
}

// What a new leader must continue, not restart: the restart back-off, the limit of
// restarts in flight, and the counts users see, all kept in the domain's status.
TEST_CASE("HA: a leader change in a restart storm keeps the back-off, the limit and the counts") {
  HaScenario s;
  s.StartBoth();
  Json domain = OperatorEnv::SampleDomain("storm", 3);
  domain["spec"]["template"]["spec"]["containers"][0].erase("readinessProbe");
  domain["spec"]["health"] = {{"periodSeconds", 1},
                              {"timeoutSeconds", 1},
                              {"failureThreshold", 2},
                              {"http", {{"port", 9}, {"path", "/healthz"}}}};  // always fails
  constexpr int kInitial = 3;
  constexpr int kMax = 12;
  domain["spec"]["restart"] = {{"backoff", {{"initialSeconds", kInitial}, {"maxSeconds", kMax}}},
                               {"maxConcurrent", 1}};
  REQUIRE(s.api.Create(client::resources::ProcessDomains(), s.replicas.ns(), domain).ok());

  // Every restart the status records: member, streak and when (microseconds).
  struct Restart {
    std::string member;
    int streak = 0;
    std::string at;
  };
  std::vector<Restart> restarts;
  std::map<std::string, int> totals;  // status.memberRestarts[].total, never going down
  int most_in_flight = 0;
  const auto observe = [&] {
    const Json d = s.Domain("storm");
    int in_flight = 0;
    for (const auto& r : d.value("/status/memberRestarts"_json_pointer, Json::array())) {
      const std::string name = r.value("name", "");
      const int total = r.value("total", 0);
      CHECK_MESSAGE(total >= totals[name],
                    (name + "'s restart count went down to " + std::to_string(total)));
      const std::string at = r.value("lastRestartTime", "");
      const bool known = std::any_of(restarts.begin(), restarts.end(), [&](const Restart& x) {
        return x.member == name && x.at == at;
      });
      if (!known && !at.empty()) restarts.push_back({name, r.value("streak", 0), at});
      totals[name] = std::max(totals[name], total);
      in_flight += r.value("pendingUid", "").empty() ? 0 : 1;
    }
    most_in_flight = std::max(most_in_flight, in_flight);
  };
  const auto total = [&] {
    int sum = 0;
    for (const auto& [name, n] : totals) sum += n;
    return sum;
  };
  REQUIRE(Eventually(
      [&] {
        observe();
        return total() >= 3;
      },
      60s));
  const int before = total();
  const std::string first_holder = s.replicas.LeaseHolder();
  s.replicas.process(0).Kill();
  s.WaitForNewHolder(first_holder, 30s);
  REQUIRE(Eventually(
      [&] {
        observe();
        return total() >= before + 3;
      },
      60s));
  MESSAGE(before << " restarts under the first leader, " << total() - before
                 << " under the second; at most " << most_in_flight << " in flight");
  CHECK(most_in_flight <= 1);
  // Each member's restarts are at least its back-off apart, across the leader change.
  for (size_t i = 0; i < restarts.size(); ++i) {
    for (size_t j = i + 1; j < restarts.size(); ++j) {
      if (restarts[j].member != restarts[i].member) continue;
      const auto t1 = election::ParseTime(restarts[i].at);
      const auto t2 = election::ParseTime(restarts[j].at);
      REQUIRE((t1 && t2));
      const int wait = std::min(kMax, kInitial << std::max(0, restarts[i].streak - 1));
      const auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(*t2 - *t1);
      CHECK_MESSAGE(gap >= std::chrono::seconds(wait),
                    (restarts[i].member + " restarted again after " + std::to_string(gap.count()) +
                     " ms; its back-off was " + std::to_string(wait) + " s"));
      CHECK(restarts[j].streak == restarts[i].streak + 1);
      break;
    }
  }
}

}  // namespace
}  // namespace dpcm
