// dpcm under the faults of hack/chaos.sh: a drained node (with a PodDisruptionBudget), a frozen and
// thawed node, a partitioned node, control-plane and operator restarts.
#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/e2e_scenario.h"
#include "tests/support/sample_app_log.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::DcWatcher;
using testing::RunCommand;
using testing::e2e::Eventually;
using testing::e2e::Millis;
using testing::e2e::NodeReady;
using testing::e2e::Scenario;
using WallClock = DcWatcher::WallClock;

// Runs `hack/chaos.sh ARGS...` against this test's control plane.
Status Chaos(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {std::string(DPCM_SOURCE_DIR) + "/hack/chaos.sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto ran = RunCommand(argv);
  return ran.ok() ? Status::Ok() : ran.status();
}

TEST_CASE("chaos drain of the DC's node: the DC moves and every member runs elsewhere") {
  Scenario s;
  auto& nodes = s.env.nodes();
  // Spread, but softly: the evicted member must fit on the two nodes left.
  Json domain = testing::e2e::SpreadDomain("dr", 3, "ScheduleAnyway");
  s.Create(domain);
  const std::string dc = s.WaitRunning("dr", 3);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE_FALSE(node.empty());

  const auto started = WallClock::now();
  const Status drained = Chaos({"drain", node});
  REQUIRE_MESSAGE(drained.ok(), drained.ToString());
  // The DC runs on another node (a member recreated under the old DC's name may win).
  std::string new_dc;
  REQUIRE_MESSAGE(Eventually([&] {
                    new_dc = s.watcher.CurrentDc("dr");
                    return !new_dc.empty() && nodes.NodeOf(s.ns, new_dc) != node;
                  }),
                  "no DC off the drained node " << node);
  const auto moved = WallClock::now();
  s.WaitRunning("dr", 3);
  MESSAGE("drain of " << node << " (kubectl drain returned after " << Millis(moved - started)
                      << " ms at most): DC " << dc << " -> " << new_dc);
  for (int i = 0; i < 3; ++i) {
    const std::string pod = "dr-" + std::to_string(i);
    CHECK_MESSAGE(nodes.NodeOf(s.ns, pod) != node, pod << " still on the drained node");
  }
  CHECK(Chaos({"uncordon", node}).ok());
}

client::ResourceRef PodDisruptionBudgets() {
  return {"policy", "v1beta1", "poddisruptionbudgets", true};  // policy/v1 is newer than v1.20
}

TEST_CASE("chaos drain honours a PodDisruptionBudget: blocked at minAvailable 3, DC moves at 2") {
  Scenario s;
  auto& nodes = s.env.nodes();
  Json domain = testing::e2e::SpreadDomain("pb", 3, "ScheduleAnyway");
  s.Create(domain);
  const std::string dc = s.WaitRunning("pb", 3);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE_FALSE(node.empty());
  const Json budget = {
      {"apiVersion", "policy/v1beta1"},
      {"kind", "PodDisruptionBudget"},
      {"metadata", {{"name", "pb"}}},
      {"spec", {{"minAvailable", 3}, {"selector", {{"matchLabels", {{"dpcm.io/domain", "pb"}}}}}}}};
  REQUIRE(s.api.Create(PodDisruptionBudgets(), s.ns, budget).ok());
  auto allowed = [&](int64_t expected) {
    return Eventually([&] {
      auto pdb = s.api.Get(PodDisruptionBudgets(), s.ns, "pb");
      return pdb.ok() && pdb->value("/status/currentHealthy"_json_pointer, int64_t{-1}) == 3 &&
             pdb->value("/status/disruptionsAllowed"_json_pointer, int64_t{-1}) == expected;
    });
  };
  // The disruption controller computes the budget: no eviction allowed at minAvailable 3.
  REQUIRE(allowed(0));
  const auto blocked_start = WallClock::now();
  const Status blocked = Chaos({"drain", node, "--timeout", "2s"});
  const auto blocked_end = WallClock::now();
  CHECK_MESSAGE(!blocked.ok(), "kubectl drain evicted despite disruptionsAllowed 0");
  CHECK(s.watcher.CurrentDc("pb") == dc);
  CHECK(nodes.NodeOf(s.ns, dc) == node);
  CHECK_FALSE(s.Pod(dc).contains("/metadata/deletionTimestamp"_json_pointer));

  REQUIRE(s.api
              .Patch(PodDisruptionBudgets(), s.ns, "pb", client::PatchType::kMerge,
                     {{"spec", {{"minAvailable", 2}}}})
              .ok());
  REQUIRE(allowed(1));
  const auto started = WallClock::now();
  const Status drained = Chaos({"drain", node});
  REQUIRE_MESSAGE(drained.ok(), drained.ToString());
  const auto returned = WallClock::now();
  REQUIRE(Eventually([&] {
    const std::string now_dc = s.watcher.CurrentDc("pb");
    return !now_dc.empty() && nodes.NodeOf(s.ns, now_dc) != node;
  }));
  s.WaitRunning("pb", 3);
  for (int i = 0; i < 3; ++i) {
    const std::string pod = "pb-" + std::to_string(i);
    CHECK_MESSAGE(nodes.NodeOf(s.ns, pod) != node, pod << " still on the drained node");
  }
  CHECK(allowed(1));
  MESSAGE("drain of " << node << " with a PodDisruptionBudget: at minAvailable 3 kubectl drain "
                      << "evicted nothing and gave up after " << Millis(blocked_end - blocked_start)
                      << " ms (the DC " << dc << " stayed); at minAvailable 2 it returned after "
                      << Millis(returned - started) << " ms, new DC " << s.watcher.CurrentDc("pb"));
  CHECK(Chaos({"uncordon", node}).ok());
  (void)s.api.Delete(PodDisruptionBudgets(), s.ns, "pb");
}

TEST_CASE("chaos node-freeze of the DC's node: a new DC, and after node-thaw the old DC is a PC") {
  Scenario s;
  auto& nodes = s.env.nodes();
  Json domain = testing::e2e::SpreadDomain("fz", 3);
  s.Create(domain);
  const std::string dc = s.WaitRunning("fz", 3);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE_FALSE(node.empty());

  const auto frozen = WallClock::now();
  const Status froze = Chaos({"node-freeze", node});
  REQUIRE_MESSAGE(froze.ok(), froze.ToString());
  auto change = s.watcher.WaitForNewDc("fz", dc, 90s);
  const Status thawed = Chaos({"node-thaw", node});
  REQUIRE_MESSAGE(change.has_value(), "no new DC after freezing " << node);
  REQUIRE_MESSAGE(thawed.ok(), thawed.ToString());
  MESSAGE("node-freeze of " << node << ": new DC " << change->dc << " after "
                            << Millis(change->seen - frozen) << " ms");
  CHECK(Eventually([&] { return NodeReady(s.api, node); }, 30s));
  CHECK(Eventually([&] {
    const Json pod = s.Pod(dc);
    return pod.value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc" &&
           pod.value("/status/containerStatuses/0/ready"_json_pointer, false);
  }));
  s.WaitRunning("fz", 3);
  CHECK(s.watcher.CurrentDc("fz") == change->dc);
}

// The last role the sample app in `pod` accepted ("role@epoch"), from its log.
std::string LastRole(Scenario& s, const std::string& pod) {
  return testing::LastAcceptedRole(s.env.PodLog(s.ns, pod));
}

// A finding, not a pass/fail on timing: what dpcm does today when the DC's node stops
// talking to the API server while its pods keep running and stay reachable.
TEST_CASE("chaos kubelet-freeze of the DC's node: what happens while its pods keep running") {
  Scenario s;
  auto& nodes = s.env.nodes();
  Json domain = testing::e2e::SpreadDomain("kf", 3);
  domain["spec"]["roleHooks"] = {{"http", {{"port", 8080}, {"path", "/dpcm/role"}}},
                                 {"timeoutSeconds", 1}};
  s.Create(domain);
  const std::string dc = s.WaitRunning("kf", 3);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE_FALSE(node.empty());
  REQUIRE(Eventually([&] { return LastRole(s, dc).rfind("dc@", 0) == 0; }));

  const auto frozen = WallClock::now();
  const Status froze = Chaos({"kubelet-freeze", node});
  REQUIRE_MESSAGE(froze.ok(), froze.ToString());
  auto change = s.watcher.WaitForNewDc("kf", dc, 90s);
  const auto moved = WallClock::now();
  // The old DC still runs and the operator still reaches it: it hears its demotion.
  const bool demoted = Eventually([&] { return LastRole(s, dc).rfind("pc@", 0) == 0; }, 10s);
  const Status thawed = Chaos({"kubelet-thaw", node});
  REQUIRE_MESSAGE(change.has_value(), "no new DC while the kubelet of " << node << " is frozen");
  REQUIRE_MESSAGE(thawed.ok(), thawed.ToString());
  MESSAGE("kubelet-freeze of " << node << " (pods keep running): new DC " << change->dc << " after "
                               << Millis(moved - frozen) << " ms; the old DC " << dc
                               << " last accepted " << LastRole(s, dc)
                               << std::string(demoted ? " (demoted through its role hook)"
                                                      : " (never heard its demotion)"));
  CHECK(Eventually([&] { return NodeReady(s.api, node); }, 30s));
  s.WaitRunning("kf", 3);
}

// A finding, not a pass/fail on timing: what dpcm does today when the DC's node is cut off
// from the API server (its kubelet and pods cannot reach it), with or without the operator
// still reaching the DC; clients still reach it. The only assertion is the independent
// watcher's: never two DC labels.
TEST_CASE("chaos partition of the DC's node from the API server: what happens") {
  Scenario s;
  auto& nodes = s.env.nodes();
  if (!nodes.networked()) {
    MESSAGE("single-network mode (no network namespaces here): nothing to partition");
    return;
  }
  std::string peers;
  SUBCASE("--from apiserver: the operator still reaches the DC") { peers = "apiserver"; }
  SUBCASE("--from apiserver,operator: nobody in charge reaches the DC") {
    peers = "apiserver,operator";
  }
  Json domain = testing::e2e::SpreadDomain("pt", 3);
  domain["spec"]["roleHooks"] = {{"http", {{"port", 8080}, {"path", "/dpcm/role"}}},
                                 {"timeoutSeconds", 1}};
  s.Create(domain);
  const std::string dc = s.WaitRunning("pt", 3);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE_FALSE(node.empty());
  REQUIRE(Eventually([&] { return LastRole(s, dc).rfind("dc@", 0) == 0; }));
  REQUIRE(s.ClientReaches(dc));

  const auto cut = WallClock::now();
  const Status partitioned = Chaos({"partition", node, "--from", peers});
  REQUIRE_MESSAGE(partitioned.ok(), partitioned.ToString());
  const bool not_ready = Eventually([&] { return !NodeReady(s.api, node); }, 60s);
  const auto node_lost = WallClock::now();
  auto change = s.watcher.WaitForNewDc("pt", dc, 60s);
  // Whether the old DC hears its demotion (only if the operator reaches it).
  const bool demoted = Eventually([&] { return LastRole(s, dc).rfind("pc@", 0) == 0; }, 5s);
  const std::string role_in_partition = LastRole(s, dc);
  const bool old_dc_serves = s.ClientReaches(dc);
  const Status healed = Chaos({"heal", node});
  const auto heal = WallClock::now();
  REQUIRE_MESSAGE(healed.ok(), healed.ToString());
  CHECK_MESSAGE(not_ready, node << " stayed Ready while cut off from the API server");
  REQUIRE_MESSAGE(change.has_value(), "no new DC while " << node << " is partitioned");
  MESSAGE("partition of " << node << " from " << peers << ": NotReady after "
                          << Millis(node_lost - cut) << " ms, new DC " << change->dc << " after "
                          << Millis(change->seen - cut) << " ms; the old DC " << dc
                          << " still answers clients: " << std::string(old_dc_serves ? "yes" : "no")
                          << ", its last accepted role in the partition: " << role_in_partition
                          << std::string(demoted
                                             ? " (demoted through its role hook)"
                                             : " (never heard its demotion: two processes believe "
                                               "they are DC until the heal)"));
  CHECK(Eventually([&] { return NodeReady(s.api, node); }, 30s));
  s.WaitRunning("pt", 3);
  const bool rejoined = Eventually([&] { return LastRole(s, dc).rfind("pc@", 0) == 0; }, 10s);
  MESSAGE("after heal: " << node << " Ready and the domain Running 3/3 "
                         << Millis(WallClock::now() - heal) << " ms after the heal; the old DC "
                         << dc << " last accepted " << LastRole(s, dc)
                         << std::string(rejoined ? "" : " (not demoted yet)"));
  CHECK(s.watcher.CurrentDc("pt") == change->dc);
}

TEST_CASE("chaos partition --from clients: the client host loses the node's pods, nothing else") {
  Scenario s;
  auto& nodes = s.env.nodes();
  if (!nodes.networked()) {
    MESSAGE("single-network mode (no network namespaces here): nothing to partition");
    return;
  }
  s.CreateDomain("pc", 2);
  const std::string dc = s.WaitRunning("pc", 2);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE(s.ClientReaches(dc));
  REQUIRE(Chaos({"partition", node, "--from", "clients"}).ok());
  CHECK_FALSE(s.ClientReaches(dc));
  // The operator and the API server still reach the node: nothing moves.
  CHECK(NodeReady(s.api, node));
  CHECK(s.watcher.CurrentDc("pc") == dc);
  REQUIRE(Chaos({"heal", node}).ok());
  CHECK(s.ClientReaches(dc));
}

TEST_CASE("chaos restart of etcd, controller-manager, scheduler, operator: failover still works") {
  Scenario s;
  s.CreateDomain("rs", 3);
  const std::string dc = s.WaitRunning("rs", 3);
  for (const char* component : {"etcd", "controller-manager", "scheduler", "operator"}) {
    const Status restarted = Chaos({"restart", component});
    CHECK_MESSAGE(restarted.ok(), std::string(component) << ": " << restarted.ToString());
  }
  CHECK(s.watcher.CurrentDc("rs") == dc);
  // Everything works again: a deleted DC is failed over, recreated and scheduled.
  REQUIRE(s.api.Delete(client::resources::Pods(), s.ns, dc).ok());
  auto change = s.watcher.WaitForNewDc("rs", dc, 30s);
  REQUIRE_MESSAGE(change.has_value(), "no failover after the restarts");
  s.WaitRunning("rs", 3);
}

}  // namespace
}  // namespace dpcm
