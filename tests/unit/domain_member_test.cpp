// Members: how a pod (as the kubelet or podsim writes it) becomes a healthy or unhealthy member,
// and what TrimPod keeps of a cached pod.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "pkg/domain/member.h"
#include "pkg/domain/owned_objects.h"
#include "pkg/domain/spec.h"
#include "pkg/object/object.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

json Condition(const char* type, bool status) {
  return {{"type", type},
          {"status", status ? "True" : "False"},
          {"lastProbeTime", nullptr},
          {"lastTransitionTime", "2026-11-22T10:47:25Z"}};
}

// A member pod of domain "web" as a real cluster serves it: Running, Ready, one restart
// behind it, with the spec, managedFields and annotations a cache would otherwise hold.
json FullPod(const std::string& name = "web-1") {
  json annotations = {{kEpochAnnotation, "7"},
                      {"kubectl.kubernetes.io/restartedAt", "2026-11-22T10:00:00Z"},
                      {"prometheus.io/scrape", "true"},
                      {"prometheus.io/port", "9090"}};
  for (int i = 0; i < 20; ++i) {
    annotations["example.com/note-" + std::to_string(i)] = std::string(60, 'a' + (i % 26));
  }
  json managed_fields = json::array();
  for (const char* manager : {"dpcm-operator", "kubelet", "kubectl-client-side-apply"}) {
    managed_fields.push_back(
        {{"manager", manager},
         {"operation", "Update"},
         {"apiVersion", "v1"},
         {"time", "2026-11-22T10:47:25Z"},
         {"fieldsType", "FieldsV1"},
         {"fieldsV1",
          {{"f:metadata",
            {{"f:labels", {{".", json::object()}, {"f:dpcm.io/domain", json::object()}}},
             {"f:ownerReferences", {{".", json::object()}}}}},
           {"f:spec",
            {{"f:containers",
              {{"k:{\"name\":\"app\"}",
                {{"f:image", json::object()}, {"f:ports", json::object()}}}}}}},
           {"f:status",
            {{"f:conditions", json::object()}, {"f:containerStatuses", json::object()}}}}}});
  }
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"namespace", "default"},
        {"uid", "uid-" + name},
        {"resourceVersion", "4711"},
        {"generation", 1},
        {"creationTimestamp", "2026-11-22T10:00:00Z"},
        {"labels",
         {{kDomainLabel, "web"}, {kRoleLabel, kRoleDc}, {"app", "web"}, {"tier", "frontend"}}},
        {"annotations", annotations},
        {"ownerReferences", json::array({{{"apiVersion", "dpcm.io/v1alpha1"},
                                          {"kind", "ProcessDomain"},
                                          {"name", "web"},
                                          {"uid", "uid-web"},
                                          {"controller", true},
                                          {"blockOwnerDeletion", true}}})},
        {"managedFields", managed_fields}}},
      {"spec",
       {{"hostname", name},
        {"nodeName", "node-1"},
        {"restartPolicy", "Always"},
        {"terminationGracePeriodSeconds", 30},
        {"dnsPolicy", "ClusterFirst"},
        {"serviceAccountName", "default"},
        {"schedulerName", "default-scheduler"},
        {"containers",
         json::array(
             {{{"name", "app"},
               {"image", "registry.example.com/web:1.2.3"},
               {"args", json::array({"--port=8080", "--verbose"})},
               {"ports", json::array({{{"containerPort", 8080}, {"protocol", "TCP"}}})},
               {"env", json::array({{{"name", "MODE"}, {"value", "cluster"}},
                                    {{"name", "JAVA_OPTS"}, {"value", "-Xmx512m"}}})},
               {"resources",
                {{"limits", {{"cpu", "500m"}, {"memory", "512Mi"}}},
                 {"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}}}},
               {"readinessProbe",
                {{"httpGet", {{"path", "/ready"}, {"port", 8080}}}, {"periodSeconds", 2}}},
               {"volumeMounts",
                json::array({{{"name", "kube-api-access"},
                              {"mountPath", "/var/run/secrets/kubernetes.io/serviceaccount"},
                              {"readOnly", true}}})},
               {"terminationMessagePath", "/dev/termination-log"},
               {"imagePullPolicy", "IfNotPresent"}}})},
        {"volumes",
         json::array(
             {{{"name", "kube-api-access"},
               {"projected",
                {{"sources",
                  json::array(
                      {{{"serviceAccountToken", {{"expirationSeconds", 3607}, {"path", "token"}}}},
                       {{"configMap",
                         {{"name", "kube-root-ca.crt"},
                          {"items",
                           json::array({{{"key", "ca.crt"}, {"path", "ca.crt"}}})}}}}})}}}}})},
        {"tolerations", json::array({{{"key", "node.kubernetes.io/not-ready"},
                                      {"operator", "Exists"},
                                      {"effect", "NoExecute"},
                                      {"tolerationSeconds", 300}}})}}},
      {"status",
       {{"phase", "Running"},
        {"conditions",
         json::array({Condition("Initialized", true), Condition("Ready", true),
                      Condition("ContainersReady", true), Condition("PodScheduled", true)})},
        {"hostIP", "10.0.0.1"},
        {"podIP", "10.244.0.12"},
        {"podIPs", json::array({{{"ip", "10.244.0.12"}}})},
        {"startTime", "2026-11-22T10:00:01Z"},
        {"qosClass", "Burstable"},
        {"containerStatuses",
         json::array({{{"name", "app"},
                       {"image", "registry.example.com/web:1.2.3"},
                       {"imageID", "sim://registry.example.com/web:1.2.3"},
                       {"containerID", "sim://abc123"},
                       {"started", true},
                       {"ready", true},
                       {"restartCount", 1},
                       {"state", {{"running", {{"startedAt", "2026-11-22T10:05:00Z"}}}}},
                       {"lastState",
                        {{"terminated",
                          {{"exitCode", 137},
                           {"signal", 9},
                           {"reason", "Error"},
                           {"startedAt", "2026-11-22T10:00:02Z"},
                           {"finishedAt", "2026-11-22T10:04:59Z"},
                           {"containerID", "sim://abc122"}}}}}}})}}}};
}

json& Container(json& pod) { return pod["status"]["containerStatuses"][0]; }

void SetReady(json& pod, bool ready) {
  for (auto& c : pod["status"]["conditions"]) {
    if (c["type"] == "Ready" || c["type"] == "ContainersReady") {
      c["status"] = ready ? "True" : "False";
      if (!ready) c["reason"] = "ContainersNotReady";
    }
  }
}

// The pods below, named by what happened to them, with the classification a user expects.
std::vector<std::pair<std::string, json>> PodsByCase() {
  std::vector<std::pair<std::string, json>> pods;
  pods.emplace_back("running and ready", FullPod());

  json deleted = FullPod();
  deleted["metadata"]["deletionTimestamp"] = "2026-11-22T10:50:00Z";
  deleted["metadata"]["deletionGracePeriodSeconds"] = 30;
  pods.emplace_back("deleted", deleted);

  json failed = FullPod();
  failed["status"]["phase"] = "Failed";
  SetReady(failed, false);
  Container(failed)["ready"] = false;
  Container(failed)["state"] = {
      {"terminated", {{"exitCode", 1}, {"reason", "Error"}, {"finishedAt", "2026-11-22T10:50Z"}}}};
  pods.emplace_back("failed", failed);

  json succeeded = FullPod();
  succeeded["status"]["phase"] = "Succeeded";
  SetReady(succeeded, false);
  Container(succeeded)["ready"] = false;
  Container(succeeded)["state"] = {{"terminated", {{"exitCode", 0}, {"reason", "Completed"}}}};
  pods.emplace_back("succeeded", succeeded);

  json exited = FullPod();
  Container(exited)["ready"] = false;
  Container(exited)["started"] = false;
  Container(exited)["state"] = {{"terminated", {{"exitCode", 137}, {"reason", "Error"}}}};
  Container(exited)["lastState"] = json::object();
  pods.emplace_back("container terminated", exited);

  json crashloop = FullPod();
  Container(crashloop)["ready"] = false;
  Container(crashloop)["started"] = false;
  Container(crashloop)["restartCount"] = 5;
  Container(crashloop)["state"] = {
      {"waiting",
       {{"reason", "CrashLoopBackOff"},
        {"message", "back-off 40s restarting failed container=app pod=web-1"}}}};
  pods.emplace_back("crash loop back-off", crashloop);

  json pending = FullPod();
  pending["status"] = {{"phase", "Pending"},
                       {"conditions", json::array({Condition("PodScheduled", true)})},
                       {"qosClass", "Burstable"}};
  pods.emplace_back("pending", pending);

  json creating = FullPod();
  creating["status"]["phase"] = "Pending";
  creating["status"].erase("podIP");
  SetReady(creating, false);
  Container(creating)["ready"] = false;
  Container(creating)["restartCount"] = 0;
  Container(creating)["state"] = {{"waiting", {{"reason", "ContainerCreating"}}}};
  Container(creating)["lastState"] = json::object();
  pods.emplace_back("container creating", creating);

  json no_status = FullPod();
  no_status.erase("status");
  pods.emplace_back("no status", no_status);

  json not_ready = FullPod();
  SetReady(not_ready, false);
  Container(not_ready)["ready"] = false;
  pods.emplace_back("ready condition false", not_ready);

  json no_ready_condition = FullPod();
  no_ready_condition["status"]["conditions"] =
      json::array({Condition("Initialized", true), Condition("PodScheduled", true)});
  pods.emplace_back("no ready condition", no_ready_condition);

  json one_unready = FullPod();
  one_unready["status"]["containerStatuses"].push_back(
      {{"name", "sidecar"},
       {"ready", false},
       {"started", true},
       {"restartCount", 2},
       {"state", {{"running", {{"startedAt", "2026-11-22T10:05:00Z"}}}}},
       {"lastState", json::object()}});
  pods.emplace_back("one container not ready", one_unready);
  return pods;
}

Unhealthy Expected(const std::string& name) {
  if (name == "running and ready") return Unhealthy::kNone;
  if (name == "deleted") return Unhealthy::kDeleted;
  if (name == "failed" || name == "succeeded") return Unhealthy::kFailed;
  if (name == "container terminated" || name == "crash loop back-off") return Unhealthy::kExited;
  if (name == "pending" || name == "container creating" || name == "no status") {
    return Unhealthy::kNotRunning;
  }
  return Unhealthy::kNotReady;
}

void CheckSameMember(const Member& a, const Member& b) {
  CHECK(a.name == b.name);
  CHECK(a.uid == b.uid);
  CHECK(a.resource_version == b.resource_version);
  CHECK(a.role == b.role);
  CHECK(a.ordinal == b.ordinal);
  CHECK(a.restarts == b.restarts);
  CHECK(a.agent_restarts == b.agent_restarts);
  CHECK(a.epoch == b.epoch);
  CHECK(a.unhealthy == b.unhealthy);
}

TEST_CASE("MemberFromPod reads identity, role, ordinal, restarts and epoch of a pod") {
  const Member m = MemberFromPod(FullPod("web-1"), "web");
  CHECK(m.name == "web-1");
  CHECK(m.uid == "uid-web-1");
  CHECK(m.resource_version == "4711");
  CHECK(m.role == "dc");
  CHECK(m.is_dc());
  CHECK(m.ordinal == 1);
  CHECK(m.restarts == 1);
  REQUIRE(m.epoch.has_value());
  CHECK(*m.epoch == 7);
  CHECK(m.healthy());
  CHECK_FALSE(m.terminating());
  CHECK(std::string(UnhealthyReason(m.unhealthy)) == "healthy");

  json pc = FullPod();
  pc["metadata"]["labels"][kRoleLabel] = kRolePc;
  CHECK_FALSE(MemberFromPod(pc, "web").is_dc());
  json unlabeled = FullPod();
  unlabeled["metadata"]["labels"].erase(kRoleLabel);
  CHECK(MemberFromPod(unlabeled, "web").role.empty());
}

TEST_CASE("MemberFromPod classifies pods the way the kubelet reports them") {
  for (const auto& [name, pod] : PodsByCase()) {
    CAPTURE(name);
    const Member m = MemberFromPod(pod, "web");
    CHECK(m.unhealthy == Expected(name));
    CHECK(m.healthy() == (Expected(name) == Unhealthy::kNone));
    CHECK(m.terminating() == (Expected(name) == Unhealthy::kDeleted));
  }
}

TEST_CASE("MemberFromPod: a restarted container that is running and ready again is healthy") {
  json pod = FullPod();
  Container(pod)["restartCount"] = 3;
  REQUIRE(Container(pod)["lastState"].contains("terminated"));
  const Member m = MemberFromPod(pod, "web");
  CHECK(m.healthy());
  CHECK(m.restarts == 3);
}

TEST_CASE("UnhealthyReason gives the failover reason label for every classification") {
  CHECK(std::string(UnhealthyReason(Unhealthy::kNone)) == "healthy");
  CHECK(std::string(UnhealthyReason(Unhealthy::kDeleted)) == "pod-deleted");
  CHECK(std::string(UnhealthyReason(Unhealthy::kExited)) == "container-exited");
  CHECK(std::string(UnhealthyReason(Unhealthy::kNotReady)) == "not-ready");
  CHECK(std::string(UnhealthyReason(Unhealthy::kFailed)) == "pod-failed");
  CHECK(std::string(UnhealthyReason(Unhealthy::kNotRunning)) == "not-running");
}

TEST_CASE("MemberFromPod reads the ordinal only from <domain>-<digits>") {
  const std::vector<std::pair<std::string, int>> cases = {
      {"web-0", 0},    {"web-12", 12},
      {"web-x", -1},   {"other-1", -1},
      {"web-1-2", -1}, {"web-", -1},
      {"web", -1},     {"web-+1", -1},
      {"web--1", -1},  {"web-1a", -1},
      {"webby-1", -1}, {"web-99999999999", -1},
      {"xweb-1", -1},  {"web-2147483647", 2147483647}};
  for (const auto& [name, ordinal] : cases) {
    CAPTURE(name);
    CHECK(MemberFromPod(FullPod(name), "web").ordinal == ordinal);
  }
  // A domain whose name has a dash: "web-1" is the domain, "web-1-3" its pod 3.
  CHECK(MemberFromPod(FullPod("web-1-3"), "web-1").ordinal == 3);
}

TEST_CASE("MemberFromPod reads the dpcm.io/epoch annotation, ignoring a malformed one") {
  const std::vector<std::pair<json, std::optional<int64_t>>> cases = {
      {"0", 0},
      {"7", 7},
      {"9007199254740993", 9007199254740993LL},
      {"", std::nullopt},
      {"x", std::nullopt},
      {"7x", std::nullopt},
      {" 7", std::nullopt},
      {json(7), std::nullopt},
      {json(nullptr), std::nullopt}};
  for (const auto& [annotation, epoch] : cases) {
    CAPTURE(annotation.dump());
    json pod = FullPod();
    pod["metadata"]["annotations"][kEpochAnnotation] = annotation;
    CHECK(MemberFromPod(pod, "web").epoch == epoch);
  }
  json none = FullPod();
  none["metadata"].erase("annotations");
  CHECK_FALSE(MemberFromPod(none, "web").epoch.has_value());
}

TEST_CASE("MemberFromPod sums restarts over all containers") {
  json pod = FullPod();
  Container(pod)["restartCount"] = 4;
  pod["status"]["containerStatuses"].push_back(
      {{"name", "sidecar"}, {"ready", true}, {"restartCount", 3}, {"state", {{"running", {}}}}});
  pod["status"]["containerStatuses"].push_back(
      {{"name", "odd"}, {"ready", true}, {"restartCount", "2"}, {"state", {{"running", {}}}}});
  CHECK(MemberFromPod(pod, "web").restarts == 7);
  json none = FullPod();
  none.erase("status");
  CHECK(MemberFromPod(none, "web").restarts == 0);
}

// A member pod with dpcm-agent beside the application, as managed mode injects it.
json PodWithAgent(const json& agent_status) {
  json pod = FullPod();
  pod["status"]["containerStatuses"].push_back(agent_status);
  return pod;
}

TEST_CASE("MemberFromPod: dpcm-agent's exit or restart is not the application's death") {
  const json agent_exited = {{"name", kAgentContainerName},
                             {"ready", false},
                             {"restartCount", 2},
                             {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}}}}},
                             {"lastState", {{"terminated", {{"exitCode", 1}}}}}};
  json pod = PodWithAgent(agent_exited);
  SetReady(pod, false);  // the kubelet's Ready condition counts the agent too
  const Member down = MemberFromPod(pod, "web");
  CHECK(down.unhealthy == Unhealthy::kNone);
  // The agent's restarts are not a new incarnation of the application.
  CHECK(down.restarts == MemberFromPod(FullPod(), "web").restarts);
  CHECK(down.instance() == MemberFromPod(FullPod(), "web").instance());
  // ... but the restarted agent forgot its role: role hooks go to it again.
  CHECK(down.agent_restarts == 2);
  CHECK(down.hook_receiver() != MemberFromPod(FullPod(), "web").hook_receiver());
  // Trimmed for the cache, the pod still says which container is the agent.
  json trimmed = pod;
  TrimPod(trimmed);
  CheckSameMember(MemberFromPod(trimmed, "web"), down);

  // The application's own state still decides: its container not ready is not ready, its
  // exit is an exit, whatever the agent says.
  json app_unready = PodWithAgent({{"name", kAgentContainerName},
                                   {"ready", true},
                                   {"restartCount", 0},
                                   {"state", {{"running", json::object()}}}});
  Container(app_unready)["ready"] = false;
  CHECK(MemberFromPod(app_unready, "web").unhealthy == Unhealthy::kNotReady);
  json app_exited = pod;
  Container(app_exited)["state"] = {{"terminated", {{"exitCode", 137}}}};
  CHECK(MemberFromPod(app_exited, "web").unhealthy == Unhealthy::kExited);
  // A pod not ready for another reason (the agent is ready) is not ready.
  json gated = PodWithAgent({{"name", kAgentContainerName},
                             {"ready", true},
                             {"restartCount", 0},
                             {"state", {{"running", json::object()}}}});
  SetReady(gated, false);
  CHECK(MemberFromPod(gated, "web").unhealthy == Unhealthy::kNotReady);
}

TEST_CASE("MemberFromPod never throws on non-object pods and gives an unhealthy member") {
  for (const json& pod : {json(nullptr), json("pod"), json::array(), json::object(),
                          json{{"metadata", "x"}, {"status", json::array()}}}) {
    CAPTURE(pod.dump());
    Member m;
    CHECK_NOTHROW(m = MemberFromPod(pod, "web"));
    CHECK_FALSE(m.healthy());
    CHECK(m.ordinal == -1);
  }
}

TEST_CASE("TrimPod keeps exactly what MemberFromPod and ownership read") {
  for (const auto& [name, pod] : PodsByCase()) {
    CAPTURE(name);
    json trimmed = pod;
    TrimPod(trimmed);
    CheckSameMember(MemberFromPod(trimmed, "web"), MemberFromPod(pod, "web"));
    CHECK(OwnedByDomain(trimmed, "web"));
    CHECK(trimmed["metadata"]["labels"] == pod["metadata"]["labels"]);
    CHECK(trimmed["metadata"]["namespace"] == "default");
    // Trimming twice changes nothing more.
    json twice = trimmed;
    TrimPod(twice);
    CHECK(twice == trimmed);
  }
}

TEST_CASE("TrimPod shrinks a realistic pod to a small fraction of its size") {
  const json pod = FullPod();
  json trimmed = pod;
  TrimPod(trimmed);
  const size_t full_size = pod.dump().size();
  const size_t trimmed_size = trimmed.dump().size();
  MESSAGE("full pod " << full_size << " bytes, trimmed " << trimmed_size << " bytes");
  CHECK(full_size > 4000);
  CHECK(trimmed_size < 1000);
  CHECK(trimmed_size * 5 < full_size);
  CHECK_FALSE(trimmed.contains("spec"));
  CHECK_FALSE(trimmed["metadata"].contains("managedFields"));
  CHECK(trimmed["metadata"]["annotations"] == json{{kEpochAnnotation, "7"}});
  CHECK(trimmed["status"]["podIP"] == "10.244.0.12");

  // Annotations of others are dropped, but the map stays, empty: a patch built from the
  // trimmed pod must add to the pod's map, not replace it.
  json others = pod;
  others["metadata"]["annotations"] = {{"team", "payments"}};
  TrimPod(others);
  CHECK(others["metadata"]["annotations"] == json::object());
  CHECK(object::SetInMap(others, "annotations", kFenceAnnotation, "3")["path"] ==
        "/metadata/annotations/dpcm.io~1fenced-epoch");
  json none = pod;
  none["metadata"].erase("annotations");
  TrimPod(none);
  CHECK_FALSE(none["metadata"].contains("annotations"));

  json not_object = json::array({1, 2});
  CHECK_NOTHROW(TrimPod(not_object));
  CHECK(not_object == json::array({1, 2}));
}

}  // namespace
}  // namespace dpcm::domain
