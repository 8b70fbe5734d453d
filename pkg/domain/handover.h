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
  nlohmann::json owner;               // the ownerReferences entry for a Lease created here
  std::string target;                 // the pod to make DC
  std::string target_instance;        // its Member::instance() as observed
  std::vector<std::string> suspects;  // pods seen holding the role (labeled DC, Lease holder)
  nlohmann::json lease;               // the Lease as observed; null when there was none
  int64_t epoch_floor = 0;            // the highest epoch the domain has shown
  bool new_epoch = false;             // write the Lease at a new epoch even for the same holder
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
//   1. a live LIST of the domain's pods adds those labeled DC to the suspects and their
//      epochs to the floor; every suspect other than the target is read fresh and fenced: labeled
//      pc, annotated dpcm.io/fenced-epoch (its dpcm.io/epoch removed). The write changes its
//      resourceVersion, so a promote of that pod still in flight from an earlier attempt can no
//      longer apply;
//   2. the Lease names the target, its instance (kHolderInstanceAnnotation) and the
//      epoch: leaseTransitions + 1 when the holder or its incarnation changes, never
//      below epoch_floor + 1 (the epoch never goes back, even for a recreated Lease);
//   3. the target, read fresh, still healthy, still the same instance and not fenced at
//      this epoch or later (a concurrent handover that took the Lease on fenced it
//      first), is labeled dc and annotated with the epoch.
// "Read fresh": the first attempt of each pod write starts from the pod as the LIST of step 1
// returned it, later attempts from a GET. Both are judged the same way, and the write tests
// the resourceVersion read, so it applies only to exactly the pod that was judged: a LIST
// answer is as good as a GET until the pod changes, and then the write fails and the pod is
// read again. A failover thus takes four round trips (LIST, fence, Lease, promote), not six.
// A pod that changed between read and write is read again (a few times); any other
// failure aborts the handover where it is, which leaves at most one DC label and an
// epoch that never went back, so the next attempt can start from the beginning.
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
  // The domain's pods as step 1 listed them, by name.
  using Listed = std::map<std::string, nlohmann::json>;
  static const nlohmann::json* FromList(const Listed& listed, const std::string& name);
  // `listed` when given (a first attempt), else a GET.
  Result<nlohmann::json> ReadPod(const std::string& ns, const std::string& name,
                                 const nlohmann::json* listed) const;

  Status Fence(const std::string& ns, const std::string& pod, int64_t epoch,
               const Listed& listed) const;
  Status FenceOnce(const std::string& ns, const std::string& pod, int64_t epoch,
                   const nlohmann::json* listed) const;
  Result<nlohmann::json> WriteLease(const HandoverRequest& request, int64_t epoch) const;
  Result<bool> Promote(const HandoverRequest& request, int64_t epoch, const Listed& listed) const;
  Result<bool> PromoteOnce(const HandoverRequest& request, int64_t epoch,
                           const nlohmann::json* listed) const;

  PodLeaseApi& api_;
  FreshMember judge_;
  Clock& clock_;
};

}  // namespace dpcm::domain
