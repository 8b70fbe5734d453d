// The few API calls the DC handover makes, as an interface: the API server in production, an
// in-memory fake in tests.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "pkg/client/api_client.h"
#include "pkg/status/status.h"

namespace dpcm::domain {

// Pods and Leases of one namespace. Every call returns the server's object, or a Status
// as the API server would give it: NotFound, Conflict (a stale resourceVersion on
// update), Invalid (a failed JSON-patch "test"), AlreadyExists, or a transport error.
class PodLeaseApi {
 public:
  virtual ~PodLeaseApi() = default;
  virtual Result<nlohmann::json> GetPod(const std::string& ns, const std::string& name) = 0;
  // The pods matching `label_selector` ("k=v,k2=v2"), as a list object with "items".
  virtual Result<nlohmann::json> ListPods(const std::string& ns,
                                          const std::string& label_selector) = 0;
  // Applies a JSON patch (RFC 6902) to a pod.
  virtual Result<nlohmann::json> PatchPod(const std::string& ns, const std::string& name,
                                          const nlohmann::json& json_patch) = 0;
  virtual Result<nlohmann::json> GetLease(const std::string& ns, const std::string& name) = 0;
  virtual Result<nlohmann::json> CreateLease(const std::string& ns,
                                             const nlohmann::json& lease) = 0;
  // Replaces a Lease, conditional on the metadata.resourceVersion it carries.
  virtual Result<nlohmann::json> UpdateLease(const std::string& ns,
                                             const nlohmann::json& lease) = 0;
  virtual Result<nlohmann::json> PatchLease(const std::string& ns, const std::string& name,
                                            const nlohmann::json& json_patch) = 0;
};

// PodLeaseApi on a real API server. `client` must outlive it.
class ClientPodLeaseApi final : public PodLeaseApi {
 public:
  explicit ClientPodLeaseApi(client::ApiClient& client) : client_(client) {}
  Result<nlohmann::json> GetPod(const std::string& ns, const std::string& name) override;
  Result<nlohmann::json> ListPods(const std::string& ns,
                                  const std::string& label_selector) override;
  Result<nlohmann::json> PatchPod(const std::string& ns, const std::string& name,
                                  const nlohmann::json& json_patch) override;
  Result<nlohmann::json> GetLease(const std::string& ns, const std::string& name) override;
  Result<nlohmann::json> CreateLease(const std::string& ns, const nlohmann::json& lease) override;
  Result<nlohmann::json> UpdateLease(const std::string& ns, const nlohmann::json& lease) override;
  Result<nlohmann::json> PatchLease(const std::string& ns, const std::string& name,
                                    const nlohmann::json& json_patch) override;

 private:
  client::ApiClient& client_;
};

}  // namespace dpcm::domain
