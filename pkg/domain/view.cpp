#include "pkg/domain/view.h"

#include <algorithm>

#include "pkg/object/object.h"

namespace dpcm::domain {

void ApplyVerdict(const PluginVerdict& verdict, Member& member) {
  member.probed = verdict.probed;
  member.check_failed = verdict.check_failed;
  member.check_failures = verdict.check_failures;
  member.check_message = verdict.check_message;
  if (member.healthy() && member.check_failed) member.unhealthy = Unhealthy::kHealthCheck;
  if (member.healthy() && verdict.hook_failures >= kHookFailuresBeforeUnhealthy) {
    member.unhealthy = Unhealthy::kRoleHook;
    member.check_message = verdict.hook_message;
  }
}

const Member* DomainView::Find(const std::string& pod) const {
  const auto it =
      std::find_if(members.begin(), members.end(), [&](const Member& m) { return m.name == pod; });
  return it == members.end() ? nullptr : &*it;
}

bool DomainView::IsCandidate(const std::string& pod) const {
  return std::any_of(candidates.begin(), candidates.end(),
                     [&](const Member& m) { return m.name == pod; });
}

namespace {

CurrentDc FindCurrentDc(const DomainView& view) {
  CurrentDc dc;
  dc.name = view.lease.holder;
  if (dc.name.empty() && !view.labeled_dc.empty()) dc.name = view.labeled_dc.front();
  if (dc.name.empty()) return dc;
  dc.holds_lease = view.has_lease() && view.lease.holder == dc.name;
  const Member* member = view.Find(dc.name);
  if (member == nullptr) {
    dc.unfit_reason = UnhealthyReason(Unhealthy::kDeleted);
    return dc;
  }
  dc.exists = true;
  dc.labeled = member->is_dc();
  dc.same_incarnation =
      !dc.holds_lease || view.holder_instance.empty() || view.holder_instance == member->instance();
  dc.epoch_current = member->epoch.has_value() && *member->epoch == view.lease.transitions;
  if (!member->healthy()) {
    dc.unfit_reason = UnhealthyReason(member->unhealthy);
  } else if (!view.IsCandidate(dc.name)) {
    dc.unfit_reason = kReasonScaledDown;
  } else if (!dc.same_incarnation) {
    dc.unfit_reason = kReasonRestarted;
  }
  return dc;
}

}  // namespace

DomainView Observe(const nlohmann::json& domain, const DomainSpec& spec,
                   const std::vector<cache::ObjectPtr>& pods, const cache::ObjectPtr& lease,
                   const VerdictLookup& verdicts) {
  DomainView view;
  view.ns = object::Meta(domain, "namespace");
  view.name = object::Meta(domain, "name");
  view.generation = object::Generation(domain);
  view.pods = pods;
  for (const auto& pod : pods) {
    Member member = MemberFromPod(*pod, view.name);
    if (verdicts) ApplyVerdict(verdicts(member), member);
    view.members.push_back(std::move(member));
  }
  std::sort(view.members.begin(), view.members.end(),
            [](const Member& a, const Member& b) { return a.name < b.name; });
  for (const auto& member : view.members) {
    if (member.is_dc()) view.labeled_dc.push_back(member.name);
    const bool scaled_away =
        spec.managed() && (member.ordinal < 0 || member.ordinal >= spec.replicas);
    if (!scaled_away) view.candidates.push_back(member);
  }
  if (lease != nullptr) {
    view.lease_object = *lease;
    view.lease = election::ParseLease(*lease);
    view.holder_instance = object::Annotation(*lease, kHolderInstanceAnnotation);
  }
  view.epoch_floor = view.lease.transitions;
  const auto status_epoch = domain.value("/status/epoch"_json_pointer, nlohmann::json());
  if (status_epoch.is_number_integer()) {
    view.epoch_floor = std::max(view.epoch_floor, status_epoch.get<int64_t>());
  }
  for (const auto& m : view.members) {
    view.epoch_floor =
        std::max({view.epoch_floor, m.epoch.value_or(0), m.fenced_epoch.value_or(0)});
  }
  view.dc = FindCurrentDc(view);
  return view;
}

}  // namespace dpcm::domain
