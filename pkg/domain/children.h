// Writes the objects a ProcessDomain owns apart from the DC role: member pods, the -dc Service, and
// the cleanup after deletion.
#pragma once

#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "pkg/cache/store.h"
#include "pkg/client/api_client.h"
#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"
#include "pkg/status/status.h"

namespace dpcm::domain {

// Every write is conditional where it can race (uid / resourceVersion preconditions);
// NotFound and AlreadyExists count as done. Thread-safe for distinct domains.
class ChildWriter {
 public:
  // Everything passed must outlive the writer. The stores are read, never written.
  // `agent` says how dpcm-agent is added to the pods of domains that enable it.
  ChildWriter(client::ApiClient& client, const cache::Store& pods, const cache::Store& leases,
              const cache::Store& services, AgentInjection agent = {});

  // Creates the managed pods "<domain>-<ordinal>" from the template; with spec.agent.enabled,
  // after EnsureAgentAccess() (a pod must not name a ServiceAccount that does not exist).
  Status CreatePods(const nlohmann::json& domain, const DomainSpec& spec,
                    const std::vector<int>& ordinals);
  // Managed mode with spec.agent.enabled: creates (or corrects) the domain's agent
  // ServiceAccount, Role and RoleBinding (agent_access.h), owned by the domain. An object of
  // that name owned by someone else is an error (Conflict), never taken over. Done once per
  // domain uid and pod service account while this process runs; a no-op otherwise.
  Status EnsureAgentAccess(const nlohmann::json& domain, const DomainSpec& spec);
  // Deletes members (scale-down), conditional on the uid and resourceVersion observed.
  Status DeletePods(const DomainView& view, const std::vector<std::string>& names);
  // Deletes a member's pod to restart it (recreated by dpcm or by its owner), conditional
  // on `uid`. A pod already gone or replaced counts as done.
  Status RestartPod(const std::string& ns, const std::string& name, const std::string& uid);
  // Creates, updates or deletes "<domain>-dc" to match the spec; a Service of that name
  // owned by someone else is an error (Conflict), never taken over.
  Status EnsureService(const nlohmann::json& domain, const DomainSpec& spec);
  // After the domain is gone: deletes its managed pods, releases adopted pods (drops
  // dpcm's labels and annotations), deletes its Lease and Service and its agent ServiceAccount,
  // Role and RoleBinding. Owner references let a
  // garbage collector do the same; both are harmless together.
  Status CleanUp(const std::string& ns, const std::string& name);

 private:
  client::ApiClient& client_;
  const cache::Store& pods_;
  const cache::Store& leases_;
  const cache::Store& services_;
  // Creates `desired` or brings the fields in `compared` of the existing object (owned by
  // the domain) to it.
  Status EnsureOwned(const client::ResourceRef& ref, const std::string& domain_name,
                     const nlohmann::json& desired, const std::vector<std::string>& compared);
  // Deletes `ref` `name` if the domain owns it (uid precondition).
  Status DeleteOwned(const client::ResourceRef& ref, const std::string& ns,
                     const std::string& domain_name, const std::string& name);

  const AgentInjection agent_;
  std::mutex ensured_mutex_;
  std::set<std::string> ensured_;  // "<ns>/<name>/<uid>/<pod service account>"; guarded
};

}  // namespace dpcm::domain
