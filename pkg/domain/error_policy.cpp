#include "pkg/domain/error_policy.h"

namespace dpcm::domain {

using namespace std::chrono_literals;
using Retry = ErrorAction::Retry;

ErrorAction ActionFor(Step step, const Status& error) {
  const bool lost_race = error.IsConflict() || error.IsInvalid() || error.IsNotFound();
  switch (step) {
    case Step::kHandover:
      if (lost_race) return {Retry::kAfter, 200ms, "", ""};
      if (error.IsAlreadyExists()) {
        return {Retry::kRateLimited, 0ms, "LeaseNotOwned", "LeaseNotOwned"};
      }
      return {Retry::kRateLimited, 0ms, "HandoverFailed", "HandoverFailed"};
    case Step::kPods:
      return {Retry::kAfter, 5s, "PodsFailed", "PodsFailed"};
    case Step::kService:
      return {Retry::kAfter, 10s, "ServiceFailed", "ServiceFailed"};
    case Step::kRelabel:
      return {Retry::kAfter, 200ms, "", ""};
    case Step::kRestart:
      return {Retry::kAfter, 1s, "", ""};
    case Step::kStatus:
      if (lost_race) return {Retry::kAfter, 200ms, "", ""};
      return {Retry::kRateLimited, 0ms, "", ""};
  }
  return {Retry::kRateLimited, 0ms, "", ""};
}

}  // namespace dpcm::domain
