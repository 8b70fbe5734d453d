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
// phase finished, or not Ready; or, given `before` (the pod as the previous event showed
// it), its application containers restarted since: a DC restarted in place is running and
// Ready again but has lost its state, and the reconciler fails it over (view.h,
// kReasonRestarted). Such an event is handled before any other queued work. (The 1,000 x
// 3 scale bench at qps 200 saw the exit reported only with the restart, 33 s late; as a
// plain event it then waited behind the convergence's work and no new DC came in 30 s.)
bool SignalsDcFailure(const nlohmann::json& pod, bool gone, const nlohmann::json* before = nullptr);

}  // namespace dpcm::domain
