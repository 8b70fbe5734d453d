// Builders for the objects of a ProcessDomain in unit tests: the domain, its member pods (healthy
// or not), its Lease.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "pkg/domain/owned_objects.h"
#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"

namespace dpcm::testing {

// A managed ProcessDomain "<name>" in namespace "ns" with `replicas` members.
inline nlohmann::json DomainObject(const std::string& name = "web", int replicas = 3) {
  return {
      {"apiVersion", "dpcm.io/v1alpha1"},
      {"kind", "ProcessDomain"},
      {"metadata", {{"name", name}, {"namespace", "ns"}, {"uid", "domain-uid"}, {"generation", 1}}},
      {"spec",
       {{"replicas", replicas},
        {"template", {{"spec", {{"containers", {{{"name", "app"}, {"image", "app"}}}}}}}}}}};
}

struct PodShape {
  bool ready = true;
  std::string role = domain::kRolePc;
  std::optional<int64_t> epoch;
  int restarts = 0;
  std::string uid;  // "" = "uid-<name>"
  bool terminating = false;
};

inline PodShape NotReady() {
  PodShape shape;
  shape.ready = false;
  return shape;
}

inline PodShape WithRole(std::string role) {
  PodShape shape;
  shape.role = std::move(role);
  return shape;
}

// Member pod "<domain>-<ordinal>" owned by the domain, Running with an IP.
inline nlohmann::json MemberPod(const std::string& domain, int ordinal,
                                const PodShape& shape = {}) {
  const std::string name = domain + "-" + std::to_string(ordinal);
  nlohmann::json pod = {
      {"metadata",
       {{"name", name},
        {"namespace", "ns"},
        {"uid", shape.uid.empty() ? "uid-" + name : shape.uid},
        {"resourceVersion", "1"},
        {"labels", {{domain::kDomainLabel, domain}, {domain::kRoleLabel, shape.role}}},
        {"annotations", nlohmann::json::object()},
        {"ownerReferences",
         nlohmann::json::array({domain::OwnerReference(DomainObject(domain))})}}},
      {"status",
       {{"phase", "Running"},
        {"podIP", "10.0.0." + std::to_string(ordinal + 1)},
        {"conditions", {{{"type", "Ready"}, {"status", shape.ready ? "True" : "False"}}}},
        {"containerStatuses",
         {{{"name", "app"},
           {"ready", shape.ready},
           {"restartCount", shape.restarts},
           {"state", {{"running", nlohmann::json::object()}}}}}}}}};
  if (shape.epoch) {
    pod["metadata"]["annotations"][domain::kEpochAnnotation] = std::to_string(*shape.epoch);
  }
  if (shape.terminating) pod["metadata"]["deletionTimestamp"] = "2026-12-02T10:00:00Z";
  return pod;
}

// The domain's Lease held by `holder` at `transitions`, recording `instance`.
inline nlohmann::json LeaseObject(const std::string& domain, const std::string& holder,
                                  int64_t transitions, const std::string& instance = "") {
  nlohmann::json lease = {
      {"apiVersion", "coordination.k8s.io/v1"},
      {"kind", "Lease"},
      {"metadata",
       {{"name", domain},
        {"namespace", "ns"},
        {"resourceVersion", "1"},
        {"labels", {{domain::kDomainLabel, domain}}},
        {"ownerReferences",
         nlohmann::json::array({domain::OwnerReference(DomainObject(domain))})}}},
      {"spec", {{"holderIdentity", holder}, {"leaseTransitions", transitions}}}};
  if (!instance.empty()) {
    lease["metadata"]["annotations"] = {{domain::kHolderInstanceAnnotation, instance}};
  }
  return lease;
}

}  // namespace dpcm::testing
