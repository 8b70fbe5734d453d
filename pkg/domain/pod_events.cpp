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

bool SignalsDcFailure(const json& pod, bool gone) {
  if (object::Label(pod, kRoleLabel) != kRoleDc) return false;
  if (gone) return true;
  const auto domain = DomainOf(pod);
  return !MemberFromPod(pod, domain ? domain->name : "").healthy();
}

}  // namespace dpcm::domain
