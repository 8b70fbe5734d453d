// The rules of `kubectl dpcm check`: one domain's objects in, findings out, without any I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dpcm::kubectl_plugin {

// Everything `check` reads about one domain, as the API served it.
struct DomainObjects {
  nlohmann::json domain;                  // the ProcessDomain
  std::optional<nlohmann::json> lease;    // the Lease <domain>, nullopt when absent
  std::vector<nlohmann::json> pods;       // pods labeled dpcm.io/domain=<domain>
  std::optional<nlohmann::json> service;  // the Service <domain>-dc, nullopt when absent
  // The Service's EndpointSlices (labeled kubernetes.io/service-name=<domain>-dc); when
  // there are none, `endpoints` (the v1 Endpoints of the same name) is read instead.
  std::vector<nlohmann::json> endpoint_slices;
  std::optional<nlohmann::json> endpoints;
};

// One broken rule.
struct Finding {
  std::string namespace_name;
  std::string domain;
  std::string rule;     // "one-dc", "lease-holder", "epoch", "active-pod", "service-endpoints"
  std::string message;  // names the pods concerned
};

// Checks one domain:
// - one-dc: exactly one pod carries dpcm.io/role=dc (zero is a finding only while the
//   domain has a member that is Ready and not terminating; a paused domain is held to the
//   same rules, since labels must stay safe while the operator is away);
// - lease-holder: the Lease exists and its holderIdentity is the DC;
// - epoch: the DC's dpcm.io/epoch annotation equals the Lease's leaseTransitions;
// - active-pod: status.activePod names the DC;
// - service-endpoints: when spec.service.ports is set, the Service exists and its
//   endpoints name the DC and no other pod.
std::vector<Finding> Audit(const DomainObjects& objects);

// "NAMESPACE/DOMAIN  RULE  MESSAGE" lines as a table, or "No findings in N domain(s).".
std::string RenderFindings(const std::vector<Finding>& findings, size_t domains_checked);
// {"domainsChecked": N, "findings": [{namespace, domain, rule, message}]}.
nlohmann::json FindingsJson(const std::vector<Finding>& findings, size_t domains_checked);

}  // namespace dpcm::kubectl_plugin
