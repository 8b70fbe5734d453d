// The operator end to end on the real control plane, with the independent DC watcher throughout.
#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "pkg/client/api_client.h"
#include "tests/support/e2e_scenario.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::DcWatcher;
using testing::OperatorEnv;
using testing::TestEnv;
using testing::e2e::Eventually;
using testing::e2e::LabelSelector;
using testing::e2e::Scenario;

TEST_CASE("a 3-replica domain elects exactly one DC, with Lease, Service and status to match") {
  Scenario s;
  s.CreateDomain("alpha", 3);
  const std::string dc = s.WaitRunning("alpha", 3);
  s.CheckLeaseMatches("alpha", dc);
  int pcs = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string pod = "alpha-" + std::to_string(i);
    if (pod == dc) continue;
    CHECK(Eventually([&] {
      return s.Pod(pod).value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc";
    }));
    ++pcs;
  }
  CHECK(pcs == 2);
  auto service = s.api.Get(client::resources::Services(), s.ns, "alpha-dc");
  REQUIRE_MESSAGE(service.ok(), service.status().ToString());
  CHECK((*service)["spec"]["selector"] ==
        Json({{"dpcm.io/domain", "alpha"}, {"dpcm.io/role", "dc"}}));
  auto table = s.env.Kubectl({"get", "pd", "-n", s.ns});
  REQUIRE(table.ok());
  CHECK(table->find("DC") != std::string::npos);
  CHECK(table->find("EPOCH") != std::string::npos);
  CHECK(table->find(dc) != std::string::npos);
  CHECK(table->find("Running") != std::string::npos);
  MESSAGE("kubectl get pd:\n" << *table);
}

TEST_CASE("a domain where nothing changes costs no writes: no Lease renewal on a timer") {
  Scenario s;
  Json domain = OperatorEnv::SampleDomain("quiet", 2);
  // Renewing every leaseDuration/3 (as the operator once did) would write the Lease
  // about every second here.
  domain["spec"]["election"] = {
      {"leaseDurationSeconds", 3}, {"renewDeadlineSeconds", 2}, {"retryPeriodSeconds", 1}};
  s.Create(domain);
  const std::string dc = s.WaitRunning("quiet", 2);
  s.CheckLeaseMatches("quiet", dc);
  auto version = [&](const client::ResourceRef& ref, const std::string& name) {
    auto object = s.api.Get(ref, s.ns, name);
    REQUIRE_MESSAGE(object.ok(), object.status().ToString());
    return object->value("/metadata/resourceVersion"_json_pointer, "");
  };
  const std::string lease = version(client::resources::Leases(), "quiet");
  const std::string status = version(client::resources::ProcessDomains(), "quiet");
  const std::string dc_pod = version(client::resources::Pods(), dc);
  // An absence cannot be awaited: watch a window of two lease durations.
  std::this_thread::sleep_for(6s);
  CHECK(version(client::resources::Leases(), "quiet") == lease);
  CHECK(version(client::resources::ProcessDomains(), "quiet") == status);
  CHECK(version(client::resources::Pods(), dc) == dc_pod);
  // The unrenewed Lease does not stop a failover.
  REQUIRE(s.env.KillPodProcess(s.ns, dc).ok());
  CHECK(s.watcher.WaitForNewDc("quiet", dc, 10s).has_value());
}

TEST_CASE("the DC moves when its process is killed, its pod is deleted, or it turns not Ready") {
  Scenario s;
  s.CreateDomain("beta", 3);
  std::string dc = s.WaitRunning("beta", 3);
  int64_t epoch = s.Epoch("beta");

  SUBCASE("process killed") {
    const auto killed_at = DcWatcher::WallClock::now();
    REQUIRE(s.env.KillPodProcess(s.ns, dc).ok());
    auto change = s.watcher.WaitForNewDc("beta", dc, 30s);
    REQUIRE_MESSAGE(change.has_value(), (std::string("no failover after killing ") + dc));
    MESSAGE(
        "failover after SIGKILL took "
        << std::chrono::duration_cast<std::chrono::milliseconds>(change->seen - killed_at).count()
        << " ms");
    // The flight recorder: who, why, and each phase in order, in the status.
    Json last;
    REQUIRE(Eventually([&] {
      last = s.Domain("beta").value("/status/lastFailover"_json_pointer, Json());
      return last.is_object() && last.value("to", "") == change->dc;
    }));
    CHECK(last.value("from", "") == dc);
    // Seen exited, or (if the kubelet restarted it before a reconcile looked) restarted.
    CHECK((last.value("reason", "") == "container-exited" ||
           last.value("reason", "") == "container-restarted"));
    CHECK(last.value("epoch", int64_t{0}) > epoch);
    std::vector<std::string> names;
    double previous = 0;
    for (const auto& phase : last["phases"]) {
      names.push_back(phase.value("name", ""));
      CHECK(phase.value("ms", -1.0) >= previous);
      previous = phase.value("ms", -1.0);
    }
    CHECK(names == std::vector<std::string>{"decided", "fenced", "leaseWritten", "labeled"});
    // No role hooks: the status says so rather than invent an acknowledgement.
    CHECK(last.value("hooks", "") == "none");
    MESSAGE("flight recorder: " << last.dump());
    // The old DC's container is restarted and the pod comes back as a PC.
    CHECK(Eventually([&] {
      const Json pod = s.Pod(dc);
      return pod.value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc" &&
             pod.value("/status/containerStatuses/0/restartCount"_json_pointer, 0) >= 1 &&
             pod.value("/status/containerStatuses/0/ready"_json_pointer, false);
    }));
  }
  SUBCASE("pod deleted") {
    REQUIRE(s.api.Delete(client::resources::Pods(), s.ns, dc).ok());
    auto change = s.watcher.WaitForNewDc("beta", dc, 30s);
    REQUIRE_MESSAGE(change.has_value(), (std::string("no failover after deleting ") + dc));
    // The operator recreates the deleted member, which joins as a PC.
    CHECK(Eventually(
        [&] {
          auto pod = s.api.Get(client::resources::Pods(), s.ns, dc);
          return pod.ok() && !(*pod)["metadata"].contains("deletionTimestamp") &&
                 pod->value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc" &&
                 pod->value("/status/containerStatuses/0/ready"_json_pointer, false);
        },
        60s));
  }
  SUBCASE("not Ready") {
    REQUIRE(s.env.PostToApp(s.ns, dc, "/admin/unhealthy").ok());
    auto change = s.watcher.WaitForNewDc("beta", dc, 30s);
    REQUIRE_MESSAGE(change.has_value(),
                    (std::string("no failover after ") + dc + " turned unready"));
    CHECK(Eventually([&] {
      return s.Pod(dc).value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc";
    }));
  }
  const std::string new_dc = s.watcher.CurrentDc("beta");
  CHECK(new_dc != dc);
  s.CheckLeaseMatches("beta", new_dc);
  CHECK(s.Epoch("beta") > epoch);
  CHECK(Eventually([&] {
    const Json d = s.Domain("beta");
    return d.value("/status/failovers"_json_pointer, 0) >= 1 &&
           d.value("/status/activePod"_json_pointer, "") == new_dc;
  }));
}

TEST_CASE("a second domain is unaffected by the first's failures") {
  Scenario s;
  s.CreateDomain("one", 2);
  s.CreateDomain("two", 2);
  const std::string dc_one = s.WaitRunning("one", 2);
  const std::string dc_two = s.WaitRunning("two", 2);
  const int64_t epoch_two = s.Epoch("two");
  for (int round = 0; round < 3; ++round) {
    const std::string current = s.watcher.CurrentDc("one");
    REQUIRE(s.env.KillPodProcess(s.ns, current).ok());
    REQUIRE(s.watcher.WaitForNewDc("one", current, 30s).has_value());
    s.WaitRunning("one", 2);
  }
  CHECK(s.watcher.CurrentDc("two") == dc_two);
  CHECK(s.Epoch("two") == epoch_two);
  CHECK(s.Domain("two").value("/status/failovers"_json_pointer, -1) == 0);
  CHECK(dc_one != "");
}

TEST_CASE("an invalid spec is reported, and other domains keep working") {
  Scenario s;
  Json bad = OperatorEnv::SampleDomain("broken", 2);
  bad["spec"]["election"] = {{"leaseDurationSeconds", 5}, {"renewDeadlineSeconds", 10}};
  auto created = s.api.Create(client::resources::ProcessDomains(), s.ns, bad);
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  s.CreateDomain("fine", 2);
  s.WaitRunning("fine", 2);
  CHECK(Eventually([&] {
    const Json d = s.Domain("broken");
    const Json conditions = d.value("/status/conditions"_json_pointer, Json::array());
    for (const auto& c : conditions) {
      if (c.value("type", "") == "Degraded" && c.value("status", "") == "True" &&
          c.value("reason", "") == "InvalidSpec" &&
          c.value("message", "").find("spec.election.renewDeadlineSeconds") != std::string::npos) {
        return true;
      }
    }
    return false;
  }));
  CHECK(Eventually([&] {
    client::ListOptions options;
    options.field_selector = "involvedObject.name=broken,reason=InvalidSpec";
    auto events = s.api.List(client::resources::Events(), s.ns, options);
    return events.ok() && !(*events)["items"].empty();
  }));
  auto pods = s.api.List(client::resources::Pods(), s.ns, LabelSelector("dpcm.io/domain=broken"));
  REQUIRE(pods.ok());
  CHECK((*pods)["items"].empty());
}

TEST_CASE("deleting a domain removes its pods, Lease and Service") {
  Scenario s;
  s.CreateDomain("gone", 2);
  s.WaitRunning("gone", 2);
  REQUIRE(s.api.Delete(client::resources::ProcessDomains(), s.ns, "gone").ok());
  CHECK(Eventually(
      [&] {
        auto pods =
            s.api.List(client::resources::Pods(), s.ns, LabelSelector("dpcm.io/domain=gone"));
        return pods.ok() && (*pods)["items"].empty() &&
               s.api.Get(client::resources::Leases(), s.ns, "gone").status().IsNotFound() &&
               s.api.Get(client::resources::Services(), s.ns, "gone-dc").status().IsNotFound();
      },
      60s));
}

}  // namespace
}  // namespace dpcm

namespace dpcm {
namespace {

TEST_CASE("scaling up adds PCs, and scaling down moves the DC off a removed member first") {
  Scenario s;
  s.CreateDomain("scale", 2);
  s.WaitRunning("scale", 2);
  auto scale_to = [&](int replicas) {
    auto patched = s.api.Patch(client::resources::ProcessDomains(), s.ns, "scale",
                               client::PatchType::kMerge, {{"spec", {{"replicas", replicas}}}});
    REQUIRE_MESSAGE(patched.ok(), patched.status().ToString());
  };
  scale_to(4);
  s.WaitRunning("scale", 4);
  for (const char* pod : {"scale-2", "scale-3"}) {
    CHECK(Eventually([&] {
      return s.Pod(pod).value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc";
    }));
  }
  // Make the highest ordinal the DC (every other member unready for a moment), then
  // scale below it.
  for (const char* pod : {"scale-0", "scale-1", "scale-2"}) {
    REQUIRE(s.env.PostToApp(s.ns, pod, "/admin/unhealthy").ok());
  }
  CHECK(Eventually([&] { return s.watcher.CurrentDc("scale") == "scale-3"; }));
  for (const char* pod : {"scale-0", "scale-1", "scale-2"}) {
    REQUIRE(s.env.PostToApp(s.ns, pod, "/admin/healthy").ok());
  }
  s.WaitRunning("scale", 4);
  REQUIRE(s.watcher.CurrentDc("scale") == "scale-3");
  scale_to(2);
  auto moved = s.watcher.WaitForNewDc("scale", "scale-3", 30s);
  REQUIRE(moved.has_value());
  CHECK((moved->dc == "scale-0" || moved->dc == "scale-1"));
  CHECK(Eventually(
      [&] {
        auto pods =
            s.api.List(client::resources::Pods(), s.ns, LabelSelector("dpcm.io/domain=scale"));
        return pods.ok() && (*pods)["items"].size() == 2;
      },
      60s));
  s.WaitRunning("scale", 2);
}

}  // namespace
}  // namespace dpcm
