// What to do about a domain, as a pure function of what was observed: the DC, pods to create or
// delete, relabels, restarts.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "pkg/domain/restarts.h"
#include "pkg/domain/spec.h"
#include "pkg/domain/view.h"
#include "pkg/election/lease_record.h"

namespace dpcm::domain {

using SteadyTime = std::chrono::steady_clock::time_point;
using SteadyDuration = std::chrono::steady_clock::duration;

// What the reconciler carries from one reconcile of a domain to the next.
struct Bookkeeping {
  // When the current DC was first seen unfit (memory only: it times failoverDelaySeconds
  // and the failover-duration metric; a new operator leader starts it again, which can
  // only make a delayed failover later, never earlier).
  std::optional<SteadyTime> dc_failure_seen;
  RestartBook restarts;  // from status.memberRestarts
};

// A change of the DC role, carried out by DcHandover.
struct DcMove {
  std::string target;
  std::string previous;  // the current DC losing the role; "" when none held it
  std::string reason;    // why `previous` loses it ("pod-deleted", ...); "" when none did
  // The Lease must be written at a new epoch: the holder changes, the holder's process
  // is a new incarnation, or the Lease is missing or behind the domain's epoch.
  bool new_epoch = false;
};

struct Plan {
  std::optional<DcMove> move;      // nullopt: the DC role stays where it is
  std::string dc;                  // who holds the role once the plan is carried out ("" none)
  bool waiting_for_delay = false;  // the DC is unfit, failoverDelaySeconds not over yet
  std::optional<SteadyTime> dc_failure_seen;  // Bookkeeping for the next reconcile
  std::vector<std::string> relabel_pc;        // live members to label pc
  std::vector<int> create_ordinals;           // managed pods to create
  std::vector<std::string> scale_down;        // managed pods beyond replicas to delete
  bool scaling = false;                       // pods created or deleted, or waiting to be
  RestartPlan restarts;
  std::optional<SteadyDuration> requeue_after;

  // Asks to look again within `d` (keeps the earliest).
  void RequeueWithin(SteadyDuration d);
};

// The member that should hold the DC role: the current DC while it is fit; else the fit
// candidate with the lowest ordinal, then name (a stable order, so every reconcile
// agrees); else the current DC itself if it is healthy but was restarted (it is elected
// again, at a new epoch); nullopt when no member is healthy.
std::optional<std::string> ChooseDc(const DomainView& view);

// Decides everything a reconcile does, from the view, the spec and the bookkeeping,
// with time given (`now` monotonic, `wall_now` for what status records). Pure. A paused
// domain plans nothing but keeps the failure clock.
Plan Decide(const DomainView& view, const DomainSpec& spec, const Bookkeeping& book, SteadyTime now,
            election::WallTime wall_now);

}  // namespace dpcm::domain
