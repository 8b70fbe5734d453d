// One e2e test's world: a fresh namespace on the shared operator, with the independent DC watcher
// on it.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
#include "tests/support/operator_env.h"
#include "tests/support/testenv.h"

namespace dpcm::testing::e2e {

using namespace std::chrono_literals;
using client::Json;

// Cluster state settles in tens of milliseconds: poll every 50 ms for up to 30 s.
template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout = 30s) {
  return testing::Eventually(condition, timeout, 50ms);
}

using testing::Millis;

// Whether the API server shows Node `node` with condition Ready=True.
inline bool NodeReady(client::ApiClient& api, const std::string& node) {
  auto object = api.Get(client::resources::Nodes(), "", node);
  if (!object.ok()) return false;
  for (const auto& c : object->value("/status/conditions"_json_pointer, Json::array())) {
    if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

// OperatorEnv's sample domain with its members spread over the nodes by the real
// scheduler: hard ("DoNotSchedule": one per node) or soft ("ScheduleAnyway": an evicted
// member may join another's node).
inline client::Json SpreadDomain(const std::string& name, int replicas,
                                 const std::string& when = "DoNotSchedule") {
  client::Json domain = OperatorEnv::SampleDomain(name, replicas);
  domain["spec"]["template"]["spec"]["topologySpreadConstraints"] =
      client::Json::array({{{"maxSkew", 1},
                            {"topologyKey", "kubernetes.io/hostname"},
                            {"whenUnsatisfiable", when},
                            {"labelSelector", {{"matchLabels", {{"app", name}}}}}}});
  return domain;
}

inline client::ListOptions LabelSelector(const std::string& selector) {
  client::ListOptions options;
  options.label_selector = selector;
  return options;
}

// A namespace with a DC watcher on it, checked for violations when the test ends.
struct Scenario {
  OperatorEnv& env = OperatorEnv::Get();
  client::ApiClient& api = env.api();
  std::unique_ptr<client::ApiClient> watcher_client = TestEnv::Client();
  std::string ns = TestEnv::CreateNamespace(api, "e2e");
  DcWatcher watcher{*watcher_client, ns};

  ~Scenario() {
    for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
    // Leave nothing for the shared operator to keep working on: delete the domains
    // (the operator removes their pods) and any pod the test made itself.
    auto domains = api.List(client::resources::ProcessDomains(), ns, client::ListOptions{});
    if (domains.ok()) {
      for (const auto& d : (*domains)["items"]) {
        (void)api.Delete(client::resources::ProcessDomains(), ns,
                         d.value("/metadata/name"_json_pointer, ""));
      }
    }
    auto pods = api.List(client::resources::Pods(), ns, client::ListOptions{});
    if (pods.ok()) {
      for (const auto& p : (*pods)["items"]) {
        if (!p.contains("/metadata/ownerReferences"_json_pointer)) {
          (void)api.Delete(client::resources::Pods(), ns,
                           p.value("/metadata/name"_json_pointer, ""));
        }
      }
    }
  }

  void CreateDomain(const std::string& name, int replicas) {
    Create(OperatorEnv::SampleDomain(name, replicas));
  }
  void Create(const Json& domain) {
    auto created = api.Create(client::resources::ProcessDomains(), ns, domain);
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  }
  // Events of `reason` about the domain `name`.
  std::vector<Json> Events(const std::string& name, const std::string& reason) {
    client::ListOptions options;
    options.field_selector = "involvedObject.name=" + name + ",reason=" + reason;
    auto events = api.List(client::resources::Events(), ns, options);
    REQUIRE_MESSAGE(events.ok(), events.status().ToString());
    return (*events)["items"].get<std::vector<Json>>();
  }
  // The domain's condition of `type`, or null.
  Json Condition(const std::string& name, const std::string& type) {
    for (const auto& c : Domain(name).value("/status/conditions"_json_pointer, Json::array())) {
      if (c.value("type", "") == type) return c;
    }
    return nullptr;
  }
  Json Domain(const std::string& name) {
    auto domain = api.Get(client::resources::ProcessDomains(), ns, name);
    REQUIRE_MESSAGE(domain.ok(), domain.status().ToString());
    return *domain;
  }
  Json Pod(const std::string& name) {
    auto pod = api.Get(client::resources::Pods(), ns, name);
    REQUIRE_MESSAGE(pod.ok(), pod.status().ToString());
    return *pod;
  }
  // Waits for a DC and for the domain to report Running with every member healthy.
  std::string WaitRunning(const std::string& name, int replicas) {
    auto change = watcher.WaitForNewDc(name, "", 60s);
    REQUIRE_MESSAGE(change.has_value(), (std::string("no DC elected for ") + name));
    const std::string ready = std::to_string(replicas) + "/" + std::to_string(replicas);
    CHECK(Eventually([&] {
      const Json d = Domain(name);
      return d.value("/status/phase"_json_pointer, "") == "Running" &&
             d.value("/status/ready"_json_pointer, "") == ready &&
             d.value("/status/activePod"_json_pointer, "") == watcher.CurrentDc(name);
    }));
    return watcher.CurrentDc(name);
  }
  // The Lease names the DC and its epoch matches the DC's annotation.
  void CheckLeaseMatches(const std::string& name, const std::string& dc) {
    CHECK(Eventually([&] {
      auto lease = api.Get(client::resources::Leases(), ns, name);
      if (!lease.ok()) return false;
      const Json pod = Pod(dc);
      const std::string epoch =
          std::to_string(lease->value("/spec/leaseTransitions"_json_pointer, int64_t{-1}));
      return lease->value("/spec/holderIdentity"_json_pointer, "") == dc &&
             pod.value("/metadata/annotations/dpcm.io~1epoch"_json_pointer, "") == epoch &&
             std::to_string(Domain(name).value("/status/epoch"_json_pointer, int64_t{-2})) == epoch;
    }));
  }
  // Whether the client host of the node network reaches the sample app in `pod` (GET
  // /healthz on the pod's address; hack/netns.sh client). False in single-network mode.
  bool ClientReaches(const std::string& pod) {
    const std::string ip = Pod(pod).value("/status/podIP"_json_pointer, "");
    return TestEnv::Netns(
               {"client", "curl", "-fsS", "--max-time", "2", "http://" + ip + ":8080/healthz"})
        .ok();
  }
  int64_t Epoch(const std::string& name) {
    return Domain(name).value("/status/epoch"_json_pointer, int64_t{0});
  }
};

}  // namespace dpcm::testing::e2e
