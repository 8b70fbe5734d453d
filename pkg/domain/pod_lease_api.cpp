#include "pkg/domain/pod_lease_api.h"

namespace dpcm::domain {

using nlohmann::json;

Result<json> ClientPodLeaseApi::GetPod(const std::string& ns, const std::string& name) {
  return client_.Get(client::resources::Pods(), ns, name);
}

Result<json> ClientPodLeaseApi::ListPods(const std::string& ns, const std::string& label_selector) {
  client::ListOptions options;
  options.label_selector = label_selector;
  return client_.List(client::resources::Pods(), ns, options);
}

Result<json> ClientPodLeaseApi::PatchPod(const std::string& ns, const std::string& name,
                                         const json& json_patch) {
  return client_.Patch(client::resources::Pods(), ns, name, client::PatchType::kJson, json_patch);
}

Result<json> ClientPodLeaseApi::GetLease(const std::string& ns, const std::string& name) {
  return client_.Get(client::resources::Leases(), ns, name);
}

Result<json> ClientPodLeaseApi::CreateLease(const std::string& ns, const json& lease) {
  return client_.Create(client::resources::Leases(), ns, lease);
}

Result<json> ClientPodLeaseApi::UpdateLease(const std::string& ns, const json& lease) {
  return client_.Update(client::resources::Leases(), ns, lease);
}

Result<json> ClientPodLeaseApi::PatchLease(const std::string& ns, const std::string& name,
                                           const json& json_patch) {
  return client_.Patch(client::resources::Leases(), ns, name, client::PatchType::kJson, json_patch);
}

}  // namespace dpcm::domain
