#include "pkg/domain/owned_objects.h"

#include <algorithm>

#include "pkg/domain/agent_access.h"

namespace dpcm::domain {

using nlohmann::json;

json OwnerReference(const json& domain) {
  return {{"apiVersion", "dpcm.io/v1alpha1"},
          {"kind", "ProcessDomain"},
          {"name", domain["metadata"].value("name", "")},
          {"uid", domain["metadata"].value("uid", "")},
          {"controller", true},
          {"blockOwnerDeletion", true}};
}

bool OwnedByDomain(const json& object, const std::string& domain_name) {
  const json* refs = object.is_object() && object.contains("metadata") &&
                             object["metadata"].is_object() &&
                             object["metadata"].contains("ownerReferences")
                         ? &object["metadata"]["ownerReferences"]
                         : nullptr;
  if (refs == nullptr || !refs->is_array()) return false;
  for (const auto& ref : *refs) {
    if (ref.is_object() && ref.value("kind", "") == "ProcessDomain" &&
        ref.value("name", "") == domain_name &&
        ref.value("apiVersion", "").rfind("dpcm.io/", 0) == 0) {
      return true;
    }
  }
  return false;
}

json AgentContainer(const std::string& domain_name, const AgentSpec& spec,
                    const AgentInjection& injection) {
  auto field = [](const char* name, const char* path) {
    return json{{"name", name}, {"valueFrom", {{"fieldRef", {{"fieldPath", path}}}}}};
  };
  json env = json::array({field("POD_NAME", "metadata.name"),
                          field("POD_NAMESPACE", "metadata.namespace"),
                          field("POD_IP", "status.podIP"),
                          {{"name", "DPCM_DOMAIN"}, {"value", domain_name}}});
  if (!spec.health_command_json.empty()) {
    env.push_back({{"name", "DPCM_AGENT_HEALTH_COMMAND"}, {"value", spec.health_command_json}});
  }
  if (!spec.role_hook_command_json.empty()) {
    env.push_back(
        {{"name", "DPCM_AGENT_ROLE_HOOK_COMMAND"}, {"value", spec.role_hook_command_json}});
  }
  return {
      {"name", kAgentContainerName},
      {"image", injection.image},
      {"command", json::array({"dpcm-agent"})},
      {"args",
       json::array({"--port=" + std::to_string(spec.port),
                    "--role-bind-address=" + injection.role_bind_address,
                    "--health-timeout-ms=" + std::to_string(spec.health_timeout.count()),
                    "--role-hook-timeout-ms=" + std::to_string(spec.role_hook_timeout.count())})},
      {"env", std::move(env)},
      {"ports",
       json::array({{{"name", "dpcm-agent"}, {"containerPort", spec.port}, {"protocol", "TCP"}}})},
      {"securityContext",
       {{"allowPrivilegeEscalation", false},
        {"readOnlyRootFilesystem", true},
        {"capabilities", {{"drop", json::array({"ALL"})}}}}}};
}

json BuildPod(const json& domain, const DomainSpec& spec, int ordinal,
              const AgentInjection& agent) {
  const std::string name = domain["metadata"].value("name", "");
  const json& tmpl = *spec.pod_template;
  json metadata =
      tmpl.contains("metadata") && tmpl["metadata"].is_object() ? tmpl["metadata"] : json::object();
  metadata.erase("name");
  metadata.erase("namespace");
  metadata.erase("generateName");
  metadata["name"] = name + "-" + std::to_string(ordinal);
  if (!metadata.contains("labels") || !metadata["labels"].is_object()) {
    metadata["labels"] = json::object();
  }
  metadata["labels"][kDomainLabel] = name;
  metadata["labels"][kRoleLabel] = kRolePc;
  metadata["ownerReferences"] = json::array({OwnerReference(domain)});
  json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}, {"metadata", metadata}};
  pod["spec"] = tmpl["spec"];
  // Stable network identity inside the pod, as a StatefulSet gives.
  if (!pod["spec"].contains("hostname")) pod["spec"]["hostname"] = metadata["name"];
  if (spec.agent.enabled && pod["spec"].contains("containers") &&
      pod["spec"]["containers"].is_array()) {
    json& containers = pod["spec"]["containers"];
    const bool present = std::any_of(containers.begin(), containers.end(), [](const json& c) {
      return c.is_object() && c.value("name", "") == kAgentContainerName;
    });
    if (!present) {
      json sidecar = AgentContainer(name, spec.agent, agent);
      // The commands run in the agent's container: give them the application's volumes
      // (scripts from a ConfigMap, the state an emptyDir holds) at the same paths.
      if (!containers.empty() && containers[0].is_object() &&
          containers[0].contains("volumeMounts") && containers[0]["volumeMounts"].is_array()) {
        sidecar["volumeMounts"] = containers[0]["volumeMounts"];
      }
      containers.push_back(std::move(sidecar));
    }
    // The agent's identity (see agent_access.h): the template's own account if it names one.
    pod["spec"]["serviceAccountName"] = AgentPodServiceAccount(name, tmpl);
  }
  return pod;
}

std::string DcServiceName(const std::string& domain_name) { return domain_name + "-dc"; }

json BuildDcService(const json& domain, const DomainSpec& spec) {
  if (spec.service_ports.empty()) return nullptr;
  const std::string name = domain["metadata"].value("name", "");
  json ports = json::array();
  for (const auto& p : spec.service_ports) {
    json port = {{"port", p.port}, {"protocol", p.protocol}};
    if (!p.name.empty()) port["name"] = p.name;
    port["targetPort"] = p.target_port.is_null() ? json(p.port) : p.target_port;
    ports.push_back(std::move(port));
  }
  return {{"apiVersion", "v1"},
          {"kind", "Service"},
          {"metadata",
           {{"name", DcServiceName(name)},
            {"labels", {{kDomainLabel, name}}},
            {"ownerReferences", json::array({OwnerReference(domain)})}}},
          {"spec",
           {{"type", "ClusterIP"},
            {"selector", {{kDomainLabel, name}, {kRoleLabel, kRoleDc}}},
            {"ports", ports}}}};
}

}  // namespace dpcm::domain
