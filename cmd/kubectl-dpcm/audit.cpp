#include "cmd/kubectl-dpcm/audit.h"

#include <algorithm>
#include <set>

#include "cmd/kubectl-dpcm/table.h"
#include "pkg/object/object.h"

namespace dpcm::kubectl_plugin {

using Json = nlohmann::json;

namespace {

constexpr const char* kDomainLabel = "dpcm.io/domain";
constexpr const char* kRoleLabel = "dpcm.io/role";
constexpr const char* kEpochAnnotation = "dpcm.io/epoch";

bool PodReady(const Json& pod) {
  for (const auto& c : pod.value("/status/conditions"_json_pointer, Json::array())) {
    if (c.is_object() && c.value("type", "") == "Ready") return c.value("status", "") == "True";
  }
  return false;
}

bool Terminating(const Json& pod) {
  return pod.is_object() && pod.contains("metadata") && pod["metadata"].is_object() &&
         pod["metadata"].contains("deletionTimestamp");
}

std::string Join(const std::vector<std::string>& names) {
  std::string text;
  for (const auto& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

// The pod names the endpoints point at (targetRef of kind Pod), ready or not; an address
// without a pod reference is named by its IP.
std::set<std::string> EndpointTargets(const DomainObjects& objects) {
  std::set<std::string> names;
  auto add = [&names](const Json& address, const std::string& ip) {
    const Json ref = address.value("targetRef", Json::object());
    if (ref.is_object() && ref.value("kind", "Pod") == "Pod" && ref.contains("name")) {
      names.insert(ref.value("name", ""));
    } else if (!ip.empty()) {
      names.insert("address " + ip);
    }
  };
  if (!objects.endpoint_slices.empty()) {
    for (const auto& slice : objects.endpoint_slices) {
      for (const auto& endpoint : slice.value("endpoints", Json::array())) {
        const Json addresses = endpoint.value("addresses", Json::array());
        add(endpoint, addresses.empty() || !addresses[0].is_string()
                          ? std::string()
                          : addresses[0].get<std::string>());
      }
    }
  } else if (objects.endpoints) {
    for (const auto& subset : objects.endpoints->value("subsets", Json::array())) {
      for (const char* key : {"addresses", "notReadyAddresses"}) {
        for (const auto& address : subset.value(key, Json::array())) {
          add(address, address.value("ip", ""));
        }
      }
    }
  }
  return names;
}

}  // namespace

std::vector<Finding> Audit(const DomainObjects& objects) {
  const std::string ns = object::Meta(objects.domain, "namespace");
  const std::string name = object::Meta(objects.domain, "name");
  std::vector<Finding> findings;
  auto finding = [&](const char* rule, std::string message) {
    findings.push_back({ns, name, rule, std::move(message)});
  };

  std::vector<std::string> dcs;
  bool any_serving = false;
  for (const auto& pod : objects.pods) {
    if (object::Label(pod, kDomainLabel) != name) continue;
    if (object::Label(pod, kRoleLabel) == "dc") dcs.push_back(object::Meta(pod, "name"));
    any_serving = any_serving || (PodReady(pod) && !Terminating(pod));
  }
  if (dcs.size() > 1) {
    finding("one-dc", std::to_string(dcs.size()) + " pods labeled dpcm.io/role=dc: " + Join(dcs));
  } else if (dcs.empty() && any_serving) {
    finding("one-dc", "no pod is labeled dpcm.io/role=dc, though a member is Ready");
  }

  const std::string holder =
      objects.lease ? object::StringAt(*objects.lease, "/spec/holderIdentity"_json_pointer) : "";
  const Json transitions =
      objects.lease ? objects.lease->value("/spec/leaseTransitions"_json_pointer, Json()) : Json();
  if (!dcs.empty()) {
    if (!objects.lease) {
      finding("lease-holder",
              "the Lease " + name + " is missing, yet " + Join(dcs) + " is labeled dc");
    } else {
      for (const auto& dc : dcs) {
        if (dc != holder) {
          finding("lease-holder", dc + " is labeled dc but the Lease holder is " +
                                      (holder.empty() ? "nobody" : holder));
        }
      }
    }
  }
  for (const auto& pod : objects.pods) {
    const std::string pod_name = object::Meta(pod, "name");
    if (std::find(dcs.begin(), dcs.end(), pod_name) == dcs.end() || !objects.lease) continue;
    const std::string epoch = object::Annotation(pod, kEpochAnnotation);
    const std::string lease_epoch =
        transitions.is_number_integer() ? std::to_string(transitions.get<int64_t>()) : "";
    if (epoch != lease_epoch) {
      finding("epoch", pod_name + " has dpcm.io/epoch=" + (epoch.empty() ? "<none>" : epoch) +
                           " but the Lease's leaseTransitions is " +
                           (lease_epoch.empty() ? "<none>" : lease_epoch));
    }
  }
  const std::string active = object::StringAt(objects.domain, "/status/activePod"_json_pointer);
  if (dcs.size() == 1 && active != dcs.front()) {
    finding("active-pod", "status.activePod is " + (active.empty() ? "empty" : active) +
                              " but the DC is " + dcs.front());
  }

  const Json ports = objects.domain.value("/spec/service/ports"_json_pointer, Json::array());
  if (ports.is_array() && !ports.empty()) {
    const std::string service = name + "-dc";
    if (!objects.service) {
      finding("service-endpoints", "the Service " + service + " is missing");
    } else if (!objects.endpoint_slices.empty() || objects.endpoints) {
      const auto targets = EndpointTargets(objects);
      std::vector<std::string> others;
      for (const auto& target : targets) {
        if (dcs.size() != 1 || target != dcs.front()) others.push_back(target);
      }
      if (!others.empty()) {
        finding("service-endpoints",
                "the Service " + service + " routes to " + Join(others) +
                    (dcs.size() == 1 ? ", not only the DC " + dcs.front() : ""));
      } else if (dcs.size() == 1 && targets.count(dcs.front()) == 0) {
        finding("service-endpoints",
                "the Service " + service + " does not route to the DC " + dcs.front());
      }
    }
  }
  return findings;
}

std::string RenderFindings(const std::vector<Finding>& findings, size_t domains_checked) {
  if (findings.empty()) {
    return "No findings in " + std::to_string(domains_checked) + " domain(s).\n";
  }
  std::vector<std::vector<std::string>> rows;
  rows.reserve(findings.size());
  for (const auto& f : findings) {
    rows.push_back({f.namespace_name + "/" + f.domain, f.rule, f.message});
  }
  return RenderTable({"DOMAIN", "RULE", "FINDING"}, rows) + std::to_string(findings.size()) +
         " finding(s) in " + std::to_string(domains_checked) + " domain(s).\n";
}

Json FindingsJson(const std::vector<Finding>& findings, size_t domains_checked) {
  Json list = Json::array();
  for (const auto& f : findings) {
    list.push_back({{"namespace", f.namespace_name},
                    {"domain", f.domain},
                    {"rule", f.rule},
                    {"message", f.message}});
  }
  return {{"domainsChecked", domains_checked}, {"findings", list}};
}

}  // namespace dpcm::kubectl_plugin
