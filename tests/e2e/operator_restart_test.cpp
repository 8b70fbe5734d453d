// The operator started again over domains that changed, or did not, while it was away.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
#include "tests/support/operator_env.h"
#include "tests/support/operator_replicas.h"
#include "tests/support/sample_app_log.h"
#include "tests/support/testenv.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::DcWatcher;
using testing::Millis;
using testing::OperatorEnv;
using testing::OperatorReplicas;
using testing::TestEnv;

template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout = 30s) {
  return testing::Eventually(condition, timeout, 20ms);
}

// One operator replica (stopped and started by the test) on a namespace of its own, the
// DC watcher on it (checked when the test ends; a domain may have no DC for `no_dc_bound`).
struct RestartScenario {
  RestartScenario(const std::string& prefix, testing::ReplicaTimings timings,
                  std::chrono::milliseconds no_dc_bound = 5s)
      : replicas(prefix, timings), watcher(*watcher_client, replicas.ns(), no_dc_bound) {}
  ~RestartScenario() {
    for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
  }

  OperatorReplicas replicas;
  client::ApiClient& api = replicas.api();
  const std::string& ns = replicas.ns();
  std::unique_ptr<client::ApiClient> watcher_client = TestEnv::Client();
  DcWatcher watcher;

  // Starts the operator and waits until it leads.
  void StartOperator() {
    REQUIRE(replicas.Start(0).ok());
    REQUIRE_MESSAGE(Eventually([&] { return replicas.Leader() == 0; }),
                    ("the operator did not lead; logs in " + replicas.log_dir()));
  }
  // Stops it (SIGTERM: it releases its Lease, so the next start leads at once).
  void StopOperator() { CHECK(replicas.process(0).Stop() == 0); }
  void Create(const Json& domain) {
    auto created = api.Create(client::resources::ProcessDomains(), ns, domain);
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  }
  Json Get(const client::ResourceRef& ref, const std::string& name) {
    auto object = api.Get(ref, ns, name);
    REQUIRE_MESSAGE(object.ok(), object.status().ToString());
    return *object;
  }
  Json Domain(const std::string& name) { return Get(client::resources::ProcessDomains(), name); }
  Json Pod(const std::string& name) { return Get(client::resources::Pods(), name); }
  int64_t Epoch(const std::string& name) {
    return Domain(name).value("/status/epoch"_json_pointer, int64_t{0});
  }
  // Whether the domain reports Running with all `members` ready and its DC as seen here.
  bool Running(const std::string& name, int members) {
    const Json d = Domain(name);
    const std::string dc = watcher.CurrentDc(name);
    return !dc.empty() && d.value("/status/phase"_json_pointer, "") == "Running" &&
           d.value("/status/ready"_json_pointer, "") ==
               std::to_string(members) + "/" + std::to_string(members) &&
           d.value("/status/activePod"_json_pointer, "") == dc;
  }
  // The operator's work queue depth (-1 when its metrics do not answer).
  double WorkQueueDepth() {
    auto metrics = testing::HttpGet(replicas.metrics_port(0), "/metrics");
    return metrics.ok() ? testing::SumOfSamples(*metrics, "workqueue_depth") : -1;
  }
  // What the operator asked the API server since it started, from its metrics.
  struct RequestCounts {
    double total = 0;
    double writes = 0;     // POST, PUT, PATCH, DELETE
    double conflicts = 0;  // answered 409

    std::string ToString() const {
      std::ostringstream out;
      out << total << " requests, " << writes << " writes, " << conflicts << " answered 409";
      return out.str();
    }
  };
  RequestCounts Requests() {
    auto metrics = testing::HttpGet(replicas.metrics_port(0), "/metrics");
    REQUIRE_MESSAGE(metrics.ok(), metrics.status().ToString());
    const char* kName = "rest_client_requests_total";
    RequestCounts counts;
    counts.total = testing::SumOfSamples(*metrics, kName);
    for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
      counts.writes +=
          testing::SumOfSamples(*metrics, kName, std::string("method=\"") + method + "\"");
    }
    counts.conflicts = testing::SumOfSamples(*metrics, kName, "code=\"409\"");
    return counts;
  }
  // The FailingOver Events of the domain (their messages).
  std::vector<std::string> FailingOver(const std::string& name) {
    client::ListOptions options;
    options.field_selector = "involvedObject.name=" + name + ",reason=FailingOver";
    auto events = api.List(client::resources::Events(), ns, options);
    REQUIRE_MESSAGE(events.ok(), events.status().ToString());
    std::vector<std::string> messages;
    for (const auto& e : (*events)["items"]) messages.push_back(e.value("message", ""));
    return messages;
  }
};

// Issue 10, finding 1: the operator found a running, Ready DC and told the new process
// "dc" at the old epoch, though it had died; healthy PCs waited for nothing.
TEST_CASE(
    "a DC whose process died and restarted while no operator watched is failed over at a new "
    "epoch") {
  // The simulator restarts a dead container after 300 ms (its readiness probe runs every
  // second): the test waits for that before it starts the operator again.
  RestartScenario s("unseen", {.container_restart_delay_ms = 300});
  s.StartOperator();
  Json domain = OperatorEnv::SampleDomain("unseen", 3);
  domain["spec"]["roleHooks"] = {{"http", {{"port", 8080}, {"path", "/dpcm/role"}}},
                                 {"timeoutSeconds", 1}};
  s.Create(domain);
  REQUIRE(s.watcher.WaitForNewDc("unseen", "", 60s).has_value());
  REQUIRE(Eventually([&] { return s.Running("unseen", 3); }));
  const std::string dc = s.watcher.CurrentDc("unseen");
  const int64_t epoch = s.Epoch("unseen");
  REQUIRE(Eventually([&] {
    return testing::LastAcceptedRole(s.replicas.PodLog(dc)) == "dc@" + std::to_string(epoch);
  }));
  const int restarts = s.Pod(dc).value("/status/containerStatuses/0/restartCount"_json_pointer, 0);

  // No operator: the DC's process dies and the kubelet restarts it; it turns Ready again.
  s.StopOperator();
  const size_t old_process_log = s.replicas.PodLog(dc).size();
  REQUIRE(s.replicas.KillPodProcess(dc).ok());
  REQUIRE_MESSAGE(Eventually([&] {
                    const Json pod = s.Pod(dc);
                    return pod.value("/status/containerStatuses/0/restartCount"_json_pointer, 0) >
                               restarts &&
                           pod.value("/status/containerStatuses/0/ready"_json_pointer, false) &&
                           pod.value("/status/phase"_json_pointer, "") == "Running";
                  }),
                  "the simulator did not restart " << dc);
  CHECK(s.watcher.CurrentDc("unseen") == dc);  // nobody moved the label meanwhile

  // The operator comes back: the new incarnation is a death, failed over at a new epoch.
  const auto started = DcWatcher::WallClock::now();
  s.StartOperator();
  auto change = s.watcher.WaitForNewDc("unseen", dc, 30s);
  REQUIRE_MESSAGE(change.has_value(),
                  "the restarted DC " << dc << " was kept; logs in " << s.replicas.log_dir());
  MESSAGE("DC " << dc << " restarted while no operator ran: " << change->dc << " is DC "
                << Millis(change->seen - started) << " ms after the operator started");
  CHECK(change->dc != dc);
  REQUIRE(Eventually([&] { return s.Running("unseen", 3); }));
  const int64_t new_epoch = s.Epoch("unseen");
  CHECK(new_epoch > epoch);
  CHECK(s.watcher.CurrentDc("unseen") == change->dc);
  CHECK(Eventually([&] {
    auto lease = s.api.Get(client::resources::Leases(), s.ns, "unseen");
    return lease.ok() && lease->value("/spec/holderIdentity"_json_pointer, "") == change->dc &&
           lease->value("/spec/leaseTransitions"_json_pointer, int64_t{-1}) == new_epoch;
  }));
  CHECK(Eventually(
      [&] { return s.Pod(dc).value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc"; }));
  // The restarted process heard at most "pc"; never "dc", at the old epoch or any other.
  CHECK(Eventually([&] {
    return testing::LastAcceptedRole(s.replicas.PodLog(dc).substr(old_process_log)) ==
           "pc@" + std::to_string(new_epoch);
  }));
  for (const auto& role : testing::AcceptedRoles(s.replicas.PodLog(dc).substr(old_process_log))) {
    CHECK_MESSAGE(role.role != "dc", "the restarted " << dc << " was told " << role.ToString());
  }
  std::string events;
  const bool restarted_reason = Eventually([&] {
    events.clear();
    bool found = false;
    for (const auto& message : s.FailingOver("unseen")) {
      events += "\n  " + message;
      found |= message == "DC " + dc + " is container-restarted";
    }
    return found;
  });
  CHECK_MESSAGE(restarted_reason, "FailingOver events:" << events);
}

// Issue 10, finding 3: every start cost 3-4 Lease 409 Conflicts per domain, writes made
// from a cache that had not seen the operator's own writes yet. No start may conflict
// with itself: not with twenty new domains to set up, not over them settled, not with
// every one of their DCs to fail over.
TEST_CASE("an operator start does not fight its own cache: no 409 over twenty domains") {
  constexpr int kDomains = 20;
  // Twenty failovers at once take about 7 s at the operator's default 20 requests/s (seven
  // requests each), after the pods were deleted with no operator running: allow 15 s.
  RestartScenario s("crowd", {.container_restart_delay_ms = 300}, 15s);
  const auto domain = [](int i) { return "crowd-" + std::to_string(i); };
  // Starts the operator and waits until every domain runs (with a DC other than the one
  // in `old_dcs`, when given) and its queue is empty; prints what the start cost.
  const auto start = [&](const std::string& what, const std::vector<std::string>& old_dcs) {
    const auto started = std::chrono::steady_clock::now();
    s.StartOperator();
    REQUIRE_MESSAGE(Eventually(
                        [&] {
                          for (int i = 0; i < kDomains; ++i) {
                            if (!s.Running(domain(i), 2)) return false;
                            if (!old_dcs.empty() && s.watcher.CurrentDc(domain(i)) == old_dcs[i]) {
                              return false;
                            }
                          }
                          return s.WorkQueueDepth() == 0;
                        },
                        120s),
                    "the domains did not settle; logs in " << s.replicas.log_dir());
    const auto counts = s.Requests();
    MESSAGE("operator start " << what << ": settled after "
                              << Millis(std::chrono::steady_clock::now() - started) << " ms; "
                              << counts.ToString());
    return counts;
  };

  // Created while no operator runs: its start has all of them to set up at once.
  for (int i = 0; i < kDomains; ++i) s.Create(OperatorEnv::SampleDomain(domain(i), 2));
  CHECK(start("with 20 new domains of 2", {}).conflicts == 0);

  // Started again over the settled domains: it reconciles each one and writes little.
  s.StopOperator();
  CHECK(start("over them, settled", {}).conflicts == 0);
  CHECK(s.replicas.ReconcileCount(0) >= kDomains);

  // Every DC's pod is deleted while no operator runs: the start fails all twenty over
  // and recreates the members at once.
  s.StopOperator();
  std::vector<std::string> deleted;
  for (int i = 0; i < kDomains; ++i) {
    deleted.push_back(s.watcher.CurrentDc(domain(i)));
    REQUIRE(s.api.Delete(client::resources::Pods(), s.ns, deleted[i]).ok());
  }
  REQUIRE(Eventually([&] {
    for (const auto& pod : deleted) {
      if (!s.api.Get(client::resources::Pods(), s.ns, pod).status().IsNotFound()) return false;
    }
    return true;
  }));
  CHECK(start("with every DC's pod deleted unseen", deleted).conflicts == 0);

  // Every DC's process dies and restarts while no operator runs: the start fails all
  // twenty over at once.
  s.StopOperator();
  std::vector<std::string> dcs;
  std::vector<int> restarts;
  for (int i = 0; i < kDomains; ++i) {
    dcs.push_back(s.watcher.CurrentDc(domain(i)));
    restarts.push_back(
        s.Pod(dcs[i]).value("/status/containerStatuses/0/restartCount"_json_pointer, 0));
    REQUIRE(s.replicas.KillPodProcess(dcs[i]).ok());
  }
  REQUIRE(Eventually([&] {
    for (int i = 0; i < kDomains; ++i) {
      const Json pod = s.Pod(dcs[i]);
      if (pod.value("/status/containerStatuses/0/restartCount"_json_pointer, 0) <= restarts[i] ||
          !pod.value("/status/containerStatuses/0/ready"_json_pointer, false)) {
        return false;
      }
    }
    return true;
  }));
  CHECK(start("with every DC restarted unseen", dcs).conflicts == 0);
}

}  // namespace
}  // namespace dpcm
