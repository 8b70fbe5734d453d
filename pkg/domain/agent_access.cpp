#include "pkg/domain/agent_access.h"

#include "pkg/domain/owned_objects.h"
#include "pkg/domain/spec.h"

namespace dpcm::domain {

using nlohmann::json;

namespace {

json AccessMetadata(const json& domain) {
  const std::string name = domain["metadata"].value("name", "");
  return {{"name", AgentAccessName(name)},
          {"labels", {{kDomainLabel, name}, {"app.kubernetes.io/component", "dpcm-agent"}}},
          {"ownerReferences", json::array({OwnerReference(domain)})}};
}

}  // namespace

std::string AgentAccessName(const std::string& domain_name) { return domain_name + "-dpcm-agent"; }

client::ResourceRef ServiceAccountsResource() { return {"", "v1", "serviceaccounts"}; }
client::ResourceRef RolesResource() { return {"rbac.authorization.k8s.io", "v1", "roles"}; }
client::ResourceRef RoleBindingsResource() {
  return {"rbac.authorization.k8s.io", "v1", "rolebindings"};
}

json BuildAgentServiceAccount(const json& domain) {
  return {{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", AccessMetadata(domain)}};
}

json BuildAgentRole(const json& domain) {
  const std::string name = domain["metadata"].value("name", "");
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "Role"},
          {"metadata", AccessMetadata(domain)},
          {"rules", json::array({{{"apiGroups", json::array({"dpcm.io"})},
                                  {"resources", json::array({"processdomains"})},
                                  {"resourceNames", json::array({name})},
                                  {"verbs", json::array({"get", "list", "watch"})}},
                                 {{"apiGroups", json::array({"coordination.k8s.io"})},
                                  {"resources", json::array({"leases"})},
                                  {"resourceNames", json::array({name})},
                                  {"verbs", json::array({"get", "list", "watch", "update"})}}})}};
}

json BuildAgentRoleBinding(const json& domain, const std::string& template_service_account) {
  const std::string name = domain["metadata"].value("name", "");
  const std::string ns = domain["metadata"].value("namespace", "");
  json subjects = json::array(
      {{{"kind", "ServiceAccount"}, {"name", AgentAccessName(name)}, {"namespace", ns}}});
  if (!template_service_account.empty() && template_service_account != AgentAccessName(name)) {
    subjects.push_back(
        {{"kind", "ServiceAccount"}, {"name", template_service_account}, {"namespace", ns}});
  }
  return {{"apiVersion", "rbac.authorization.k8s.io/v1"},
          {"kind", "RoleBinding"},
          {"metadata", AccessMetadata(domain)},
          {"roleRef",
           {{"apiGroup", "rbac.authorization.k8s.io"},
            {"kind", "Role"},
            {"name", AgentAccessName(name)}}},
          {"subjects", std::move(subjects)}};
}

std::string AgentPodServiceAccount(const std::string& domain_name, const json& pod_template) {
  if (pod_template.is_object() && pod_template.contains("spec") &&
      pod_template["spec"].is_object()) {
    const json& spec = pod_template["spec"];
    for (const char* field : {"serviceAccountName", "serviceAccount"}) {
      if (spec.contains(field) && spec[field].is_string() &&
          !spec[field].get<std::string>().empty()) {
        return spec[field].get<std::string>();
      }
    }
  }
  return AgentAccessName(domain_name);
}

}  // namespace dpcm::domain
