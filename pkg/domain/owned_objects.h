// Builds the objects a ProcessDomain owns: its pods (from the template), its Lease and its -dc
// Service.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "pkg/domain/spec.h"

namespace dpcm::domain {

// An ownerReferences entry naming `domain` as controller (garbage collection on real
// clusters; dpcm's own cleanup locally).
nlohmann::json OwnerReference(const nlohmann::json& domain);

// True when `object` has an owner reference to a ProcessDomain named `domain_name`.
bool OwnedByDomain(const nlohmann::json& object, const std::string& domain_name);

// Pod "<domain>-<ordinal>" from spec.template, labeled dpcm.io/domain=<domain> and
// dpcm.io/role=pc (a pod is never created as DC), owned by the domain. With
// spec.agent.enabled, the dpcm-agent container is added (unless the template has a
// container of that name already): AgentContainer(), with the first container's
// volumeMounts, so that the commands it runs see the application's volumes, and the pod runs
// as AgentPodServiceAccount() (the domain's least-privilege agent identity).
nlohmann::json BuildPod(const nlohmann::json& domain, const DomainSpec& spec, int ordinal,
                        const AgentInjection& agent = {});

// The dpcm-agent sidecar for a member of `domain_name`: image from `injection`, argv only,
// its pod identity from the downward API, the domain's commands as JSON in its environment.
nlohmann::json AgentContainer(const std::string& domain_name, const AgentSpec& spec,
                              const AgentInjection& injection);

// The Service "<domain>-dc" selecting the DC pod, or null if the spec lists no ports.
nlohmann::json BuildDcService(const nlohmann::json& domain, const DomainSpec& spec);

// "<domain>-dc".
std::string DcServiceName(const std::string& domain_name);

}  // namespace dpcm::domain
