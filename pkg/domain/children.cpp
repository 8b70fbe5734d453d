#include "pkg/domain/children.h"

#include <spdlog/spdlog.h>

#include <tuple>

#include "pkg/domain/agent_access.h"
#include "pkg/domain/owned_objects.h"
#include "pkg/object/object.h"

namespace dpcm::domain {

using nlohmann::json;
using object::Meta;

ChildWriter::ChildWriter(client::ApiClient& client, const cache::Store& pods,
                         const cache::Store& leases, const cache::Store& services,
                         AgentInjection agent)
    : client_(client),
      pods_(pods),
      leases_(leases),
      services_(services),
      agent_(std::move(agent)) {}

Status ChildWriter::EnsureOwned(const client::ResourceRef& ref, const std::string& domain_name,
                                const json& desired, const std::vector<std::string>& compared) {
  const std::string ns = Meta(desired, "namespace");
  const std::string name = Meta(desired, "name");
  const std::string what = ref.resource + " " + name;
  auto created = client_.Create(ref, ns, desired);
  if (created.ok()) return Status::Ok();
  if (!created.status().IsAlreadyExists()) return created.status().WithContext("create " + what);
  auto current = client_.Get(ref, ns, name);
  if (!current.ok()) return current.status().WithContext("get " + what);
  if (!OwnedByDomain(*current, domain_name)) {
    return Status::Conflict(what + " exists and is not owned by this domain");
  }
  json updated = *current;
  bool same = true;
  for (const auto& field : compared) {
    if (updated.value(field, json()) != desired[field]) {
      updated[field] = desired[field];
      same = false;
    }
  }
  if (same) return Status::Ok();
  auto written = client_.Update(ref, ns, updated);
  if (!written.ok()) return written.status().WithContext("update " + what);
  return Status::Ok();
}

Status ChildWriter::EnsureAgentAccess(const json& domain, const DomainSpec& spec) {
  if (!spec.agent.enabled || !spec.managed()) return Status::Ok();
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  const std::string pod_account = AgentPodServiceAccount(name, *spec.pod_template);
  const std::string key = ns + "/" + name + "/" + Meta(domain, "uid") + "/" + pod_account;
  {
    std::lock_guard lock(ensured_mutex_);
    if (ensured_.contains(key)) return Status::Ok();
  }
  const std::string extra = pod_account == AgentAccessName(name) ? "" : pod_account;
  auto in_ns = [&](json object) {
    object["metadata"]["namespace"] = ns;
    return object;
  };
  for (const auto& [ref, desired, compared] :
       {std::tuple{ServiceAccountsResource(), in_ns(BuildAgentServiceAccount(domain)),
                   std::vector<std::string>{}},
        std::tuple{RolesResource(), in_ns(BuildAgentRole(domain)),
                   std::vector<std::string>{"rules"}},
        std::tuple{RoleBindingsResource(), in_ns(BuildAgentRoleBinding(domain, extra)),
                   std::vector<std::string>{"subjects"}}}) {
    if (Status s = EnsureOwned(ref, name, desired, compared); !s.ok()) return s;
  }
  spdlog::info("{}/{}: agent identity {} (ServiceAccount, Role, RoleBinding) in place", ns, name,
               AgentAccessName(name));
  std::lock_guard lock(ensured_mutex_);
  ensured_.insert(key);
  return Status::Ok();
}

Status ChildWriter::CreatePods(const json& domain, const DomainSpec& spec,
                               const std::vector<int>& ordinals) {
  const std::string ns = Meta(domain, "namespace");
  if (Status s = EnsureAgentAccess(domain, spec); !s.ok()) return s;
  for (const int ordinal : ordinals) {
    const std::string pod_name = Meta(domain, "name") + "-" + std::to_string(ordinal);
    auto created =
        client_.Create(client::resources::Pods(), ns, BuildPod(domain, spec, ordinal, agent_));
    if (!created.ok() && !created.status().IsAlreadyExists()) {
      return created.status().WithContext("create pod " + pod_name);
    }
    spdlog::info("{}/{}: created pod {}", ns, Meta(domain, "name"), pod_name);
  }
  return Status::Ok();
}

Status ChildWriter::DeletePods(const DomainView& view, const std::vector<std::string>& names) {
  for (const auto& name : names) {
    const Member* member = view.Find(name);
    if (member == nullptr) continue;
    client::DeleteOptions options;
    options.precondition_uid = member->uid;
    options.precondition_resource_version = member->resource_version;
    auto deleted = client_.Delete(client::resources::Pods(), view.ns, name, options);
    if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
      return deleted.status().WithContext("delete pod " + name);
    }
    spdlog::info("{}/{}: scaled down pod {}", view.ns, view.name, name);
  }
  return Status::Ok();
}

Status ChildWriter::RestartPod(const std::string& ns, const std::string& name,
                               const std::string& uid) {
  client::DeleteOptions options;
  options.precondition_uid = uid;
  auto deleted = client_.Delete(client::resources::Pods(), ns, name, options);
  if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
    return deleted.status().WithContext("restart " + name);
  }
  return Status::Ok();
}

Status ChildWriter::EnsureService(const json& domain, const DomainSpec& spec) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  const std::string service_name = DcServiceName(name);
  json desired = BuildDcService(domain, spec);
  const cache::ObjectPtr current = services_.Get(ns, service_name);
  if (desired.is_null()) {
    if (current != nullptr && OwnedByDomain(*current, name)) {
      client::DeleteOptions options;
      options.precondition_uid = Meta(*current, "uid");
      auto deleted = client_.Delete(client::resources::Services(), ns, service_name, options);
      if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
    }
    return Status::Ok();
  }
  if (current == nullptr) {
    auto created = client_.Create(client::resources::Services(), ns, desired);
    if (!created.ok() && !created.status().IsAlreadyExists()) {
      return created.status().WithContext("create service " + service_name);
    }
    return Status::Ok();
  }
  if (!OwnedByDomain(*current, name)) {
    return Status::Conflict("service " + service_name + " exists and is not owned by this domain");
  }
  const json& spec_now = (*current)["spec"];
  if (spec_now.value("selector", json()) == desired["spec"]["selector"] &&
      spec_now.value("ports", json()).size() == desired["spec"]["ports"].size()) {
    bool same = true;
    for (size_t i = 0; i < desired["spec"]["ports"].size(); ++i) {
      const auto& want = desired["spec"]["ports"][i];
      const auto& have = spec_now["ports"][i];
      same = same && have.value("port", 0) == want["port"] &&
             have.value("targetPort", json()) == want["targetPort"] &&
             have.value("name", "") == want.value("name", "");
    }
    if (same) return Status::Ok();
  }
  json updated = *current;
  updated["spec"]["selector"] = desired["spec"]["selector"];
  updated["spec"]["ports"] = desired["spec"]["ports"];
  auto written = client_.Update(client::resources::Services(), ns, updated);
  if (!written.ok()) return written.status().WithContext("update service " + service_name);
  return Status::Ok();
}

Status ChildWriter::DeleteOwned(const client::ResourceRef& ref, const std::string& ns,
                                const std::string& domain_name, const std::string& name) {
  auto current = client_.Get(ref, ns, name);
  if (!current.ok()) {
    if (current.status().IsNotFound()) return Status::Ok();
    if (current.status().IsForbidden()) {  // an operator installed without these rights
      spdlog::warn("{}/{}: cannot clean up {} {}: {} (left to the garbage collector)", ns,
                   domain_name, ref.resource, name, current.status().message());
      return Status::Ok();
    }
    return current.status();
  }
  if (!OwnedByDomain(*current, domain_name)) return Status::Ok();
  client::DeleteOptions options;
  options.precondition_uid = Meta(*current, "uid");
  auto deleted = client_.Delete(ref, ns, name, options);
  if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
    return deleted.status();
  }
  return Status::Ok();
}

Status ChildWriter::CleanUp(const std::string& ns, const std::string& name) {
  {
    std::lock_guard lock(ensured_mutex_);
    const std::string prefix = ns + "/" + name + "/";
    std::erase_if(ensured_, [&](const std::string& key) { return key.starts_with(prefix); });
  }
  for (const auto& ref : {RoleBindingsResource(), RolesResource(), ServiceAccountsResource()}) {
    if (Status s = DeleteOwned(ref, ns, name, AgentAccessName(name)); !s.ok()) return s;
  }
  for (const auto& pod : pods_.ByLabel(ns, kDomainLabel, name)) {
    if (OwnedByDomain(*pod, name)) {
      if ((*pod)["metadata"].contains("deletionTimestamp")) continue;
      client::DeleteOptions options;
      options.precondition_uid = Meta(*pod, "uid");
      auto deleted = client_.Delete(client::resources::Pods(), ns, Meta(*pod, "name"), options);
      if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
        return deleted.status();
      }
    } else {  // adopted: give it back without our labels
      auto released = client_.Patch(
          client::resources::Pods(), ns, Meta(*pod, "name"), client::PatchType::kMerge,
          {{"metadata",
            {{"labels", {{kDomainLabel, nullptr}, {kRoleLabel, nullptr}}},
             {"annotations", {{kEpochAnnotation, nullptr}, {kFenceAnnotation, nullptr}}}}}});
      if (!released.ok() && !released.status().IsNotFound()) return released.status();
    }
  }
  if (auto lease = leases_.Get(ns, name); lease && OwnedByDomain(*lease, name)) {
    auto deleted = client_.Delete(client::resources::Leases(), ns, name);
    if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
  }
  if (auto service = services_.Get(ns, DcServiceName(name));
      service && OwnedByDomain(*service, name)) {
    auto deleted = client_.Delete(client::resources::Services(), ns, DcServiceName(name));
    if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
  }
  return Status::Ok();
}

}  // namespace dpcm::domain
