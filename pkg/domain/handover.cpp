#include "pkg/domain/handover.h"

#include <algorithm>
#include <map>
#include <set>

#include "pkg/domain/owned_objects.h"
#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"
#include "pkg/election/lease_record.h"
#include "pkg/object/object.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

// Read-then-conditional-write attempts before a busy pod's handover is given up.
constexpr int kFreshWriteAttempts = 4;

// A conditional write that lost to a concurrent change: 409, or 422 from a failed
// JSON-patch "test" of the resourceVersion.
bool IsStaleWrite(const Status& status) { return status.IsConflict() || status.IsInvalid(); }

// Runs `attempt(first)` until it succeeds, fails for another reason than a stale write,
// or has been tried kFreshWriteAttempts times: the one re-read loop of the protocol.
// `first` is true for the first attempt only (which may start from a pod already at hand).
template <typename Attempt>
auto RetryStale(Attempt attempt) {
  for (int tries = 1;; ++tries) {
    auto result = attempt(tries == 1);
    const Status status = [&] {
      if constexpr (std::is_same_v<decltype(result), Status>) {
        return result;
      } else {
        return result.status();
      }
    }();
    if (status.ok() || !IsStaleWrite(status) || tries == kFreshWriteAttempts) return result;
  }
}

}  // namespace

HandoverRequest RequestFor(const DomainView& view, const DcMove& move, const json& owner,
                           int lease_duration_seconds) {
  HandoverRequest request;
  request.ns = view.ns;
  request.domain = view.name;
  request.owner = owner;
  request.target = move.target;
  const Member* target = view.Find(move.target);
  request.target_instance = target != nullptr ? target->instance() : "";
  request.suspects = view.labeled_dc;
  request.pods = view.pods;
  if (!view.lease.holder.empty()) request.suspects.push_back(view.lease.holder);
  request.lease = view.lease_object;
  request.epoch_floor = view.epoch_floor;
  request.new_epoch = move.new_epoch;
  request.lease_duration_seconds = lease_duration_seconds;
  return request;
}

DcHandover::DcHandover(PodLeaseApi& api, FreshMember judge, Clock& clock)
    : api_(api), judge_(std::move(judge)), clock_(clock) {}

Status DcHandover::Run(const HandoverRequest& request, HandoverResult& result) const {
  result = HandoverResult{};
  const election::LeaseRecord seen =
      request.lease.is_null() ? election::LeaseRecord{} : election::ParseLease(request.lease);

  // 1. Nobody else may carry the DC label: see the header for why the suspects the view
  //    shows are all there can be while the Lease names a holder, and a live LIST of the
  //    domain's pods is needed otherwise (it may also show epochs the view predates).
  std::set<std::string> suspects(request.suspects.begin(), request.suspects.end());
  if (!seen.holder.empty()) suspects.insert(seen.holder);
  int64_t floor = request.epoch_floor;
  int64_t target_fenced = 0;  // a target fenced at the Lease's epoch needs a new one
  KnownPods known;
  if (request.lease.is_null() || seen.holder.empty()) {
    auto live = api_.ListPods(request.ns, std::string(kDomainLabel) + "=" + request.domain);
    if (!live.ok()) return live.status().WithContext("list the domain's pods");
    known.fresh = true;
    if (live->contains("items") && (*live)["items"].is_array()) {
      for (auto& pod : (*live)["items"]) {
        std::string name = object::Meta(pod, "name");
        if (object::HasLabel(pod, kRoleLabel, kRoleDc)) suspects.insert(name);
        floor = std::max({floor, EpochAnnotation(pod, kEpochAnnotation).value_or(0),
                          EpochAnnotation(pod, kFenceAnnotation).value_or(0)});
        known.pods.emplace(std::move(name), std::make_shared<const json>(std::move(pod)));
      }
    }
  } else {
    for (const auto& pod : request.pods) known.pods.emplace(object::Meta(*pod, "name"), pod);
  }
  if (const auto target = known.pods.find(request.target); target != known.pods.end()) {
    target_fenced = EpochAnnotation(*target->second, kFenceAnnotation).value_or(0);
  }
  const bool rewrite = request.lease.is_null() || seen.holder != request.target ||
                       request.new_epoch || floor > seen.transitions ||
                       (target_fenced > 0 && target_fenced >= seen.transitions);
  result.epoch = rewrite ? std::max(seen.transitions, floor) + 1 : seen.transitions;
  suspects.erase(request.target);
  for (const auto& suspect : suspects) {
    if (Status s = Fence(request.ns, suspect, result.epoch, known); !s.ok()) return s;
  }

  result.fenced_at = clock_.Now();

  // 2. The Lease.
  result.lease = request.lease;
  if (rewrite) {
    auto written = WriteLease(request, result.epoch);
    if (!written.ok()) return written.status();
    result.lease = std::move(*written);
    result.lease_written = true;
    result.lease_written_at = clock_.Now();
    if (!seen.holder.empty() && seen.holder != request.target) {
      result.lease_moved_from = seen.holder;
    }
  }

  // 3. Only now the label.
  auto promoted = Promote(request, result.epoch, known);
  if (!promoted.ok()) return promoted.status();
  result.promoted = *promoted;
  result.labeled_at = clock_.Now();
  return Status::Ok();
}

DcHandover::PodRead DcHandover::ReadPod(const std::string& ns, const std::string& name,
                                        const KnownPods& known, bool first) const {
  if (first) {
    if (const auto found = known.pods.find(name); found != known.pods.end()) {
      return {*found->second, known.fresh};
    }
  }
  return {api_.GetPod(ns, name), true};
}

Status DcHandover::Fence(const std::string& ns, const std::string& pod, int64_t epoch,
                         const KnownPods& known) const {
  return RetryStale(
      [&](bool first) { return FenceOnce(ns, pod, epoch, ReadPod(ns, pod, known, first)); });
}

Status DcHandover::FenceOnce(const std::string& ns, const std::string& pod_name, int64_t epoch,
                             const PodRead& read) const {
  const auto& pod = read.pod;
  if (pod.status().IsNotFound()) return Status::Ok();
  if (!pod.ok()) return pod.status().WithContext("read " + pod_name + " before fencing it");
  const std::string fence = std::to_string(epoch);
  if (read.fresh && !object::HasLabel(*pod, kRoleLabel, kRoleDc) &&
      object::Annotation(*pod, kFenceAnnotation) == fence) {
    return Status::Ok();  // already fenced for this epoch
  }
  json ops = json::array({object::TestResourceVersion(object::Meta(*pod, "resourceVersion")),
                          object::SetInMap(*pod, "labels", kRoleLabel, kRolePc),
                          object::SetInMap(*pod, "annotations", kFenceAnnotation, fence)});
  if (!object::Annotation(*pod, kEpochAnnotation).empty()) {
    ops.push_back(object::RemoveFromMap("annotations", kEpochAnnotation));
  }
  auto patched = api_.PatchPod(ns, pod_name, ops);
  if (patched.status().IsNotFound()) return Status::Ok();
  if (!patched.ok()) return patched.status().WithContext("fence " + pod_name);
  return Status::Ok();
}

Result<json> DcHandover::WriteLease(const HandoverRequest& request, int64_t epoch) const {
  const bool existed = !request.lease.is_null();
  if (existed && !OwnedByDomain(request.lease, request.domain)) {
    return Status(StatusCode::kAlreadyExists, "a Lease named " + request.domain +
                                                  " exists and is not owned by this ProcessDomain");
  }
  json object = request.lease;
  if (!existed) {
    object = {{"metadata",
               {{"name", request.domain},
                {"namespace", request.ns},
                {"labels", {{kDomainLabel, request.domain}}},
                {"ownerReferences", json::array({request.owner})}}}};
  }
  election::LeaseRecord lease = existed ? election::ParseLease(object) : election::LeaseRecord{};
  const auto now = clock_.WallNow();
  lease.name = request.domain;
  if (lease.holder != request.target || lease.transitions != epoch) lease.acquire_time = now;
  lease.holder = request.target;
  lease.transitions = epoch;
  lease.renew_time = now;
  lease.lease_duration_seconds = request.lease_duration_seconds;
  election::ApplyLease(lease, object);
  object["metadata"]["annotations"][kHolderInstanceAnnotation] = request.target_instance;
  auto written =
      existed ? api_.UpdateLease(request.ns, object) : api_.CreateLease(request.ns, object);
  if (written.status().IsAlreadyExists()) {
    // A Lease the view cannot see: it lacks the dpcm.io/domain label the cache selects
    // on. Ours (owned by this domain): label it so the cache sees it, then retry. Not
    // ours: never take it over.
    auto current = api_.GetLease(request.ns, request.domain);
    if (current.ok() && OwnedByDomain(*current, request.domain)) {
      auto labeled = api_.PatchLease(
          request.ns, request.domain,
          json::array({object::TestResourceVersion(object::Meta(*current, "resourceVersion")),
                       object::SetInMap(*current, "labels", kDomainLabel, request.domain)}));
      if (!labeled.ok()) return labeled.status().WithContext("label lease " + request.domain);
      return Status::Conflict("lease " + request.domain +
                              " was not in the cache; labeled it, retrying");
    }
    return Status(StatusCode::kAlreadyExists, "a Lease named " + request.domain +
                                                  " exists and is not owned by this ProcessDomain");
  }
  if (!written.ok()) return written.status().WithContext("write lease " + request.domain);
  return written;
}

Result<bool> DcHandover::Promote(const HandoverRequest& request, int64_t epoch,
                                 const KnownPods& known) const {
  return RetryStale([&](bool first) {
    return PromoteOnce(request, epoch, ReadPod(request.ns, request.target, known, first));
  });
}

Result<bool> DcHandover::PromoteOnce(const HandoverRequest& request, int64_t epoch,
                                     const PodRead& read) const {
  const auto& pod = read.pod;
  if (!pod.ok()) {
    return pod.status().WithContext("read " + request.target + " before promoting it");
  }
  const Member judged = judge_(*pod);
  if (!judged.healthy()) {
    return Status::Conflict(request.target + " is no longer healthy (" +
                            UnhealthyReason(judged.unhealthy) + ")");
  }
  if (!request.target_instance.empty() && judged.instance() != request.target_instance) {
    return Status::Conflict(request.target + " restarted since it was chosen");
  }
  if (judged.fenced_epoch && *judged.fenced_epoch >= epoch) {
    // Another handover fenced it after this one wrote the Lease: the role moved on.
    return Status::Conflict(request.target + " was fenced at epoch " +
                            std::to_string(*judged.fenced_epoch));
  }
  // Skipping a promotion can never make a second DC: a stale read may skip it too (if the
  // target is not DC after all, the next reconcile sees so and moves it again).
  if (judged.is_dc() && judged.epoch == epoch) return false;
  const json ops =
      json::array({object::TestResourceVersion(object::Meta(*pod, "resourceVersion")),
                   object::SetInMap(*pod, "labels", kRoleLabel, kRoleDc),
                   object::SetInMap(*pod, "labels", kDomainLabel, request.domain),
                   object::SetInMap(*pod, "annotations", kEpochAnnotation, std::to_string(epoch))});
  auto patched = api_.PatchPod(request.ns, request.target, ops);
  if (!patched.ok()) return patched.status().WithContext("promote " + request.target);
  return true;
}

Status DcHandover::LabelPc(const std::string& ns, const std::string& domain,
                           const json& pod) const {
  const std::string name = object::Meta(pod, "name");
  const json ops = json::array({object::TestResourceVersion(object::Meta(pod, "resourceVersion")),
                                object::SetInMap(pod, "labels", kRoleLabel, kRolePc),
                                object::SetInMap(pod, "labels", kDomainLabel, domain)});
  auto patched = api_.PatchPod(ns, name, ops);
  if (!patched.ok() && !patched.status().IsNotFound()) {
    return patched.status().WithContext("label " + name + " pc");
  }
  return Status::Ok();
}

}  // namespace dpcm::domain
