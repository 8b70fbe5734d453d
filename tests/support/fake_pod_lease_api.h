// An in-memory API server for the pods and Leases of a test: resourceVersions, preconditions,
// conflicts, and faults injected before any write.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pkg/domain/pod_lease_api.h"

namespace dpcm::testing {

// Behaves as the API server does for the calls DcHandover makes: every write bumps one
// global resourceVersion; an update with a stale resourceVersion is a Conflict; a JSON
// patch whose "test" fails is Invalid (422); creating an existing object is
// AlreadyExists; a missing object is NotFound. Not thread-safe (tests drive it from one
// thread; a "concurrent" writer runs inside the write hook).
class FakePodLeaseApi final : public domain::PodLeaseApi {
 public:
  // Called before every write with its verb ("patch pod", "create lease", "update lease",
  // "patch lease") and the object's name. A non-OK status fails the write without
  // applying it (an injected fault, or the operator dying there). The hook may write
  // itself (a second, concurrent writer); it is not called for its own writes.
  using WriteHook = std::function<Status(const std::string& verb, const std::string& name)>;
  // Called after every applied write (to check invariants at every resourceVersion).
  using WriteObserver = std::function<void(const FakePodLeaseApi& api)>;

  // Creates or replaces a pod as a kubelet or controller would (not through the hook);
  // a missing uid is generated. Returns the stored pod.
  nlohmann::json PutPod(nlohmann::json pod);
  void RemovePod(const std::string& name);
  void RemoveLease(const std::string& name);
  std::optional<nlohmann::json> Pod(const std::string& name) const;
  std::optional<nlohmann::json> Lease(const std::string& name) const;
  std::vector<nlohmann::json> Pods() const;
  void SetWriteHook(WriteHook hook) { hook_ = std::move(hook); }
  void SetWriteObserver(WriteObserver observer) { observer_ = std::move(observer); }
  int writes() const { return writes_; }  // writes applied
  int reads() const { return reads_; }    // GETs and LISTs served

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
  using Objects = std::map<std::string, nlohmann::json>;
  Status BeforeWrite(const std::string& verb, const std::string& name);
  nlohmann::json Stored(Objects& objects, const std::string& name, nlohmann::json object);
  Result<nlohmann::json> Patch(Objects& objects, const std::string& verb, const std::string& name,
                               const nlohmann::json& json_patch);

  Objects pods_;
  Objects leases_;
  int64_t revision_ = 100;
  int uids_ = 0;
  int writes_ = 0;
  int reads_ = 0;
  bool in_hook_ = false;
  WriteHook hook_;
  WriteObserver observer_;
};

}  // namespace dpcm::testing
