// dpcm with the real controllers of the test world: garbage collector, EndpointSlices,
// StatefulSets, node lifecycle.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "pkg/client/api_client.h"
#include "pkg/watch/watcher.h"
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
using testing::e2e::Millis;
using testing::e2e::NodeReady;
using testing::e2e::Scenario;
using WallClock = DcWatcher::WallClock;

client::ResourceRef EndpointSlices() {
  return {"discovery.k8s.io", "v1beta1", "endpointslices", true};
}
client::ResourceRef Endpoints() { return {"", "v1", "endpoints", true}; }
client::ResourceRef StatefulSets() { return {"apps", "v1", "statefulsets", true}; }

// Watches the EndpointSlices of one Service and records, with the time it saw them, the
// ready addresses they name together.
class EndpointSliceWatcher {
 public:
  EndpointSliceWatcher(client::ApiClient& client, const std::string& ns, const std::string& service)
      : watcher_(client, EndpointSlices(), ns, Options(service)),
        thread_([this](const std::stop_token& stop) {
          watcher_.Run(stop, [this](watch::WatcherEvent&& event) {
            const bool deleted = event.type == watch::WatcherEventType::kDelete;
            if (event.object.is_null()) return;
            Apply(event.object, deleted);
          });
        }) {}
  ~EndpointSliceWatcher() {
    thread_.request_stop();
    thread_.join();
  }
  EndpointSliceWatcher(const EndpointSliceWatcher&) = delete;
  EndpointSliceWatcher& operator=(const EndpointSliceWatcher&) = delete;

  // Waits until the slices name exactly `addresses` (ready); returns when that was first
  // seen, or nullopt on timeout.
  std::optional<WallClock::time_point> WaitFor(const std::set<std::string>& addresses,
                                               std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout, [&] { return Current() == addresses; })) {
      return std::nullopt;
    }
    return since_;
  }

 private:
  static watch::WatcherOptions Options(const std::string& service) {
    watch::WatcherOptions options;
    options.selectors = LabelSelector("kubernetes.io/service-name=" + service);
    return options;
  }
  void Apply(const Json& slice, bool deleted) {
    std::set<std::string> ready;
    for (const auto& endpoint : slice.value("endpoints", Json::array())) {
      if (!endpoint.value("/conditions/ready"_json_pointer, false)) continue;
      for (const auto& address : endpoint.value("addresses", Json::array())) {
        ready.insert(address.get<std::string>());
      }
    }
    const std::string name = slice.value("/metadata/name"_json_pointer, "");
    {
      std::lock_guard lock(mutex_);
      const auto before = Current();
      if (deleted) {
        slices_.erase(name);
      } else {
        slices_[name] = ready;
      }
      if (Current() != before) since_ = WallClock::now();
    }
    changed_.notify_all();
  }
  std::set<std::string> Current() const {
    std::set<std::string> all;
    for (const auto& [name, addresses] : slices_) all.insert(addresses.begin(), addresses.end());
    return all;
  }

  watch::Watcher watcher_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::set<std::string>> slices_;  // guarded by mutex_
  WallClock::time_point since_;                          // guarded by mutex_
  std::jthread thread_;
};

std::string PodIp(Scenario& s, const std::string& pod) {
  return s.Pod(pod).value("/status/podIP"_json_pointer, "");
}

// The node-monitor grace period the controller-manager runs with (hack/testenv.sh).
std::chrono::seconds NodeMonitorGracePeriod() {
  std::ifstream in(TestEnv::Dir() + "/node-monitor-grace-period");
  std::string text;
  in >> text;
  if (text.ends_with("s") && text.find('m') == std::string::npos) {
    return std::chrono::seconds(std::stoi(text.substr(0, text.size() - 1)));
  }
  return 40s;  // the v1.20 default
}

std::set<std::string> PodUids(Scenario& s, const std::string& domain) {
  std::set<std::string> uids;
  auto pods =
      s.api.List(client::resources::Pods(), s.ns, LabelSelector("dpcm.io/domain=" + domain));
  if (pods.ok()) {
    for (const auto& pod : (*pods)["items"]) {
      uids.insert(pod.value("/metadata/uid"_json_pointer, ""));
    }
  }
  return uids;
}

TEST_CASE("a domain deleted with cascade is cleaned up by the garbage collector, unopposed") {
  Scenario s;
  s.CreateDomain("gc", 3);
  s.WaitRunning("gc", 3);
  const std::set<std::string> members = PodUids(s, "gc");
  REQUIRE(members.size() == 3);
  REQUIRE(s.api.Get(client::resources::Leases(), s.ns, "gc").ok());
  REQUIRE(s.api.Get(client::resources::Services(), s.ns, "gc-dc").ok());

  std::string cascade;
  SUBCASE("foreground: the garbage collector deletes the dependents before the domain") {
    cascade = "foreground";
  }
  SUBCASE("background: the domain goes at once, the garbage collector and dpcm clean up") {
    cascade = "background";
  }
  const auto started = WallClock::now();
  auto deleted = s.env.Kubectl(
      {"delete", "processdomain", "gc", "-n", s.ns, "--cascade=" + cascade, "--wait=false"});
  REQUIRE_MESSAGE(deleted.ok(), deleted.status().ToString());
  std::set<std::string> seen;
  bool domain_waited_for_pods = false;
  const bool clean = Eventually(
      [&] {
        const std::set<std::string> now = PodUids(s, "gc");
        seen.insert(now.begin(), now.end());
        const bool domain_gone =
            s.api.Get(client::resources::ProcessDomains(), s.ns, "gc").status().IsNotFound();
        if (!domain_gone && !now.empty() && now.size() < members.size()) {
          domain_waited_for_pods = true;  // foreground: pods went first
        }
        return now.empty() && domain_gone &&
               s.api.Get(client::resources::Leases(), s.ns, "gc").status().IsNotFound() &&
               s.api.Get(client::resources::Services(), s.ns, "gc-dc").status().IsNotFound();
      },
      60s);
  CHECK_MESSAGE(clean, "pods, Lease or Service of the deleted domain are left");
  MESSAGE("--cascade=" << cascade << ": domain, pods, Lease and Service gone after "
                       << Millis(WallClock::now() - started) << " ms"
                       << std::string(domain_waited_for_pods
                                          ? " (the domain outlived some of its pods)"
                                          : ""));
  // Nobody recreated a member while the garbage collector deleted them.
  for (const auto& uid : seen) CHECK_MESSAGE(members.contains(uid), "a pod was recreated: " << uid);
  CHECK(s.Events("gc", "PodRestarted").empty());
}

TEST_CASE("the <domain>-dc EndpointSlice follows the DC through failovers") {
  Scenario s;
  auto slice_client = TestEnv::Client();
  EndpointSliceWatcher slices(*slice_client, s.ns, "ep-dc");
  s.CreateDomain("ep", 3);
  std::string dc = s.WaitRunning("ep", 3);
  REQUIRE_MESSAGE(slices.WaitFor({PodIp(s, dc)}, 30s).has_value(),
                  "the ep-dc EndpointSlice never named the DC " << dc);

  constexpr int kTrials = 5;
  std::vector<long long> latencies;
  for (int trial = 0; trial < kTrials; ++trial) {
    REQUIRE(s.env.KillPodProcess(s.ns, dc).ok());
    auto change = s.watcher.WaitForNewDc("ep", dc, 30s);
    REQUIRE_MESSAGE(change.has_value(), "no failover after killing " << dc);
    const std::string ip = PodIp(s, change->dc);
    auto seen = slices.WaitFor({ip}, 10s);
    REQUIRE_MESSAGE(seen.has_value(), "the EndpointSlice never named only the new DC " << ip);
    latencies.push_back(Millis(*seen - change->seen));
    dc = change->dc;
    s.WaitRunning("ep", 3);  // the killed member is back (restarted, a PC) for the next trial
  }
  std::sort(latencies.begin(), latencies.end());
  std::string all;
  for (auto ms : latencies) all += std::to_string(ms) + " ";
  MESSAGE("dc label -> EndpointSlice names only the new DC: p50 "
          << latencies[latencies.size() / 2] << " ms, max " << latencies.back() << " ms over "
          << kTrials << " failovers (ms: " << all << ")");
}

TEST_CASE("adopt mode over a real StatefulSet: a deleted member is recreated and rejoins as PC") {
  Scenario s;
  Json container = OperatorEnv::SampleContainer();
  container["readinessProbe"] = {{"httpGet", {{"path", "/healthz"}, {"port", 8080}}},
                                 {"periodSeconds", 1},
                                 {"failureThreshold", 1}};
  const Json set = {{"apiVersion", "apps/v1"},
                    {"kind", "StatefulSet"},
                    {"metadata", {{"name", "web"}}},
                    {"spec",
                     {{"replicas", 3},
                      {"serviceName", "web"},
                      {"podManagementPolicy", "Parallel"},
                      {"selector", {{"matchLabels", {{"app", "web"}}}}},
                      {"template",
                       {{"metadata", {{"labels", {{"app", "web"}}}}},
                        {"spec", {{"containers", Json::array({container})}}}}}}}};
  auto created = s.api.Create(StatefulSets(), s.ns, set);
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  Json domain = OperatorEnv::SampleDomain("web", 3);
  domain["spec"].erase("template");
  domain["spec"].erase("replicas");
  domain["spec"]["selector"] = {{"matchLabels", {{"app", "web"}}}};
  s.Create(domain);
  const std::string dc = s.WaitRunning("web", 3);
  const Json old = s.Pod(dc);
  CHECK(old.value("/metadata/ownerReferences/0/kind"_json_pointer, "") == "StatefulSet");

  REQUIRE(s.api.Delete(client::resources::Pods(), s.ns, dc).ok());
  auto change = s.watcher.WaitForNewDc("web", dc, 30s);
  REQUIRE_MESSAGE(change.has_value(), "no failover after deleting " << dc);
  CHECK(Eventually(
      [&] {
        auto pod = s.api.Get(client::resources::Pods(), s.ns, dc);
        return pod.ok() &&
               pod->value("/metadata/uid"_json_pointer, "") !=
                   old.value("/metadata/uid"_json_pointer, "") &&
               pod->value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc" &&
               pod->value("/status/containerStatuses/0/ready"_json_pointer, false);
      },
      60s));
  s.WaitRunning("web", 3);
  CHECK(s.watcher.CurrentDc("web") == change->dc);
  (void)s.api.Delete(StatefulSets(), s.ns, "web");
}

TEST_CASE("nodes in their own network namespaces: pods on their node's network, real Endpoints") {
  Scenario s;
  auto& nodes = s.env.nodes();
  if (!nodes.networked()) {
    MESSAGE("single-network mode (no network namespaces here): every pod on loopback");
    return;
  }
  Json domain = testing::e2e::SpreadDomain("nw", 3);
  s.Create(domain);
  const std::string dc = s.WaitRunning("nw", 3);
  std::set<std::string> networks;
  for (int i = 0; i < 3; ++i) {
    const std::string pod = "nw-" + std::to_string(i);
    const Json object = s.Pod(pod);
    const std::string ip = object.value("/status/podIP"_json_pointer, "");
    auto node = s.api.Get(client::resources::Nodes(), "", nodes.NodeOf(s.ns, pod));
    REQUIRE(node.ok());
    CHECK_MESSAGE(!ip.starts_with("127."), pod << " on loopback: " << ip);
    CHECK(object.value("/status/hostIP"_json_pointer, "") ==
          node->value("/status/addresses/0/address"_json_pointer, ""));
    networks.insert(ip.substr(0, ip.rfind('.')));
    CHECK_MESSAGE(s.ClientReaches(pod), "the client host does not reach " << pod << " at " << ip);
  }
  CHECK_MESSAGE(networks.size() == 3, "the three nodes' pods share a network");
  // Pods off loopback get v1 Endpoints too (the API server refuses 127.0.0.0/8 there).
  const std::string dc_ip = PodIp(s, dc);
  CHECK(Eventually([&] {
    auto endpoints = s.api.Get(Endpoints(), s.ns, "nw-dc");
    if (!endpoints.ok()) return false;
    std::set<std::string> ready;
    for (const auto& subset : endpoints->value("subsets", Json::array())) {
      for (const auto& address : subset.value("addresses", Json::array())) {
        ready.insert(address.value("ip", ""));
      }
    }
    return ready == std::set<std::string>{dc_ip};
  }));
}

TEST_CASE("a crash of the DC's node: node lifecycle marks it NotReady, dpcm elects a new DC") {
  Scenario s;
  auto& nodes = s.env.nodes();
  // One member per node, by the real scheduler.
  Json domain = testing::e2e::SpreadDomain("nc", 3);
  s.Create(domain);
  const std::string dc = s.WaitRunning("nc", 3);
  std::set<std::string> used;
  for (int i = 0; i < 3; ++i) used.insert(nodes.NodeOf(s.ns, "nc-" + std::to_string(i)));
  CHECK(used.size() == 3);
  const std::string node = nodes.NodeOf(s.ns, dc);
  REQUIRE_FALSE(node.empty());

  const auto crashed = WallClock::now();
  REQUIRE(nodes.Crash(node).ok());
  const auto grace = NodeMonitorGracePeriod();
  REQUIRE_MESSAGE(Eventually([&] { return !NodeReady(s.api, node); }, grace + 60s),
                  "node " << node << " still Ready");
  const auto not_ready = WallClock::now();
  auto change = s.watcher.WaitForNewDc("nc", dc, 60s);
  REQUIRE_MESSAGE(change.has_value(), "no new DC after the crash of " << node);
  MESSAGE("node crash of " << node << ": NotReady after " << Millis(not_ready - crashed)
                           << " ms (node-monitor-grace-period " << grace.count() << " s), new DC "
                           << change->dc << " after " << Millis(change->seen - crashed) << " ms");
  CHECK(nodes.NodeOf(s.ns, change->dc) != node);
  // The dead node's pod keeps its last phase; only the node-lifecycle controller touched it.
  CHECK(s.Pod(dc).value("/status/phase"_json_pointer, "") == "Running");

  // The node comes back: its kubelet reports Ready and runs the old DC again, as a PC.
  REQUIRE(nodes.Restart(node).ok());
  CHECK(Eventually([&] { return NodeReady(s.api, node); }, 30s));
  CHECK(Eventually(
      [&] {
        const Json pod = s.Pod(dc);
        return pod.value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "pc" &&
               pod.value("/status/containerStatuses/0/ready"_json_pointer, false);
      },
      60s));
  s.WaitRunning("nc", 3);
}

TEST_CASE("every container of a pod runs on the pod's address, each with its own status") {
  Scenario s;
  Json domain = OperatorEnv::SampleDomain("mc", 1);
  Json sidecar = OperatorEnv::SampleContainer();
  sidecar["name"] = "sidecar";
  sidecar["args"] = Json::array({"--port=8081"});
  // Ready only when it answers on the pod's address: the containers share it.
  sidecar["readinessProbe"] = {{"httpGet", {{"path", "/healthz"}, {"port", 8081}}},
                               {"periodSeconds", 1},
                               {"failureThreshold", 1}};
  domain["spec"]["template"]["spec"]["containers"].push_back(sidecar);
  s.Create(domain);
  const std::string dc = s.WaitRunning("mc", 1);
  auto statuses = [&] { return s.Pod(dc).value("/status/containerStatuses"_json_pointer, Json()); };
  const Json before = statuses();
  REQUIRE(before.size() == 2);
  CHECK(before[0].value("name", "") == "app");
  CHECK(before[1].value("name", "") == "sidecar");
  for (const auto& container : before) {
    CHECK(container.value("ready", false));
    CHECK(container.contains("/state/running"_json_pointer));
  }
  CHECK(before[0].value("containerID", "") != before[1].value("containerID", ""));

  // The sidecar dies: only its own restartCount grows, the app's process is untouched, and
  // the pod is not Ready while it is down (as the kubelet reports it).
  REQUIRE(s.env.nodes().KillPodProcess(s.ns, dc, "sidecar").ok());
  CHECK(Eventually([&] {
    const Json now = statuses();
    return now.size() == 2 && now[1].value("restartCount", 0) == 1 &&
           now[1].value("ready", false) && now[0].value("restartCount", -1) == 0 &&
           now[0].value("containerID", "") == before[0].value("containerID", "");
  }));
}

}  // namespace
}  // namespace dpcm
