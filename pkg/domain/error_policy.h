// One table from a failed step of a reconcile to what happens next: when to retry, which Degraded
// reason, which Event.
#pragma once

#include <chrono>
#include <string>

#include "pkg/status/status.h"

namespace dpcm::domain {

// The steps of a reconcile that write to the API.
enum class Step { kPods, kHandover, kRelabel, kService, kRestart, kStatus };

struct ErrorAction {
  enum class Retry {
    kAfter,        // requeue after `after` (the world changed, or a known wait)
    kRateLimited,  // return the error: the controller's per-domain back-off retries
  };
  Retry retry = Retry::kAfter;
  std::chrono::milliseconds after{0};
  std::string degraded_reason;  // the Degraded condition's reason; "" when not a cause
  std::string event_reason;     // a Warning Event's reason; "" for none (logged only)
};

// The action for `error` (not OK) at `step`:
//   handover lost a race (Conflict, Invalid, NotFound) → after 200 ms, nothing reported;
//   handover blocked by a Lease another owner holds (AlreadyExists) → rate-limited,
//     Degraded/LeaseNotOwned + Event;
//   handover failed otherwise → rate-limited, Degraded/HandoverFailed + Event;
//   pods cannot be created or deleted → after 5 s, Degraded/PodsFailed + Event;
//   the -dc Service cannot be written → after 10 s, Degraded/ServiceFailed + Event;
//   a pc relabel lost a race → after 200 ms; a restart failed → after 1 s (logged);
//   the status lost a race → after 200 ms; else rate-limited.
ErrorAction ActionFor(Step step, const Status& error);

}  // namespace dpcm::domain
