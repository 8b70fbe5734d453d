// Writes the objects a ProcessDomain owns apart from the DC role: member pods, the -dc Service, and
// the cleanup after deletion.
#pragma once

#include <nlohmann/json.hpp>
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

  // Creates the managed pods "<domain>-<ordinal>" from the template.
  Status CreatePods(const nlohmann::json& domain, const DomainSpec& spec,
                    const std::vector<int>& ordinals);
  // Deletes members (scale-down), conditional on the uid and resourceVersion observed.
  Status DeletePods(const DomainView& view, const std::vector<std::string>& names);
  // Deletes a member's pod to restart it (recreated by dpcm or by its owner), conditional
  // on `uid`. A pod already gone or replaced counts as done.
  Status RestartPod(const std::string& ns, const std::string& name, const std::string& uid);
  // Creates, updates or deletes "<domain>-dc" to match the spec; a Service of that name
  // owned by someone else is an error (Conflict), never taken over.
  Status EnsureService(const nlohmann::json& domain, const DomainSpec& spec);
  // After the domain is gone: deletes its managed pods, releases adopted pods (drops
  // dpcm's labels and annotations), deletes its Lease and Service. Owner references let a
  // garbage collector do the same; both are harmless together.
  Status CleanUp(const std::string& ns, const std::string& name);

 private:
  client::ApiClient& client_;
  const cache::Store& pods_;
  const cache::Store& leases_;
  const cache::Store& services_;
  const AgentInjection agent_;
};

}  // namespace dpcm::domain
