// The least-privilege identity of a domain's agents: its ServiceAccount, Role and RoleBinding.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "pkg/client/resource.h"

namespace dpcm::domain {

// "<domain>-dpcm-agent": the name of the ServiceAccount, Role and RoleBinding.
std::string AgentAccessName(const std::string& domain_name);

// The resources the three objects are written to.
client::ResourceRef ServiceAccountsResource();
client::ResourceRef RolesResource();
client::ResourceRef RoleBindingsResource();

// The ServiceAccount the domain's member pods run as (managed mode, spec.agent.enabled),
// owned by `domain`.
nlohmann::json BuildAgentServiceAccount(const nlohmann::json& domain);

// The Role, owned by `domain`: get/list/watch on this ProcessDomain only and
// get/list/watch/update on this domain's Lease only (resourceNames; list and watch are
// authorized with fieldSelector metadata.name=<domain>). Nothing on other domains, nothing
// cluster-wide, no pods, no secrets.
nlohmann::json BuildAgentRole(const nlohmann::json& domain);

// The RoleBinding, owned by `domain`, granting the Role to the agent ServiceAccount and, when
// the pod template names its own `serviceAccountName` (`template_service_account`, else ""),
// to that one too: Kubernetes gives every container of a pod the same identity, so the
// agent then runs as the template's account.
nlohmann::json BuildAgentRoleBinding(const nlohmann::json& domain,
                                     const std::string& template_service_account);

// The serviceAccountName member pods get: the template's own when it names one, else
// AgentAccessName(domain).
std::string AgentPodServiceAccount(const std::string& domain_name,
                                   const nlohmann::json& pod_template);

}  // namespace dpcm::domain
