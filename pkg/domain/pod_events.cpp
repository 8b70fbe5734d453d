#include "pkg/domain/pod_events.h"

#include <string>

#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

// The string at `pointer`, or "" when absent or not a string.
std::string StringAt(const json& object, const json::json_pointer& pointer) {
  if (!object.is_object() || !object.contains(pointer)) return "";
  const json& value = object.at(pointer);
  return value.is_string() ? value.get<std::string>() : "";
}

}  // namespace

std::optional<controller::Request> DomainOf(const json& object) {
  const std::string ns = StringAt(object, "/metadata/namespace"_json_pointer);
  const std::string domain = StringAt(object, "/metadata/labels/dpcm.io~1domain"_json_pointer);
  if (domain.empty()) return std::nullopt;
  return controller::Request{ns, domain};
}

bool SignalsDcFailure(const json& pod, bool gone) {
  if (StringAt(pod, "/metadata/labels/dpcm.io~1role"_json_pointer) != kRoleDc) return false;
  if (gone) return true;
  const auto domain = DomainOf(pod);
  return !MemberFromPod(pod, domain ? domain->name : "").healthy();
}

}  // namespace dpcm::domain
