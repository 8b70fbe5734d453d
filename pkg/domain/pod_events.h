// Maps a pod event to the domain it concerns, and tells a DC's failure apart from housekeeping.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>

#include "pkg/controller/controller.h"

namespace dpcm::domain {

// The domain an object (a pod, a Lease, a Service) belongs to: its dpcm.io/domain label,
// which every managed member, adopted pod and owned object carries (adopt-mode candidates not
// labeled yet reach their domain through AdoptionWatches instead). A lookup, not a scan: the cost
// of an event does not grow with the number of domains. nullopt for an object without the label.
std::optional<controller::Request> DomainOf(const nlohmann::json& object);

// True when `pod` is labeled DC and shows that its DC has stopped being one: deleted
// (`gone`: a DELETE event) or terminating, its container exited or not running, its
// phase finished, or not Ready. Such an event is handled before any other queued work.
bool SignalsDcFailure(const nlohmann::json& pod, bool gone);

}  // namespace dpcm::domain
