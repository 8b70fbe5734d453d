#include "pkg/domain/reconciler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "pkg/backoff/backoff.h"
#include "pkg/domain/owned_objects.h"
#include "pkg/metrics/metrics.h"

namespace dpcm::domain {
namespace {

using controller::ReconcileResult;
using nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kRetrySoon = 200ms;
// Read-then-conditional-write attempts before a busy pod's reconcile is requeued.
constexpr int kFreshWriteAttempts = 4;
// Role hook deliveries that must fail in a row (retried after 0.25, 0.5, 1, 2 s: about
// 4 s of an application that cannot be told its role) before its member counts as
// unhealthy; an application still starting up is not failed over for it.
constexpr int kHookFailuresBeforeUnhealthy = 5;

// A conditional write that lost to a concurrent change: 409, or 422 from a failed
// JSON-patch "test" of the resourceVersion.
bool IsStaleWrite(const Status& status) { return status.IsConflict() || status.IsInvalid(); }

std::string Meta(const json& object, const char* key) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return "";
  }
  const auto& m = object["metadata"];
  return m.contains(key) && m[key].is_string() ? m[key].get<std::string>() : "";
}

int64_t Generation(const json& object) {
  return object.value("/metadata/generation"_json_pointer, static_cast<int64_t>(0));
}

// "/metadata/labels/dpcm.io~1role": a JSON-pointer path to a key with a '/'.
std::string PointerTo(const std::string& map, const std::string& key) {
  std::string escaped;
  for (char c : key) {
    if (c == '~') {
      escaped += "~0";
    } else if (c == '/') {
      escaped += "~1";
    } else {
      escaped += c;
    }
  }
  return "/metadata/" + map + "/" + escaped;
}

json TestResourceVersion(const std::string& rv) {
  return {{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", rv}};
}

// A JSON-patch op that sets metadata.<map>[key] = value whether or not the map exists.
json SetInMap(const json& object, const std::string& map, const std::string& key,
              const std::string& value) {
  const bool has_map = object.contains("metadata") && object["metadata"].contains(map) &&
                       object["metadata"][map].is_object();
  if (has_map) return {{"op", "add"}, {"path", PointerTo(map, key)}, {"value", value}};
  return {{"op", "add"}, {"path", "/metadata/" + map}, {"value", {{key, value}}}};
}

bool HasLabel(const json& object, const std::string& key, const std::string& value) {
  const json* labels = object.contains("metadata") && object["metadata"].contains("labels")
                           ? &object["metadata"]["labels"]
                           : nullptr;
  return labels != nullptr && labels->is_object() && labels->contains(key) &&
         (*labels)[key] == value;
}

bool SelectorMatches(const json& domain, const json& pod) {
  const json* match = domain.contains("spec") && domain["spec"].is_object() &&
                              domain["spec"].contains("selector") &&
                              domain["spec"]["selector"].is_object() &&
                              domain["spec"]["selector"].contains("matchLabels")
                          ? &domain["spec"]["selector"]["matchLabels"]
                          : nullptr;
  if (match == nullptr || !match->is_object() || match->empty()) return false;
  for (const auto& [key, value] : match->items()) {
    if (!value.is_string() || !HasLabel(pod, key, value.get<std::string>())) return false;
  }
  return true;
}

json Condition(const std::string& type, bool status, const std::string& reason,
               const std::string& message, int64_t generation) {
  return {{"type", type},
          {"status", status ? "True" : "False"},
          {"reason", reason},
          {"message", message},
          {"observedGeneration", generation}};
}

// Keeps each condition's lastTransitionTime from `previous` while its status is unchanged.
void StampConditions(json& status, const json& previous, const std::string& now) {
  for (auto& condition : status["conditions"]) {
    condition["lastTransitionTime"] = now;
    if (!previous.is_object() || !previous.contains("conditions") ||
        !previous["conditions"].is_array()) {
      continue;
    }
    for (const auto& old : previous["conditions"]) {
      if (old.value("type", "") == condition["type"] &&
          old.value("status", "") == condition["status"] && old.contains("lastTransitionTime")) {
        condition["lastTransitionTime"] = old["lastTransitionTime"];
      }
    }
  }
}

std::string Milliseconds(Clock::Monotonic::duration d) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count()) + " ms";
}

}  // namespace

// One reconcile's view of the domain.
struct DomainReconciler::Observed {
  std::vector<Member> members;     // every pod of the domain
  std::vector<Member> candidates;  // members that may be DC (not scaled away)
  election::LeaseRecord lease;
  cache::ObjectPtr lease_object;  // null when the Lease does not exist
  std::vector<std::string> labeled_dc;
  std::optional<std::string> target;
  bool waiting_for_delay = false;
};

DomainReconciler::DomainReconciler(client::ApiClient& client, DomainCaches caches,
                                   events::EventRecorder& events, metrics::Metrics* metrics,
                                   DomainPlugins plugins, Clock& clock)
    : client_(client),
      caches_(caches),
      events_(events),
      metrics_(metrics),
      plugins_(plugins),
      clock_(clock) {}

DomainReconciler::Memory& DomainReconciler::MemoryOf(const std::string& key) {
  std::lock_guard lock(memory_mutex_);
  return memory_[key];  // std::map nodes are stable: the reference outlives the lock
}

std::vector<cache::ObjectPtr> DomainReconciler::PodsOf(const json& domain,
                                                       const DomainSpec& spec) const {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  std::vector<cache::ObjectPtr> pods;
  if (spec.managed()) {
    for (auto& pod : caches_.pods.ByLabel(ns, kDomainLabel, name)) {
      if (OwnedByDomain(*pod, name)) pods.push_back(std::move(pod));
    }
  } else {
    std::set<std::string> names;
    for (auto& pod : caches_.pods.ByLabel(ns, kDomainLabel, name)) {
      if (!SelectorMatches(domain, *pod)) continue;
      names.insert(Meta(*pod, "name"));
      pods.push_back(std::move(pod));
    }
    if (caches_.adoption != nullptr) {
      for (auto& pod : caches_.adoption->Candidates(ns, name)) {
        // Labeled meanwhile: the main cache's copy (above) is the one to trust.
        if (names.insert(Meta(*pod, "name")).second) pods.push_back(std::move(pod));
      }
    }
  }
  std::sort(pods.begin(), pods.end(),
            [](const auto& a, const auto& b) { return Meta(*a, "name") < Meta(*b, "name"); });
  return pods;
}

Result<ReconcileResult> DomainReconciler::Reconcile(const controller::Request& request,
                                                    const std::stop_token& /*stop*/) {
  const cache::ObjectPtr domain = caches_.domains.Get(request.ns, request.name);
  if (domain == nullptr) {
    {
      std::lock_guard lock(memory_mutex_);
      memory_.erase(request.Key());
    }
    if (caches_.adoption != nullptr) caches_.adoption->Forget(request.ns, request.name);
    Status cleaned = CleanUp(request.ns, request.name);
    if (!cleaned.ok()) return cleaned;
    return ReconcileResult::Done();
  }
  if (!domain->contains("metadata") || (*domain)["metadata"].contains("deletionTimestamp")) {
    return ReconcileResult::Done();  // being deleted: CleanUp runs once it is gone
  }
  Memory& memory = MemoryOf(request.Key());
  SpecError error;
  auto spec = ParseSpec(*domain, &error);
  if (!spec.ok()) {
    ReportInvalidSpec(*domain, error, memory);
    return ReconcileResult::Done();  // a spec change brings the domain back
  }
  memory.invalid_spec_generation = -1;
  if (caches_.adoption != nullptr) {
    if (spec->managed()) {
      caches_.adoption->Forget(request.ns, request.name);
    } else {
      caches_.adoption->Watch(request.ns, request.name, spec->selector);
    }
  }
  return ReconcileDomain(*domain, *spec, memory);
}

void DomainReconciler::ReportInvalidSpec(const json& domain, const SpecError& error,
                                         Memory& memory) {
  const int64_t generation = Generation(domain);
  if (memory.invalid_spec_generation != generation) {
    memory.invalid_spec_generation = generation;
    events_.Warning(events::ObjectReference::Of(domain), "InvalidSpec",
                    error.field + ": " + error.message);
  }
  json status = domain.value("status", json::object());
  status["observedGeneration"] = generation;
  status["phase"] = "Degraded";
  status["conditions"] = json::array(
      {Condition("Ready", false, "InvalidSpec", "the spec is invalid", generation),
       Condition("Degraded", true, "InvalidSpec", error.field + ": " + error.message, generation),
       Condition("Progressing", false, "InvalidSpec", "", generation)});
  if (Status s = WriteStatus(domain, std::move(status)); !s.ok()) {
    spdlog::warn("{}/{}: status: {}", Meta(domain, "namespace"), Meta(domain, "name"),
                 s.ToString());
  }
}

Status DomainReconciler::EnsurePods(const json& domain, const DomainSpec& spec,
                                    const std::vector<cache::ObjectPtr>& pods, bool& progressing) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  std::set<std::string> existing;
  for (const auto& pod : pods) existing.insert(Meta(*pod, "name"));
  for (int ordinal = 0; ordinal < spec.replicas; ++ordinal) {
    const std::string pod_name = name + "-" + std::to_string(ordinal);
    if (existing.count(pod_name) != 0) continue;
    progressing = true;
    auto created = client_.Create(client::resources::Pods(), ns, BuildPod(domain, spec, ordinal));
    if (!created.ok() && !created.status().IsAlreadyExists()) {
      return created.status().WithContext("create pod " + pod_name);
    }
    spdlog::info("{}/{}: created pod {}", ns, name, pod_name);
  }
  // Scale down: delete members beyond replicas, but never the DC or the Lease holder
  // (the DC is moved first).
  const auto lease = caches_.leases.Get(ns, name);
  const std::string holder = lease ? election::ParseLease(*lease).holder : "";
  for (const auto& pod : pods) {
    const Member member = MemberFromPod(*pod, name);
    if (member.ordinal >= 0 && member.ordinal < spec.replicas) continue;
    progressing = true;
    if (member.is_dc() || member.name == holder || member.terminating()) continue;
    client::DeleteOptions options;
    options.precondition_uid = member.uid;
    options.precondition_resource_version = member.resource_version;
    auto deleted = client_.Delete(client::resources::Pods(), ns, member.name, options);
    if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
      return deleted.status().WithContext("delete pod " + member.name);
    }
    spdlog::info("{}/{}: scaled down pod {}", ns, name, member.name);
  }
  return Status::Ok();
}

Status DomainReconciler::Fence(const std::string& ns, const std::string& pod_name, int64_t epoch) {
  // The pod may change between the read and the write (the kubelet writes its status):
  // the write's precondition then fails, and reading again is the right answer.
  for (int attempt = 1;; ++attempt) {
    Status status = FenceOnce(ns, pod_name, epoch);
    if (status.ok() || !IsStaleWrite(status) || attempt == kFreshWriteAttempts) return status;
  }
}

Status DomainReconciler::FenceOnce(const std::string& ns, const std::string& pod_name,
                                   int64_t epoch) {
  auto pod = client_.Get(client::resources::Pods(), ns, pod_name);
  if (pod.status().IsNotFound()) return Status::Ok();
  if (!pod.ok()) return pod.status().WithContext("read " + pod_name + " before fencing it");
  const std::string fence = std::to_string(epoch);
  if (!HasLabel(*pod, kRoleLabel, kRoleDc) &&
      pod->value("/metadata/annotations/dpcm.io~1fenced-epoch"_json_pointer, json()) == fence) {
    return Status::Ok();  // already fenced for this epoch
  }
  json ops = json::array({TestResourceVersion(Meta(*pod, "resourceVersion")),
                          SetInMap(*pod, "labels", kRoleLabel, kRolePc)});
  json annotated = *pod;
  if (!annotated["metadata"].contains("annotations")) {
    ops.push_back(
        {{"op", "add"}, {"path", "/metadata/annotations"}, {"value", {{kFenceAnnotation, fence}}}});
  } else {
    ops.push_back(SetInMap(*pod, "annotations", kFenceAnnotation, fence));
    if (annotated["metadata"]["annotations"].contains(kEpochAnnotation)) {
      ops.push_back({{"op", "remove"}, {"path", PointerTo("annotations", kEpochAnnotation)}});
    }
  }
  auto patched =
      client_.Patch(client::resources::Pods(), ns, pod_name, client::PatchType::kJson, ops);
  if (patched.status().IsNotFound()) return Status::Ok();
  if (!patched.ok()) return patched.status().WithContext("fence " + pod_name);
  return Status::Ok();
}

Result<bool> DomainReconciler::Promote(const std::string& ns, const std::string& domain_name,
                                       const DomainSpec& spec, const std::string& pod_name,
                                       int64_t epoch) {
  for (int attempt = 1;; ++attempt) {
    auto promoted = PromoteOnce(ns, domain_name, spec, pod_name, epoch);
    if (promoted.ok() || !IsStaleWrite(promoted.status()) || attempt == kFreshWriteAttempts) {
      return promoted;
    }
  }
}

Result<bool> DomainReconciler::PromoteOnce(const std::string& ns, const std::string& domain_name,
                                           const DomainSpec& spec, const std::string& pod_name,
                                           int64_t epoch) {
  auto pod = client_.Get(client::resources::Pods(), ns, pod_name);
  if (!pod.ok()) return pod.status().WithContext("read " + pod_name + " before promoting it");
  Member fresh = MemberFromPod(*pod, domain_name);
  ApplyPlugins(ns, domain_name, spec, fresh);
  if (!fresh.healthy()) {
    return Status::Conflict(pod_name + " is no longer healthy (" +
                            UnhealthyReason(fresh.unhealthy) + ")");
  }
  if (fresh.is_dc() && fresh.epoch == epoch) return false;
  json ops = json::array({TestResourceVersion(Meta(*pod, "resourceVersion")),
                          SetInMap(*pod, "labels", kRoleLabel, kRoleDc),
                          SetInMap(*pod, "labels", kDomainLabel, domain_name),
                          SetInMap(*pod, "annotations", kEpochAnnotation, std::to_string(epoch))});
  auto patched =
      client_.Patch(client::resources::Pods(), ns, pod_name, client::PatchType::kJson, ops);
  if (!patched.ok()) return patched.status().WithContext("promote " + pod_name);
  return true;
}

Status DomainReconciler::LabelPc(const std::string& ns, const std::string& domain_name,
                                 const Member& member) {
  auto pod = caches_.pods.Get(ns, member.name);
  if (pod == nullptr && caches_.adoption != nullptr) {
    for (auto& candidate : caches_.adoption->Candidates(ns, domain_name)) {
      if (Meta(*candidate, "name") == member.name) pod = std::move(candidate);
    }
  }
  if (pod == nullptr) return Status::Ok();
  const json ops = json::array({TestResourceVersion(member.resource_version),
                                SetInMap(*pod, "labels", kRoleLabel, kRolePc),
                                SetInMap(*pod, "labels", kDomainLabel, domain_name)});
  auto patched =
      client_.Patch(client::resources::Pods(), ns, member.name, client::PatchType::kJson, ops);
  if (!patched.ok() && !patched.status().IsNotFound()) {
    return patched.status().WithContext("label " + member.name + " pc");
  }
  return Status::Ok();
}

Status DomainReconciler::WriteLease(const json& domain, const DomainSpec& spec,
                                    election::LeaseRecord& lease, bool existed) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  json object;
  if (existed) {
    if (auto cached = caches_.leases.Get(ns, name)) object = *cached;
  }
  if (!object.is_object()) {
    object = {{"metadata",
               {{"name", name},
                {"namespace", ns},
                {"labels", {{kDomainLabel, name}}},
                {"ownerReferences", json::array({OwnerReference(domain)})}}}};
  }
  lease.name = name;
  lease.lease_duration_seconds = spec.election.lease_duration_seconds;
  election::ApplyLease(lease, object);
  auto written = existed ? client_.Update(client::resources::Leases(), ns, object)
                         : client_.Create(client::resources::Leases(), ns, object);
  if (written.status().IsAlreadyExists()) {
    // A Lease our cache cannot see: it lacks the dpcm.io/domain label the cache selects
    // on. Ours (owned by this domain): label it so the cache sees it, then retry. Not
    // ours: never take it over.
    auto current = client_.Get(client::resources::Leases(), ns, name);
    if (current.ok() && OwnedByDomain(*current, name)) {
      auto labeled =
          client_.Patch(client::resources::Leases(), ns, name, client::PatchType::kJson,
                        json::array({TestResourceVersion(Meta(*current, "resourceVersion")),
                                     SetInMap(*current, "labels", kDomainLabel, name)}));
      if (!labeled.ok()) return labeled.status().WithContext("label lease " + name);
      return Status::Conflict("lease " + name + " was not in the cache; labeled it, retrying");
    }
    return Status::Conflict("a Lease named " + name +
                            " exists and is not owned by this ProcessDomain");
  }
  if (!written.ok()) return written.status().WithContext("write lease " + name);
  lease = election::ParseLease(*written);
  return Status::Ok();
}

Status DomainReconciler::MoveDc(const json& domain, const DomainSpec& spec, Observed& view,
                                const std::string& target, Memory& memory) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  const bool existed = view.lease_object != nullptr;
  const bool holder_changes = !existed || view.lease.holder != target;

  // The epoch only grows, even if the Lease was deleted behind our back: start above
  // everything this domain has shown before.
  int64_t epoch = existed ? view.lease.transitions : 0;
  epoch = std::max(epoch, domain.value("/status/epoch"_json_pointer, int64_t{0}));
  for (const auto& m : view.members) epoch = std::max(epoch, m.epoch.value_or(0));
  if (holder_changes) ++epoch;

  // 1. Nobody else may carry the DC label. The cache may lag, so ask the API which pods
  //    are labeled DC right now, and fence every suspect with a conditional write.
  std::set<std::string> suspects(view.labeled_dc.begin(), view.labeled_dc.end());
  if (!view.lease.holder.empty()) suspects.insert(view.lease.holder);
  client::ListOptions labeled;
  labeled.label_selector =
      std::string(kDomainLabel) + "=" + name + "," + kRoleLabel + "=" + kRoleDc;
  auto live = client_.List(client::resources::Pods(), ns, labeled);
  if (!live.ok()) return live.status().WithContext("list DC pods");
  if (live->contains("items") && (*live)["items"].is_array()) {
    for (const auto& pod : (*live)["items"]) suspects.insert(Meta(pod, "name"));
  }
  suspects.erase(target);
  for (const auto& suspect : suspects) {
    if (Status s = Fence(ns, suspect, epoch); !s.ok()) return s;
  }

  // 2. The Lease names the new holder (skipped when it already does).
  const std::string previous =
      !memory.failing_over_from.empty() ? memory.failing_over_from : view.lease.holder;
  election::LeaseRecord lease = view.lease;
  const auto now = clock_.WallNow();
  if (!existed || holder_changes) {
    if (holder_changes) {
      lease.transitions = epoch;
      lease.acquire_time = now;
      if (!previous.empty() && previous != target) memory.failing_over_from = previous;
    }
    lease.holder = target;
    lease.renew_time = now;
    if (Status s = WriteLease(domain, spec, lease, existed); !s.ok()) return s;
    view.lease = lease;
  }

  // 3. Only now the label.
  auto promoted = Promote(ns, name, spec, target, view.lease.transitions);
  if (!promoted.ok()) return promoted.status();
  view.labeled_dc = {target};
  const bool failed_over = !previous.empty() && previous != target;
  if (!*promoted && !failed_over) return Status::Ok();  // nothing changed: no events

  const auto reference = events::ObjectReference::Of(domain);
  const std::string epoch_text = std::to_string(view.lease.transitions);
  if (failed_over) {
    const std::string reason =
        memory.dc_failure_reason.empty() ? "rebalanced" : memory.dc_failure_reason;
    const auto took = memory.dc_failure_seen ? clock_.Now() - *memory.dc_failure_seen
                                             : Clock::Monotonic::duration::zero();
    events_.Warning(reference, "FailingOver", "DC " + previous + " is " + reason);
    events_.Normal(reference, "Demoted", previous + " is no longer DC");
    events_.Normal(
        reference, "Promoted",
        target + " is DC at epoch " + epoch_text + " (failover took " + Milliseconds(took) + ")");
    const int64_t before =
        memory.failovers.value_or(domain.value("/status/failovers"_json_pointer, int64_t{0}));
    memory.failovers = before + 1;
    memory.last_failover_time = election::FormatTime(now);
    ReportFailover(ns, name, reason, took);
    spdlog::info("{}/{}: failover {} -> {} at epoch {} ({}, took {})", ns, name, previous, target,
                 epoch_text, reason, Milliseconds(took));
  } else {
    events_.Normal(reference, previous.empty() ? "Elected" : "Promoted",
                   target + " is DC at epoch " + epoch_text);
    spdlog::info("{}/{}: {} is DC at epoch {}", ns, name, target, epoch_text);
  }
  memory.failing_over_from.clear();
  memory.dc_failure_seen.reset();
  memory.dc_failure_reason.clear();
  return Status::Ok();
}

Status DomainReconciler::EnsureService(const json& domain, const DomainSpec& spec) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  json desired = BuildDcService(domain, spec);
  const cache::ObjectPtr current = caches_.services.Get(ns, DcServiceName(name));
  if (desired.is_null()) {
    if (current != nullptr && OwnedByDomain(*current, name)) {
      client::DeleteOptions options;
      options.precondition_uid = Meta(*current, "uid");
      auto deleted =
          client_.Delete(client::resources::Services(), ns, DcServiceName(name), options);
      if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
    }
    return Status::Ok();
  }
  if (current == nullptr) {
    auto created = client_.Create(client::resources::Services(), ns, desired);
    if (!created.ok() && !created.status().IsAlreadyExists()) {
      return created.status().WithContext("create service " + DcServiceName(name));
    }
    return Status::Ok();
  }
  if (!OwnedByDomain(*current, name)) {
    return Status::Conflict("service " + DcServiceName(name) +
                            " exists and is not owned by this domain");
  }
  const json& spec_now = (*current)["spec"];
  if (spec_now.value("selector", json()) == desired["spec"]["selector"] &&
      spec_now.value("ports", json()).size() == desired["spec"]["ports"].size()) {
    bool same = true;
    for (size_t i = 0; i < desired["spec"]["ports"].size(); ++i) {
      const auto& want = desired["spec"]["ports"][i];
      const auto& have = spec_now["ports"][i];
      same = same && have.value("port", 0) == want["port"] &&
             have.value("targetPort", json()) == want["targetPort"] &&
             have.value("name", "") == want.value("name", "");
    }
    if (same) return Status::Ok();
  }
  json updated = *current;
  updated["spec"]["selector"] = desired["spec"]["selector"];
  updated["spec"]["ports"] = desired["spec"]["ports"];
  auto written = client_.Update(client::resources::Services(), ns, updated);
  if (!written.ok()) return written.status().WithContext("update service " + DcServiceName(name));
  return Status::Ok();
}

Status DomainReconciler::WriteStatus(const json& domain, json status) {
  StampConditions(status, domain.value("status", json()), election::FormatTime(clock_.WallNow()));
  if (domain.contains("status") && domain["status"] == status) return Status::Ok();
  json updated = domain;
  updated["status"] = std::move(status);
  auto written =
      client_.UpdateStatus(client::resources::ProcessDomains(), Meta(domain, "namespace"), updated);
  if (!written.ok()) return written.status().WithContext("write status");
  return Status::Ok();
}

Status DomainReconciler::CleanUp(const std::string& ns, const std::string& name) {
  // Owner references let a real cluster's garbage collector do this; dpcm does it too,
  // so that nothing is left where no garbage collector runs.
  for (const auto& pod : caches_.pods.ByLabel(ns, kDomainLabel, name)) {
    if (OwnedByDomain(*pod, name)) {
      if ((*pod)["metadata"].contains("deletionTimestamp")) continue;
      client::DeleteOptions options;
      options.precondition_uid = Meta(*pod, "uid");
      auto deleted = client_.Delete(client::resources::Pods(), ns, Meta(*pod, "name"), options);
      if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
        return deleted.status();
      }
    } else {  // adopted: give it back without our labels
      auto released = client_.Patch(client::resources::Pods(), ns, Meta(*pod, "name"),
                                    client::PatchType::kMerge,
                                    {{"metadata",
                                      {{"labels", {{kDomainLabel, nullptr}, {kRoleLabel, nullptr}}},
                                       {"annotations", {{kEpochAnnotation, nullptr}}}}}});
      if (!released.ok() && !released.status().IsNotFound()) return released.status();
    }
  }
  if (auto lease = caches_.leases.Get(ns, name); lease && OwnedByDomain(*lease, name)) {
    auto deleted = client_.Delete(client::resources::Leases(), ns, name);
    if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
  }
  if (auto service = caches_.services.Get(ns, DcServiceName(name));
      service && OwnedByDomain(*service, name)) {
    auto deleted = client_.Delete(client::resources::Services(), ns, DcServiceName(name));
    if (!deleted.ok() && !deleted.status().IsNotFound()) return deleted.status();
  }
  ForgetDomain(ns, name);
  return Status::Ok();
}

void DomainReconciler::ReportFailover(const std::string& ns, const std::string& name,
                                      const std::string& reason, Clock::Monotonic::duration took) {
  if (metrics_ == nullptr) return;
  metrics_->FailoversTotal(ns, name, reason)->Increment();
  metrics_->FailoverDuration(ns, name)->Observe(std::chrono::duration<double>(took).count());
}

void DomainReconciler::ReportState(const std::string& ns, const std::string& name,
                                   const Observed& view, int healthy) {
  if (metrics_ == nullptr) return;
  int dc_healthy = 0;
  int dc_unhealthy = 0;
  for (const auto& m : view.members) {
    if (m.is_dc()) (m.healthy() ? dc_healthy : dc_unhealthy) += 1;
  }
  const int dcs = dc_healthy + dc_unhealthy;
  const int pcs = static_cast<int>(view.members.size()) - dcs;
  const int pc_healthy = healthy - dc_healthy;
  metrics_->DomainActivePods(ns, name)->Set(dcs);
  metrics_->DomainEpoch(ns, name)->Set(static_cast<double>(view.lease.transitions));
  metrics_->DomainMembers(ns, name, kRoleDc, true)->Set(dc_healthy);
  metrics_->DomainMembers(ns, name, kRoleDc, false)->Set(dc_unhealthy);
  metrics_->DomainMembers(ns, name, kRolePc, true)->Set(pc_healthy);
  metrics_->DomainMembers(ns, name, kRolePc, false)->Set(pcs - pc_healthy);
}

void DomainReconciler::ForgetDomain(const std::string& ns, const std::string& name) {
  if (metrics_ != nullptr) metrics_->ForgetDomain(ns, name);
  if (plugins_.health != nullptr) plugins_.health->Forget(ns, name);
  if (plugins_.hooks != nullptr) plugins_.hooks->Forget(ns, name);
}

void DomainReconciler::ApplyPlugins(const std::string& ns, const std::string& domain_name,
                                    const DomainSpec& spec, Member& member) const {
  if (plugins_.health != nullptr && spec.health.kind != health::ProbeKind::kNone) {
    const health::Verdict verdict = plugins_.health->Get(ns, domain_name, member.uid);
    member.check_failed = !verdict.healthy;
    member.check_failures = verdict.consecutive_failures;
    member.check_message = verdict.message;
    if (member.healthy() && member.check_failed) member.unhealthy = Unhealthy::kHealthCheck;
  }
  if (plugins_.hooks != nullptr && spec.role_hooks.kind != rolehook::HookKind::kNone &&
      member.healthy()) {
    const auto hook = plugins_.hooks->Get(ns, domain_name, member.instance());
    if (hook.consecutive_failures >= kHookFailuresBeforeUnhealthy) {
      member.unhealthy = Unhealthy::kRoleHook;
      member.check_message = hook.message;
    }
  }
}

void DomainReconciler::UpdateHealthTargets(const std::string& ns, const std::string& name,
                                           const DomainSpec& spec, const Observed& view) {
  if (plugins_.health == nullptr) return;
  std::vector<health::Target> targets;
  if (spec.health.kind != health::ProbeKind::kNone) {
    for (const auto& m : view.members) {
      if (!m.reachable()) continue;
      targets.push_back({ns, name, m.name, m.uid, m.pod_ip, m.role.empty() ? kRolePc : m.role});
    }
  }
  plugins_.health->Update(ns, name, spec.health, targets);
}

void DomainReconciler::UpdateRoleHooks(const std::string& ns, const std::string& name,
                                       const DomainSpec& spec, const Observed& view) {
  if (plugins_.hooks == nullptr) return;
  std::vector<rolehook::Assignment> assignments;
  if (spec.role_hooks.kind != rolehook::HookKind::kNone) {
    // Only a settled DC (labeled, and the Lease holder) is told "dc".
    const std::string dc = view.labeled_dc.size() == 1 && view.lease.holder == view.labeled_dc[0]
                               ? view.labeled_dc[0]
                               : "";
    for (const auto& m : view.members) {
      if (!m.reachable()) continue;
      assignments.push_back({ns, name, m.name, m.instance(), m.pod_ip,
                             m.name == dc ? kRoleDc : kRolePc, view.lease.transitions});
    }
  }
  plugins_.hooks->Update(ns, name, spec.role_hooks, assignments);
}

void DomainReconciler::ReportPluginFailures(const json& domain, const Observed& view,
                                            Memory& memory) {
  std::set<std::string> unhealthy;
  std::set<std::string> hook_failing;
  const auto reference = events::ObjectReference::Of(domain);
  for (const auto& m : view.members) {
    if (m.check_failed) {
      unhealthy.insert(m.uid);
      if (memory.reported_unhealthy.count(m.uid) == 0) {
        events_.Warning(reference, "HealthCheckFailed",
                        m.name + " failed its health check " + std::to_string(m.check_failures) +
                            " times in a row: " + m.check_message);
      }
    }
    if (m.unhealthy == Unhealthy::kRoleHook) {
      hook_failing.insert(m.instance());
      if (memory.reported_hook_failure.count(m.instance()) == 0) {
        events_.Warning(reference, "RoleHookFailed",
                        m.name + " does not acknowledge its role: " + m.check_message);
      }
    }
  }
  memory.reported_unhealthy = std::move(unhealthy);
  memory.reported_hook_failure = std::move(hook_failing);
}

int DomainReconciler::RestartFailed(const json& domain, const DomainSpec& spec,
                                    const Observed& view, Memory& memory,
                                    std::optional<Clock::Monotonic::duration>& retry_in) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  const auto now = clock_.Now();
  const auto backoff_max = std::chrono::seconds(spec.restart.backoff_max_seconds);
  // A restart is in flight until its new pod has a verdict (or it is given up on).
  const auto settle_limit =
      std::max<Clock::Monotonic::duration>(std::chrono::minutes(2), 2 * backoff_max);
  auto member_named = [&](const std::string& pod) -> const Member* {
    for (const auto& m : view.members) {
      if (m.name == pod) return &m;
    }
    return nullptr;
  };
  int in_flight = 0;
  for (auto& [pod, record] : memory.restarts) {
    if (!record.in_flight) continue;
    const Member* m = member_named(pod);
    bool settled = now - record.last > settle_limit;
    if (m != nullptr && m->uid != record.old_uid && plugins_.health != nullptr) {
      const auto verdict = plugins_.health->Get(ns, name, m->uid);
      settled = settled || (verdict.probed && (m->healthy() || m->check_failed));
    }
    if (settled) {
      record.in_flight = false;
    } else {
      ++in_flight;
    }
  }
  auto wait_at_most = [&](Clock::Monotonic::duration d) {
    if (!retry_in || d < *retry_in) retry_in = d;
  };
  const backoff::Exponential backoff(std::chrono::seconds(spec.restart.backoff_initial_seconds),
                                     backoff_max);
  for (const auto& m : view.members) {
    if (!m.check_failed || m.terminating()) continue;
    // A failing DC is failed over first: it is restarted once another member holds
    // the role, or at once when no member is healthy enough to take it.
    const bool holds_dc =
        view.lease.holder == m.name ||
        std::find(view.labeled_dc.begin(), view.labeled_dc.end(), m.name) != view.labeled_dc.end();
    if (holds_dc && view.target.has_value()) continue;
    RestartRecord& record = memory.restarts[m.name];
    if (record.in_flight && record.old_uid == m.uid) continue;
    if (in_flight >= spec.restart.max_concurrent) {
      wait_at_most(std::chrono::seconds(1));
      continue;
    }
    if (record.count > 0 && now - record.last > 2 * backoff_max) record.count = 0;
    const auto delay = backoff.After(record.count);
    if (now < record.last + delay) {
      wait_at_most(record.last + delay - now);
      continue;
    }
    client::DeleteOptions options;
    options.precondition_uid = m.uid;
    auto deleted = client_.Delete(client::resources::Pods(), ns, m.name, options);
    if (!deleted.ok() && !deleted.status().IsNotFound() && !deleted.status().IsConflict()) {
      spdlog::warn("{}/{}: restart {}: {}", ns, name, m.name, deleted.status().ToString());
      wait_at_most(std::chrono::seconds(1));
      continue;
    }
    ++record.count;
    ++record.total;
    record.last = now;
    record.in_flight = true;
    record.old_uid = m.uid;
    ++in_flight;
    const std::string how =
        spec.managed() ? "deleted, dpcm recreates it" : "deleted for its owner to recreate";
    events_.Warning(events::ObjectReference::Of(domain), "PodRestarted",
                    m.name + " restarted (" + how + ") after " + std::to_string(m.check_failures) +
                        " failed health checks: " + m.check_message + "; restart " +
                        std::to_string(record.count) + " of this streak");
    spdlog::info("{}/{}: restarted {} ({}): {}", ns, name, m.name, how, m.check_message);
    if (metrics_ != nullptr) {
      metrics_->PodRestartsTotal(ns, name, UnhealthyReason(Unhealthy::kHealthCheck))->Increment();
    }
  }
  return in_flight;
}

Result<ReconcileResult> DomainReconciler::ReconcileDomain(const json& domain,
                                                          const DomainSpec& spec, Memory& memory) {
  const std::string ns = Meta(domain, "namespace");
  const std::string name = Meta(domain, "name");
  const int64_t generation = Generation(domain);
  std::optional<Clock::Monotonic::duration> requeue_after;
  auto requeue_within = [&](Clock::Monotonic::duration d) {
    if (!requeue_after || d < *requeue_after) requeue_after = d;
  };

  const auto pods = PodsOf(domain, spec);
  bool progressing = false;
  if (spec.managed() && !spec.paused) {
    // A pod that cannot be created (quota, admission) must not stop the election.
    if (Status s = EnsurePods(domain, spec, pods, progressing); !s.ok()) {
      spdlog::warn("{}/{}: {}", ns, name, s.ToString());
      events_.Warning(events::ObjectReference::Of(domain), "PodsFailed", s.message());
      requeue_within(std::chrono::seconds(5));
    }
  }

  Observed view;
  for (const auto& pod : pods) {
    Member member = MemberFromPod(*pod, name);
    ApplyPlugins(ns, name, spec, member);
    if (member.is_dc()) view.labeled_dc.push_back(member.name);
    const bool scaled_away =
        spec.managed() && (member.ordinal < 0 || member.ordinal >= spec.replicas);
    if (!scaled_away) view.candidates.push_back(member);
    view.members.push_back(std::move(member));
  }
  view.lease_object = caches_.leases.Get(ns, name);
  if (view.lease_object) view.lease = election::ParseLease(*view.lease_object);
  UpdateHealthTargets(ns, name, spec, view);
  ReportPluginFailures(domain, view, memory);
  int restarts_in_flight = 0;

  if (!spec.paused) {
    // Which member was DC, and is it still fit?
    const std::string old_dc = view.labeled_dc.empty() ? view.lease.holder : view.labeled_dc[0];
    const auto old_member = std::find_if(view.members.begin(), view.members.end(),
                                         [&](const Member& m) { return m.name == old_dc; });
    const bool old_is_candidate = std::any_of(view.candidates.begin(), view.candidates.end(),
                                              [&](const Member& m) { return m.name == old_dc; });
    const bool old_fit =
        old_member != view.members.end() && old_member->healthy() && old_is_candidate;
    if (!old_dc.empty() && !old_fit && !memory.dc_failure_seen) {
      memory.dc_failure_seen = clock_.Now();
      memory.dc_failure_reason = old_member == view.members.end() ? "pod-deleted"
                                 : !old_is_candidate              ? "scaled-down"
                                                     : UnhealthyReason(old_member->unhealthy);
    } else if (old_fit) {
      memory.dc_failure_seen.reset();
      memory.dc_failure_reason.clear();
    }

    view.target = ChooseDc(view.candidates, view.lease.holder);
    if (view.target && *view.target != old_dc && !old_dc.empty() && memory.dc_failure_seen &&
        spec.election.failover_delay_seconds > 0) {
      const auto waited = clock_.Now() - *memory.dc_failure_seen;
      const auto delay = std::chrono::seconds(spec.election.failover_delay_seconds);
      if (waited < delay) {
        view.waiting_for_delay = true;
        requeue_within(delay - waited);
      }
    }

    if (view.target && !view.waiting_for_delay) {
      const bool settled = view.labeled_dc.size() == 1 && view.labeled_dc[0] == *view.target &&
                           view.lease_object != nullptr && view.lease.holder == *view.target;
      // Settled: nothing to write. Label-only domains are not renewed on a timer: nobody
      // competes for their Lease (only the operator leader writes it), so its holder and
      // epoch are the whole record, and a periodic write per domain would spend the API
      // budget that failovers need (200 writes/s for 1,000 domains at the defaults).
      if (!settled) {
        if (Status s = MoveDc(domain, spec, view, *view.target, memory); !s.ok()) return s;
      }
    }

    // Every other live member is a PC.
    bool relabel_failed = false;
    for (const auto& member : view.members) {
      if (view.target && member.name == *view.target) continue;
      if (member.role == kRolePc || member.terminating() || member.is_dc()) continue;
      if (Status s = LabelPc(ns, name, member); !s.ok()) {
        spdlog::debug("{}/{}: {}", ns, name, s.ToString());
        relabel_failed = true;
      }
    }
    if (relabel_failed) requeue_within(kRetrySoon);
    UpdateRoleHooks(ns, name, spec, view);

    std::optional<Clock::Monotonic::duration> restart_retry;
    restarts_in_flight = RestartFailed(domain, spec, view, memory, restart_retry);
    if (restart_retry) requeue_within(*restart_retry);

    if (Status s = EnsureService(domain, spec); !s.ok()) {
      if (memory.service_error != s.message()) {
        memory.service_error = s.message();
        events_.Warning(events::ObjectReference::Of(domain), "ServiceFailed", s.message());
      }
      requeue_within(std::chrono::seconds(10));
    } else {
      memory.service_error.clear();
    }
  }

  // Status: what a user sees in `kubectl get pd`.
  const std::string dc = view.labeled_dc.size() == 1 ? view.labeled_dc[0] : "";
  const auto dc_member = std::find_if(view.members.begin(), view.members.end(),
                                      [&](const Member& m) { return m.name == dc; });
  const bool dc_healthy = dc_member != view.members.end() && dc_member->healthy();
  int healthy = 0;
  json members = json::array();
  for (const auto& m : view.members) {
    healthy += m.healthy() ? 1 : 0;
    const bool ready = m.healthy() || m.unhealthy == Unhealthy::kHealthCheck ||
                       m.unhealthy == Unhealthy::kRoleHook;
    const auto restarted = memory.restarts.find(m.name);
    const int operator_restarts = restarted == memory.restarts.end() ? 0 : restarted->second.total;
    std::string message = m.healthy() ? "" : UnhealthyReason(m.unhealthy);
    if (!m.check_message.empty()) {
      message += (message.empty() ? "" : ": ") + m.check_message;
    }
    members.push_back({{"name", m.name},
                       {"role", m.role.empty() ? kRolePc : m.role},
                       {"ready", ready},
                       {"healthy", m.healthy()},
                       {"consecutiveFailures", m.check_failures},
                       {"restarts", m.restarts + operator_restarts},
                       {"message", message}});
  }
  const int desired = spec.managed() ? spec.replicas : static_cast<int>(view.members.size());
  std::string phase;
  if (spec.paused) {
    phase = "Paused";
  } else if (dc_healthy) {
    phase = "Running";
  } else if (!dc.empty() || view.waiting_for_delay) {
    phase = healthy > 0 ? "FailingOver" : "Degraded";
  } else {
    phase = view.members.empty() || progressing ? "Pending" : "Degraded";
  }
  json status = {{"observedGeneration", generation},
                 {"phase", phase},
                 {"activePod", dc},
                 {"ready", std::to_string(healthy) + "/" + std::to_string(desired)},
                 {"epoch", view.lease.transitions},
                 {"failovers", memory.failovers.value_or(
                                   domain.value("/status/failovers"_json_pointer, int64_t{0}))},
                 {"members", members}};
  const std::string last_failover =
      !memory.last_failover_time.empty()
          ? memory.last_failover_time
          : domain.value("/status/lastFailoverTime"_json_pointer, std::string());
  if (!last_failover.empty()) status["lastFailoverTime"] = last_failover;
  status["conditions"] = json::array(
      {Condition("Ready", dc_healthy, dc_healthy ? "DcElected" : "NoHealthyDc",
                 dc_healthy ? dc + " is DC" : "no healthy DC", generation),
       Condition("Degraded", healthy < desired,
                 healthy == 0 && desired > 0 ? "NoHealthyMembers"
                 : healthy < desired         ? "MembersUnhealthy"
                                             : "AllMembersHealthy",
                 std::to_string(healthy) + " of " + std::to_string(desired) + " members healthy" +
                     (restarts_in_flight > 0
                          ? "; " + std::to_string(restarts_in_flight) + " restarting (at most " +
                                std::to_string(spec.restart.max_concurrent) + " at a time)"
                          : ""),
                 generation),
       Condition("Progressing", progressing || view.waiting_for_delay || restarts_in_flight > 0,
                 view.waiting_for_delay   ? "FailoverDelay"
                 : progressing            ? "Scaling"
                 : restarts_in_flight > 0 ? "Restarting"
                                          : "Stable",
                 "", generation)});
  ReportState(ns, name, view, healthy);
  if (Status s = WriteStatus(domain, std::move(status)); !s.ok()) {
    if (!s.IsConflict()) return s;
    requeue_within(kRetrySoon);  // the domain changed meanwhile: look again
  }
  if (progressing) requeue_within(std::chrono::seconds(5));
  if (requeue_after) {
    // Rounded up: a wait rounded down fires early and finds its deadline not quite
    // reached.
    return ReconcileResult::RequeueAfter(
        std::chrono::ceil<std::chrono::milliseconds>(*requeue_after));
  }
  return ReconcileResult::Done();
}

}  // namespace dpcm::domain
