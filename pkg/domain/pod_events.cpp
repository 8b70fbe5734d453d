#include "pkg/domain/pod_events.h"

#include <string>

#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"
#include "pkg/object/object.h"

namespace dpcm::domain {
using nlohmann::json;

std::optional<controller::Request> DomainOf(const json& object) {
  const std::string ns = object::Meta(object, "namespace");
  const std::string domain = object::Label(object, kDomainLabel);
  if (domain.empty()) return std::nullopt;
  return controller::Request{ns, domain};
}

bool SignalsDcFailure(const json& pod, bool gone, const json* before) {
  if (object::Label(pod, kRoleLabel) != kRoleDc) return false;
  if (gone) return true;
  const auto domain = DomainOf(pod);
  const std::string name = domain ? domain->name : "";
  const Member now = MemberFromPod(pod, name);
  if (!now.healthy()) return true;
  return before != nullptr && MemberFromPod(*before, name).restarts < now.restarts;
}

}  // namespace dpcm::domain
