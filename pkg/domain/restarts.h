// Restarts of members whose health plugin fails: the bookkeeping kept in the domain's status, and
// the pure plan.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"
#include "pkg/election/lease_record.h"

namespace dpcm::domain {

// The operator's restarts of one member (by pod name). Kept in status.memberRestarts, so
// that a new operator leader continues the back-off, the concurrency limit and the
// counts exactly where the old one stopped.
struct RestartRecord {
  int streak = 0;  // restarts in the current failing streak (drives the back-off)
  int total = 0;   // restarts by the operator, ever
  std::optional<election::WallTime> last;  // when the last restart was issued
  // The uid of the pod the last restart deletes, until its replacement has a health
  // verdict: the restart is "in flight" and counts against spec.restart.maxConcurrent.
  // Written before the delete is sent (write-ahead), so no leader change can lose it.
  std::string pending_uid;
};
using RestartBook = std::map<std::string, RestartRecord>;

// Reads status.memberRestarts; malformed entries are skipped.
RestartBook ParseRestartBook(const nlohmann::json& domain);
// The status.memberRestarts array for `book` (by name, so the status is stable).
nlohmann::json RestartBookJson(const RestartBook& book);

// A member to restart (its pod deleted with a uid precondition).
struct RestartAction {
  std::string pod;
  std::string uid;
  int streak = 0;      // this restart's number in its streak
  bool retry = false;  // an earlier restart of this pod was recorded but not yet done
  int failures = 0;    // the health plugin's failures in a row
  std::string message;
};

struct RestartPlan {
  std::vector<RestartAction> restarts;
  RestartBook book;   // the bookkeeping with `restarts` recorded as in flight
  int in_flight = 0;  // restarts in flight, including the new ones
  // Set when a back-off or the concurrency limit holds a restart back: look again then.
  std::optional<std::chrono::steady_clock::duration> retry_in;
};

// Which members to restart now. A member is restarted when its health plugin failed
// and it is not terminating, except the DC while another member is to take its role
// first (`keep` names it; it is restarted once the role has moved, or at once when no
// member is fit to take it). Per-member exponential back-off (spec.restart; a streak
// ends after 2 × maxSeconds without a restart), at most maxConcurrent in flight. A
// restart stays in flight until the replacement pod has a verdict or 2 × maxSeconds
// (at least 2 minutes) have passed. Pure.
RestartPlan PlanRestarts(const DomainView& view, const DomainSpec& spec, const RestartBook& book,
                         const std::string& keep, election::WallTime now);

}  // namespace dpcm::domain
