// Moves the DC role safely (DESIGN.md "Safety"): fence every other suspect, then write the Lease,
// then promote.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pkg/clock/clock.h"
#include "pkg/domain/decide.h"
#include "pkg/domain/member.h"
#include "pkg/domain/pod_lease_api.h"
#include "pkg/domain/view.h"
#include "pkg/status/status.h"

namespace dpcm::domain {

// What the reconciler observed and decided; everything is checked again against fresh
// reads and conditional writes, so a stale view can delay a handover but not break it.
struct HandoverRequest {
  std::string ns;
  std::string domain;
  nlohmann::json owner;                // the ownerReferences entry for a Lease created here
  std::string target;                  // the pod to make DC
  std::string target_instance;         // its Member::instance() as observed
  std::vector<std::string> suspects;   // pods seen holding the role (labeled DC, Lease holder)
  std::vector<cache::ObjectPtr> pods;  // the domain's pods as observed (maybe stale)
  nlohmann::json lease;                // the Lease as observed; null when there was none
  int64_t epoch_floor = 0;             // the highest epoch the domain has shown
  bool new_epoch = false;              // write the Lease at a new epoch even for the same holder
  int lease_duration_seconds = 15;
};

struct HandoverResult {
  int64_t epoch = 0;
  nlohmann::json lease;  // the Lease afterwards (as written, or as it was)
  bool lease_written = false;
  std::string lease_moved_from;  // the previous holder, when the Lease changed hands
  bool promoted = false;         // the label was written (false: already DC at this epoch)
  // When each step ended (the flight recorder); unset for a step not reached.
  std::optional<Clock::Monotonic::time_point> fenced_at;
  std::optional<Clock::Monotonic::time_point> lease_written_at;
  std::optional<Clock::Monotonic::time_point> labeled_at;
};

// The request that carries out `move` from `view`: suspects are the members labeled DC
// and the Lease holder; `owner` is the domain's ownerReferences entry.
HandoverRequest RequestFor(const DomainView& view, const DcMove& move, const nlohmann::json& owner,
                           int lease_duration_seconds);

// Classifies a freshly read pod, with its plugin verdicts applied.
using FreshMember = std::function<Member(const nlohmann::json& pod)>;

// The protocol, each step a conditional write (resourceVersion precondition):
//   1. every suspect other than the target is fenced: labeled pc, annotated
//      dpcm.io/fenced-epoch (its dpcm.io/epoch removed). The write changes its
//      resourceVersion, so a promote of that pod still in flight from an earlier attempt can
//      no longer apply. Who may carry the DC label besides the suspects the view shows:
//      - with a Lease that names a holder, nobody. The Lease is replaced conditionally on
//        the resourceVersion seen, so the write in step 2 succeeds only if the Lease is
//        still the one seen; every earlier move wrote it the same way and first fenced the
//        holder it replaced (the holder as seen is always a suspect), and only a move
//        labels a pod DC, after writing the Lease for it. So the only pod that can carry
//        the label unseen is the holder as seen; a promote of an earlier holder still in
//        flight fails its resourceVersion test against that holder's fence. No read needed;
//      - with no Lease (the first election, or one deleted behind our back) or one without
//        a holder, that chain is broken: a live LIST of the domain's pods adds those labeled
//        DC to the suspects and their epochs to the floor (a recreated Lease comes back
//        above every epoch a pod shows).
//   2. the Lease names the target, its instance (kHolderInstanceAnnotation) and the
//      epoch: leaseTransitions + 1 when the holder or its incarnation changes, never
//      below epoch_floor + 1 (the epoch never goes back, even for a recreated Lease);
//   3. the target, still healthy, still the same instance and not fenced at this epoch or
//      later (a concurrent handover that took the Lease on fenced it first), is labeled dc
//      and annotated with the epoch.
// Each pod write is a JSON patch that tests the resourceVersion of the pod it was judged
// on, so it applies only to exactly that pod. The first attempt starts from the pod as
// listed in step 1, or as the view saw it (the cache: a failover needs three round
// trips, fence, Lease, promote); a pod that changed since fails the test and is read
// fresh (GET) and judged again, a few times. Only a fresh read may skip a fence (a pod
// already fenced at this epoch); a promotion is skipped for a target DC at this epoch as
// read either way (a skipped write never makes a second DC). Any other failure aborts the
// handover where it is, which leaves at most one DC label and an epoch that never went
// back, so the next attempt can start from the beginning.
// Errors: Conflict/Invalid (the world changed: retry soon), AlreadyExists (a Lease of
// that name exists that this domain does not own: never taken over), else the API error.
class DcHandover {
 public:
  // `api` must outlive the handover.
  DcHandover(PodLeaseApi& api, FreshMember judge, Clock& clock);

  // Fills `progress` as far as the handover got (a Lease written before the promote
  // failed is reported), and returns the first error.
  Status Run(const HandoverRequest& request, HandoverResult& progress) const;

  // Labels `pod` (as observed) pc and with the domain label, conditional on its
  // resourceVersion. A pod that is gone is not an error.
  Status LabelPc(const std::string& ns, const std::string& domain, const nlohmann::json& pod) const;

 private:
  // The pods the first attempt of each pod write starts from, by name: a live LIST's
  // (fresh) or the view's (maybe stale).
  struct KnownPods {
    std::map<std::string, cache::ObjectPtr> pods;
    bool fresh = false;
  };
  // A pod to judge and write, and whether it is a fresh read.
  struct PodRead {
    Result<nlohmann::json> pod;
    bool fresh = true;
  };
  // On a first attempt the known pod if there is one, else (and on later attempts) a GET.
  PodRead ReadPod(const std::string& ns, const std::string& name, const KnownPods& known,
                  bool first) const;

  Status Fence(const std::string& ns, const std::string& pod, int64_t epoch,
               const KnownPods& known) const;
  Status FenceOnce(const std::string& ns, const std::string& pod, int64_t epoch,
                   const PodRead& read) const;
  Result<nlohmann::json> WriteLease(const HandoverRequest& request, int64_t epoch) const;
  Result<bool> Promote(const HandoverRequest& request, int64_t epoch, const KnownPods& known) const;
  Result<bool> PromoteOnce(const HandoverRequest& request, int64_t epoch,
                           const PodRead& read) const;

  PodLeaseApi& api_;
  FreshMember judge_;
  Clock& clock_;
};

}  // namespace dpcm::domain
