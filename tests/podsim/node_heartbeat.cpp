#include "tests/podsim/node_heartbeat.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "pkg/election/lease_record.h"
#include "tests/podsim/pod_status.h"

namespace dpcm::podsim {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kLeaseNamespace = "kube-node-lease";

// True when the server's Ready condition says True.
bool ReadyOnServer(const Json& node) {
  const Json conditions = node.value("/status/conditions"_json_pointer, Json::array());
  return std::any_of(conditions.begin(), conditions.end(), [](const Json& condition) {
    return condition.value("type", "") == "Ready" && condition.value("status", "") == "True";
  });
}

}  // namespace

NodeHeartbeat::NodeHeartbeat(client::ApiClient& client, NodeOptions options, Clock& clock)
    : client_(client), options_(std::move(options)), clock_(clock) {}

NodeHeartbeat::~NodeHeartbeat() { Stop(); }

Json NodeHeartbeat::DesiredStatus(const std::string& now) const {
  const Json resources = {{"cpu", "64"}, {"memory", "256Gi"}, {"pods", "10000"}};
  auto condition = [&](const char* type, const char* status, const char* reason,
                       const char* message) {
    return Json{{"type", type},       {"status", status},         {"reason", reason},
                {"message", message}, {"lastHeartbeatTime", now}, {"lastTransitionTime", now}};
  };
  return {
      {"conditions", Json::array({condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                                            "kubelet has sufficient memory available"),
                                  condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                                            "kubelet has no disk pressure"),
                                  condition("PIDPressure", "False", "KubeletHasSufficientPID",
                                            "kubelet has sufficient PID available"),
                                  condition("Ready", "True", "KubeletReady",
                                            "dpcm-podsim is posting ready status")})},
      {"addresses", Json::array({{{"type", "InternalIP"}, {"address", options_.host_ip}},
                                 {{"type", "Hostname"}, {"address", options_.name}}})},
      {"capacity", resources},
      {"allocatable", resources},
      {"daemonEndpoints", {{"kubeletEndpoint", {{"Port", 0}}}}},
      {"nodeInfo",
       {{"machineID", ""},
        {"systemUUID", ""},
        {"bootID", ""},
        {"kernelVersion", ""},
        {"osImage", "dpcm-podsim"},
        {"containerRuntimeVersion", "sim://0.1"},
        {"kubeletVersion", "v1.20.2-dpcm-podsim"},
        {"kubeProxyVersion", ""},
        {"operatingSystem", "linux"},
        {"architecture", "amd64"}}}};
}

Status NodeHeartbeat::Register(const std::stop_token& stop) {
  const auto nodes = client::resources::Nodes();
  const Json node = {{"apiVersion", "v1"},
                     {"kind", "Node"},
                     {"metadata",
                      {{"name", options_.name},
                       {"labels",
                        {{"kubernetes.io/hostname", options_.name},
                         {"kubernetes.io/os", "linux"},
                         {"kubernetes.io/arch", "amd64"},
                         {"dpcm.io/pod-simulator", "true"}}}}},
                     {"spec", Json::object()}};
  while (!stop.stop_requested()) {
    auto created = client_.Create(nodes, "", node);
    if (!created.ok() && created.status().IsAlreadyExists())
      created = client_.Get(nodes, "", options_.name);
    if (created.ok()) {
      node_uid_ = created->value("/metadata/uid"_json_pointer, "");
      Status status = WriteStatus(*created);
      Status lease = status.ok() ? RenewLease() : status;
      if (lease.ok()) {
        spdlog::info("node {} registered and Ready (lease renewed every {} ms, {} s long)",
                     options_.name, options_.lease_renew.count(), options_.lease_duration_seconds);
        return Status::Ok();
      }
      spdlog::warn("node {}: {}", options_.name, lease.ToString());
    } else {
      spdlog::warn("node {}: register failed: {}", options_.name, created.status().ToString());
    }
    clock_.SleepFor(std::chrono::seconds(1), stop);
  }
  return Status::Cancelled("stopped before the node was registered");
}

Status NodeHeartbeat::WriteStatus(const Json& server_node) {
  Json status = DesiredStatus(FormatTime(clock_.WallNow()));
  // A condition whose status did not change keeps its lastTransitionTime.
  const Json old = server_node.value("/status/conditions"_json_pointer, Json::array());
  for (Json& condition : status["conditions"]) {
    for (const Json& before : old) {
      if (before.value("type", "") == condition["type"] &&
          before.value("status", "") == condition["status"] &&
          before.contains("lastTransitionTime")) {
        condition["lastTransitionTime"] = before["lastTransitionTime"];
      }
    }
  }
  const Json patch = {{"status", status}};
  auto patched = client_.Patch(client::resources::Nodes(), "", options_.name,
                               client::PatchType::kMerge, patch, "status");
  if (!patched.ok()) return patched.status().WithContext("node status");
  last_report_ = clock_.Now();
  return Status::Ok();
}

Status NodeHeartbeat::RenewLease() {
  const auto leases = client::resources::Leases();
  const std::string now = election::FormatMicroTime(clock_.WallNow());
  if (lease_.is_null()) {
    auto found = client_.Get(leases, kLeaseNamespace, options_.name);
    if (found.ok()) {
      lease_ = std::move(*found);
    } else if (!found.status().IsNotFound()) {
      return found.status().WithContext("node lease");
    }
  }
  Json lease = lease_.is_null()
                   ? Json{{"apiVersion", "coordination.k8s.io/v1"},
                          {"kind", "Lease"},
                          {"metadata", {{"name", options_.name}, {"namespace", kLeaseNamespace}}}}
                   : lease_;
  if (!node_uid_.empty()) {
    lease["metadata"]["ownerReferences"] = Json::array(
        {{{"apiVersion", "v1"}, {"kind", "Node"}, {"name", options_.name}, {"uid", node_uid_}}});
  }
  lease["spec"]["holderIdentity"] = options_.name;
  lease["spec"]["leaseDurationSeconds"] = options_.lease_duration_seconds;
  lease["spec"]["renewTime"] = now;
  auto written = lease_.is_null() ? client_.Create(leases, kLeaseNamespace, lease)
                                  : client_.Update(leases, kLeaseNamespace, lease);
  if (!written.ok()) {
    lease_ = Json();  // read it again next time (a conflict, or it was deleted)
    return written.status().WithContext("node lease");
  }
  lease_ = std::move(*written);
  return Status::Ok();
}

void NodeHeartbeat::CheckStatus() {
  auto node = client_.Get(client::resources::Nodes(), "", options_.name);
  if (!node.ok()) {
    spdlog::warn("node {}: status check failed: {}", options_.name, node.status().ToString());
    return;
  }
  const bool ready = ReadyOnServer(*node);
  if (ready && clock_.Now() - last_report_ < options_.status_report) return;
  if (!ready) spdlog::info("node {}: not Ready on the server: reporting Ready", options_.name);
  if (Status s = WriteStatus(*node); !s.ok())
    spdlog::warn("node {}: {}", options_.name, s.ToString());
}

void NodeHeartbeat::Start() {
  thread_ = std::jthread([this](const std::stop_token& stop) { Run(stop); });
}

void NodeHeartbeat::Stop() {
  if (!thread_.joinable()) return;
  thread_.request_stop();
  thread_.join();
}

void NodeHeartbeat::Run(const std::stop_token& stop) {
  auto next_lease = clock_.Now() + options_.lease_renew;
  auto next_check = clock_.Now() + options_.status_update;
  while (!stop.stop_requested()) {
    const auto wake = std::min(next_lease, next_check);
    if (!clock_.SleepFor(wake - clock_.Now(), stop)) return;
    const auto now = clock_.Now();
    if (now >= next_lease) {
      if (Status s = RenewLease(); !s.ok()) {
        spdlog::warn("node {}: {}", options_.name, s.ToString());
        next_lease = now + std::min(options_.lease_renew, milliseconds(1000));  // retry soon
      } else {
        next_lease = now + options_.lease_renew;
      }
    }
    if (now >= next_check) {
      CheckStatus();
      next_check = now + options_.status_update;
    }
  }
}

}  // namespace dpcm::podsim
