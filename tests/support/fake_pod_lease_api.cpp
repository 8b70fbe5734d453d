#include "tests/support/fake_pod_lease_api.h"

#include <sstream>

namespace dpcm::testing {

using nlohmann::json;

namespace {

std::string ResourceVersion(const json& object) {
  return object.value("/metadata/resourceVersion"_json_pointer, std::string());
}

bool Matches(const json& pod, const std::string& selector) {
  std::stringstream terms(selector);
  std::string term;
  while (std::getline(terms, term, ',')) {
    const auto eq = term.find('=');
    if (eq == std::string::npos) return false;
    const json labels = pod.value("/metadata/labels"_json_pointer, json::object());
    const std::string key = term.substr(0, eq);
    if (!labels.contains(key) || labels[key] != term.substr(eq + 1)) return false;
  }
  return true;
}

}  // namespace

json FakePodLeaseApi::Stored(Objects& objects, const std::string& name, json object) {
  object["metadata"]["resourceVersion"] = std::to_string(++revision_);
  objects[name] = object;
  return object;
}

json FakePodLeaseApi::PutPod(json pod) {
  if (!pod["metadata"].contains("uid")) pod["metadata"]["uid"] = "uid-" + std::to_string(++uids_);
  const std::string name = pod["metadata"]["name"];
  return Stored(pods_, name, std::move(pod));
}

void FakePodLeaseApi::RemovePod(const std::string& name) { pods_.erase(name); }
void FakePodLeaseApi::RemoveLease(const std::string& name) { leases_.erase(name); }

std::optional<json> FakePodLeaseApi::Pod(const std::string& name) const {
  const auto it = pods_.find(name);
  return it == pods_.end() ? std::nullopt : std::optional<json>(it->second);
}

std::optional<json> FakePodLeaseApi::Lease(const std::string& name) const {
  const auto it = leases_.find(name);
  return it == leases_.end() ? std::nullopt : std::optional<json>(it->second);
}

std::vector<json> FakePodLeaseApi::Pods() const {
  std::vector<json> pods;
  for (const auto& [name, pod] : pods_) pods.push_back(pod);
  return pods;
}

Status FakePodLeaseApi::BeforeWrite(const std::string& verb, const std::string& name) {
  if (!hook_ || in_hook_) return Status::Ok();
  in_hook_ = true;
  Status status = hook_(verb, name);
  in_hook_ = false;
  return status;
}

Result<json> FakePodLeaseApi::GetPod(const std::string& /*ns*/, const std::string& name) {
  ++reads_;
  const auto it = pods_.find(name);
  if (it == pods_.end()) return Status::NotFound("pods \"" + name + "\" not found");
  return it->second;
}

Result<json> FakePodLeaseApi::ListPods(const std::string& /*ns*/, const std::string& selector) {
  ++reads_;
  json list = {{"items", json::array()}};
  for (const auto& [name, pod] : pods_) {
    if (Matches(pod, selector)) list["items"].push_back(pod);
  }
  return list;
}

Result<json> FakePodLeaseApi::Patch(Objects& objects, const std::string& verb,
                                    const std::string& name, const json& json_patch) {
  if (Status s = BeforeWrite(verb, name); !s.ok()) return s;
  const auto it = objects.find(name);
  if (it == objects.end()) return Status::NotFound(name + " not found");
  json patched;
  try {
    patched = it->second.patch(json_patch);
  } catch (const json::exception& e) {
    return Status::Invalid(std::string("the patch does not apply: ") + e.what());
  }
  json stored = Stored(objects, name, std::move(patched));
  ++writes_;
  if (observer_) observer_(*this);
  return stored;
}

Result<json> FakePodLeaseApi::PatchPod(const std::string& /*ns*/, const std::string& name,
                                       const json& json_patch) {
  return Patch(pods_, "patch pod", name, json_patch);
}

Result<json> FakePodLeaseApi::GetLease(const std::string& /*ns*/, const std::string& name) {
  ++reads_;
  const auto it = leases_.find(name);
  if (it == leases_.end()) return Status::NotFound("leases \"" + name + "\" not found");
  return it->second;
}

Result<json> FakePodLeaseApi::CreateLease(const std::string& /*ns*/, const json& lease) {
  const std::string name = lease["metadata"]["name"];
  if (Status s = BeforeWrite("create lease", name); !s.ok()) return s;
  if (leases_.count(name) != 0) {
    return Status(StatusCode::kAlreadyExists, "leases \"" + name + "\" already exists");
  }
  json stored = Stored(leases_, name, lease);
  ++writes_;
  if (observer_) observer_(*this);
  return stored;
}

Result<json> FakePodLeaseApi::UpdateLease(const std::string& /*ns*/, const json& lease) {
  const std::string name = lease["metadata"]["name"];
  if (Status s = BeforeWrite("update lease", name); !s.ok()) return s;
  const auto it = leases_.find(name);
  if (it == leases_.end()) return Status::NotFound("leases \"" + name + "\" not found");
  if (ResourceVersion(lease) != ResourceVersion(it->second)) {
    return Status::Conflict("the object has been modified");
  }
  json stored = Stored(leases_, name, lease);
  ++writes_;
  if (observer_) observer_(*this);
  return stored;
}

Result<json> FakePodLeaseApi::PatchLease(const std::string& /*ns*/, const std::string& name,
                                         const json& json_patch) {
  return Patch(leases_, "patch lease", name, json_patch);
}

}  // namespace dpcm::testing
