// DcHandover against an in-memory API with real resourceVersion semantics: each step, every fault
// between two writes, a concurrent writer, and seeded random interleavings.
#include <doctest/doctest.h>

#include <optional>
#include <random>
#include <string>
#include <vector>

#include "pkg/domain/decide.h"
#include "pkg/domain/handover.h"
#include "pkg/domain/owned_objects.h"
#include "pkg/object/object.h"
#include "tests/support/domain_objects.h"
#include "tests/support/fake_pod_lease_api.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;
using testing::DomainObject;
using testing::FakePodLeaseApi;
using testing::LeaseObject;
using testing::MemberPod;
using testing::PodShape;

const json kDomain = DomainObject("web", 3);

// Checks DESIGN.md's invariants at every resourceVersion the fake serves.
struct Invariants {
  int64_t max_epoch = 0;
  std::vector<std::string> violations;

  void Check(const FakePodLeaseApi& api) {
    std::vector<std::string> dcs;
    for (const auto& pod : api.Pods()) {
      if (object::HasLabel(pod, kRoleLabel, kRoleDc)) dcs.push_back(object::Meta(pod, "name"));
    }
    if (dcs.size() > 1) violations.push_back("two DC labels: " + dcs[0] + ", " + dcs[1]);
    const auto lease = api.Lease("web");
    if (!lease) return;
    const auto record = election::ParseLease(*lease);
    if (record.transitions < max_epoch) {
      violations.push_back("the epoch went back to " + std::to_string(record.transitions));
    }
    max_epoch = std::max(max_epoch, record.transitions);
    if (dcs.size() == 1 && record.holder != dcs[0]) {
      violations.push_back("DC label on " + dcs[0] + " but the Lease names " + record.holder);
    }
  }
};

struct World {
  FakePodLeaseApi api;
  Invariants invariants;
  int64_t status_epoch = 0;  // status.epoch as the operator last wrote it

  explicit World(int members = 3) {
    for (int i = 0; i < members; ++i) api.PutPod(MemberPod("web", i));
    api.SetWriteObserver([this](const FakePodLeaseApi& a) { invariants.Check(a); });
  }
  DomainView View() const { return ViewOf(api.Pods(), api.Lease("web")); }
  // The view of a cache that shows `pod_objects` and `lease`.
  DomainView ViewOf(const std::vector<json>& pod_objects, const std::optional<json>& lease) const {
    json domain = kDomain;
    domain["status"] = {{"epoch", status_epoch}};
    std::vector<cache::ObjectPtr> pods;
    for (const auto& pod : pod_objects) pods.push_back(std::make_shared<const json>(pod));
    SpecError error;
    return Observe(domain, *ParseSpec(domain, &error), pods,
                   lease ? std::make_shared<const json>(*lease) : nullptr, {});
  }
  // One reconcile's DC step from `view`: Decide, then the handover. OK when nothing moved.
  Status Step(const DomainView& view, HandoverResult* result = nullptr) {
    SpecError error;
    const DomainSpec spec = *ParseSpec(kDomain, &error);
    const Plan plan = Decide(view, spec, {}, {}, {});
    if (!plan.move) return Status::Ok();
    FakeClockHolder clock;
    const DcHandover handover(
        api, [](const json& pod) { return MemberFromPod(pod, "web"); }, clock.clock);
    HandoverResult done;
    const Status status =
        handover.Run(RequestFor(view, *plan.move, OwnerReference(kDomain), 15), done);
    // The reconciler writes the Lease's epoch to the status after every handover.
    if (done.lease_written) status_epoch = std::max(status_epoch, done.epoch);
    if (result != nullptr) *result = done;
    return status;
  }
  std::vector<std::string> LabeledDc() const {
    std::vector<std::string> dcs;
    for (const auto& pod : api.Pods()) {
      if (object::HasLabel(pod, kRoleLabel, kRoleDc)) dcs.push_back(object::Meta(pod, "name"));
    }
    return dcs;
  }
  void SetReady(const std::string& name, bool ready) {
    json pod = *api.Pod(name);
    pod["status"]["conditions"][0]["status"] = ready ? "True" : "False";
    pod["status"]["containerStatuses"][0]["ready"] = ready;
    api.PutPod(pod);
  }

  struct FakeClockHolder {
    FakeClock clock;
  };
};

int64_t LeaseEpoch(const World& world) {
  return election::ParseLease(*world.api.Lease("web")).transitions;
}

TEST_CASE("DcHandover: the first election creates the Lease at epoch 1, then labels") {
  World world;
  HandoverResult done;
  REQUIRE(world.Step(world.View(), &done).ok());
  CHECK(world.api.reads() == 1);  // the LIST; the promotion starts from the listed pod
  CHECK(done.lease_written);
  CHECK(done.promoted);
  CHECK(done.lease_moved_from.empty());
  CHECK(world.LabeledDc() == std::vector<std::string>{"web-0"});
  const json lease = *world.api.Lease("web");
  CHECK(LeaseEpoch(world) == 1);
  CHECK(object::Annotation(lease, kHolderInstanceAnnotation) == "uid-web-0/0");
  CHECK(object::Annotation(*world.api.Pod("web-0"), kEpochAnnotation) == "1");
  CHECK(world.invariants.violations.empty());
  // Settled: a second reconcile writes nothing.
  const int writes = world.api.writes();
  REQUIRE(world.Step(world.View()).ok());
  CHECK(world.api.writes() == writes);
}

TEST_CASE("DcHandover: a failover fences the old DC, moves the Lease, then promotes") {
  World world;
  REQUIRE(world.Step(world.View()).ok());
  world.SetReady("web-0", false);
  HandoverResult done;
  REQUIRE(world.Step(world.View(), &done).ok());
  CHECK(done.lease_moved_from == "web-0");
  CHECK(world.LabeledDc() == std::vector<std::string>{"web-1"});
  CHECK(LeaseEpoch(world) == 2);
  const json old_dc = *world.api.Pod("web-0");
  CHECK(object::Label(old_dc, kRoleLabel) == kRolePc);
  CHECK(object::Annotation(old_dc, kFenceAnnotation) == "2");
  CHECK(object::Annotation(old_dc, kEpochAnnotation).empty());
  CHECK(world.invariants.violations.empty());
}

TEST_CASE("DcHandover: a failover takes three round trips: fence, Lease, promote") {
  World world;
  REQUIRE(world.Step(world.View()).ok());
  world.SetReady("web-0", false);
  const int reads = world.api.reads();
  const int writes = world.api.writes();
  REQUIRE(world.Step(world.View()).ok());
  // No read: the Lease names a holder, and the writes start from the view's pods.
  CHECK(world.api.reads() - reads == 0);
  CHECK(world.api.writes() - writes == 3);
  CHECK(world.LabeledDc() == std::vector<std::string>{"web-1"});
  CHECK(world.invariants.violations.empty());
}

TEST_CASE(
    "DcHandover: without a Lease the domain's pods are listed, and a DC the view missed "
    "is fenced") {
  World world;
  REQUIRE(world.Step(world.View()).ok());
  const std::vector<json> before = world.api.Pods();  // web-0 DC at epoch 1
  world.SetReady("web-0", false);
  REQUIRE(world.Step(world.View()).ok());
  REQUIRE(world.LabeledDc() == std::vector<std::string>{"web-1"});
  world.api.RemoveLease("web");
  world.SetReady("web-0", true);
  // A cache that still shows web-0 as DC and web-1 as pc, and the Lease gone: only a live
  // LIST shows that web-1 carries the label.
  const int reads = world.api.reads();
  HandoverResult done;
  REQUIRE(world.Step(world.ViewOf(before, std::nullopt), &done).ok());
  CHECK(world.api.reads() > reads);
  CHECK(world.invariants.violations.empty());
  CHECK(world.LabeledDc() == std::vector<std::string>{"web-0"});
  CHECK(object::Annotation(*world.api.Pod("web-1"), kFenceAnnotation) == "3");
  CHECK(done.epoch == 3);  // above the epoch web-1 showed, though the Lease was gone
}

TEST_CASE("DcHandover: a pod changed since the view is read again before it is written") {
  // The kubelet updates the pod between the view and the write: the write's
  // resourceVersion test fails, the pod is read fresh and judged again.
  for (const std::string changed : {"web-0", "web-1"}) {
    for (const bool ready : {true, false}) {
      CAPTURE(changed);
      CAPTURE(ready);
      World world;
      REQUIRE(world.Step(world.View()).ok());
      world.SetReady("web-0", false);
      bool done = false;
      world.api.SetWriteHook([&](const std::string& verb, const std::string& name) {
        if (!done && verb == "patch pod" && name == changed) {
          done = true;
          world.SetReady(changed, ready);
        }
        return Status::Ok();
      });
      const int reads = world.api.reads();
      const Status status = world.Step(world.View());
      world.api.SetWriteHook(nullptr);
      REQUIRE(done);
      // A GET of the changed pod (an unhealthy candidate is read again a few times before
      // the handover gives up).
      CHECK(world.api.reads() - reads >= 1);
      if (ready) CHECK(world.api.reads() - reads == 1);
      CHECK(world.invariants.violations.empty());
      const json old_dc = *world.api.Pod("web-0");
      CHECK(object::Label(old_dc, kRoleLabel) == kRolePc);  // fenced either way
      if (changed == "web-1" && !ready) {
        // The candidate failed in between: not promoted, no DC until the next reconcile.
        CHECK(status.IsConflict());
        CHECK(world.LabeledDc().empty());
      } else {
        REQUIRE(status.ok());
        CHECK(world.LabeledDc() == std::vector<std::string>{"web-1"});
      }
    }
  }
}

TEST_CASE("DcHandover: a stale view of the Lease fails the move without a second DC") {
  World world;
  REQUIRE(world.Step(world.View()).ok());
  const DomainView stale = world.View();
  world.SetReady("web-0", false);
  REQUIRE(world.Step(world.View()).ok());  // web-1 is DC at epoch 2
  world.SetReady("web-0", true);
  world.SetReady("web-1", false);
  // Built from the stale view: web-0 looks like the settled DC → nothing to do. Force a
  // move to web-2 from the stale view instead.
  DcMove move{"web-2", "web-0", "not-ready", true};
  FakeClock clock;
  const DcHandover handover(
      world.api, [](const json& pod) { return MemberFromPod(pod, "web"); }, clock);
  HandoverResult done;
  const Status status = handover.Run(RequestFor(stale, move, OwnerReference(kDomain), 15), done);
  CHECK(status.IsConflict());
  CHECK(LeaseEpoch(world) == 2);
  CHECK(world.LabeledDc().size() <= 1);
  CHECK(world.invariants.violations.empty());
}

TEST_CASE("DcHandover: a candidate unhealthy on the fresh read is not promoted") {
  World world;
  REQUIRE(world.Step(world.View()).ok());
  world.SetReady("web-0", false);
  const DomainView view = world.View();  // web-1 looks healthy here
  world.SetReady("web-1", false);        // ... and is not any more
  const Status status = world.Step(view);
  CHECK(status.IsConflict());
  CHECK(world.LabeledDc().empty());  // web-0 fenced, web-1 not promoted
  CHECK(world.invariants.violations.empty());
  REQUIRE(world.Step(world.View()).ok());  // the next reconcile picks web-2
  CHECK(world.LabeledDc() == std::vector<std::string>{"web-2"});
}

TEST_CASE("DcHandover: a candidate restarted since it was chosen is not promoted") {
  World world;
  const DomainView view = world.View();
  json pod = *world.api.Pod("web-0");
  pod["status"]["containerStatuses"][0]["restartCount"] = 1;
  world.api.PutPod(pod);
  CHECK(world.Step(view).IsConflict());
  CHECK(world.LabeledDc().empty());
}

TEST_CASE("DcHandover: a Lease that is not ours is never taken over; an unlabeled one of ours is") {
  World world;
  json foreign = LeaseObject("web", "someone-else", 42);
  foreign["metadata"].erase("labels");
  foreign["metadata"].erase("ownerReferences");
  REQUIRE(world.api.CreateLease("ns", foreign).ok());
  const Status status = world.Step(world.View());  // the view does not see it (no label)
  CHECK(status.code() == StatusCode::kAlreadyExists);
  CHECK(world.LabeledDc().empty());
  CHECK(election::ParseLease(*world.api.Lease("web")).holder == "someone-else");

  World ours;
  json unlabeled = LeaseObject("web", "", 0);
  unlabeled["metadata"].erase("labels");
  REQUIRE(ours.api.CreateLease("ns", unlabeled).ok());
  auto view = ours.View();
  view.lease_object = nullptr;  // the cache selects on the label: it cannot see it
  view.lease = {};
  CHECK(ours.Step(view).IsConflict());  // labeled; the next reconcile sees it
  CHECK(object::Label(*ours.api.Lease("web"), kDomainLabel) == "web");
  REQUIRE(ours.Step(ours.View()).ok());
  CHECK(ours.LabeledDc() == std::vector<std::string>{"web-0"});
}

TEST_CASE("DcHandover: a Lease deleted behind our back comes back above every epoch seen") {
  World world;
  REQUIRE(world.Step(world.View()).ok());
  world.SetReady("web-0", false);
  REQUIRE(world.Step(world.View()).ok());  // web-1 at epoch 2
  world.api.RemoveLease("web");
  world.status_epoch = 0;  // even without the status, the pods remember
  REQUIRE(world.Step(world.View()).ok());
  CHECK(LeaseEpoch(world) == 3);
  CHECK(world.LabeledDc() == std::vector<std::string>{"web-1"});
  CHECK(object::Annotation(*world.api.Pod("web-1"), kEpochAnnotation) == "3");
}

TEST_CASE("DcHandover: the operator dying between any two writes leaves one DC at most") {
  for (int fail_at = 1; fail_at <= 6; ++fail_at) {
    CAPTURE(fail_at);
    World world;
    REQUIRE(world.Step(world.View()).ok());
    world.SetReady("web-0", false);
    int writes = 0;
    world.api.SetWriteHook([&](const std::string& verb, const std::string& name) {
      return ++writes == fail_at ? Status::Transport("operator died before " + verb + " " + name)
                                 : Status::Ok();
    });
    (void)world.Step(world.View());
    world.api.SetWriteHook(nullptr);
    CHECK(world.LabeledDc().size() <= 1);
    // A new operator finishes the job from what the API shows.
    REQUIRE(world.Step(world.View()).ok());
    CHECK(world.LabeledDc() == std::vector<std::string>{"web-1"});
    CHECK(LeaseEpoch(world) >= 2);
    CHECK(world.invariants.violations.empty());
  }
}

TEST_CASE("DcHandover: a second writer between any two writes never makes two DCs") {
  for (int at = 1; at <= 6; ++at) {
    for (const bool fresh : {true, false}) {
      CAPTURE(at);
      CAPTURE(fresh);
      World world;
      REQUIRE(world.Step(world.View()).ok());
      const DomainView before = world.View();
      world.SetReady("web-0", false);
      int writes = 0;
      world.api.SetWriteHook([&](const std::string&, const std::string&) {
        if (++writes == at) {
          world.SetReady("web-1", false);  // the second writer prefers web-2
          (void)world.Step(fresh ? world.View() : before);
          world.SetReady("web-1", true);
        }
        return Status::Ok();
      });
      (void)world.Step(world.View());
      world.api.SetWriteHook(nullptr);
      CHECK(world.LabeledDc().size() <= 1);
      CHECK(world.invariants.violations.empty());
    }
  }
}

// Random interleavings of pod changes, stale views, failed writes and concurrent
// writers, thousands of seeded runs; the invariants are checked at every write.
TEST_CASE("DcHandover: property — random interleavings keep DESIGN.md's invariants") {
  constexpr int kSeeds = 1500;
  int handovers = 0;
  for (int seed = 1; seed <= kSeeds; ++seed) {
    std::mt19937 rng(seed);
    World world;
    std::vector<DomainView> history{world.View()};
    const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
    // A stale view: pods and Lease as an old cache showed them. The status is never older
    // than the operator's own last write of it (OwnWrites), hence its epoch is current.
    const auto any_view = [&] {
      if (pick(10) < 7) return world.View();
      DomainView view = history[pick(static_cast<int>(history.size()))];
      view.epoch_floor = std::max(view.epoch_floor, world.status_epoch);
      return view;
    };
    for (int step = 0; step < 30; ++step) {
      const std::string pod = "web-" + std::to_string(pick(3));
      switch (pick(10)) {
        case 0:
          world.SetReady(pod, pick(2) == 0);
          break;
        case 1: {  // the kubelet restarts the container
          json p = *world.api.Pod(pod);
          p["status"]["containerStatuses"][0]["restartCount"] =
              p["status"]["containerStatuses"][0]["restartCount"].get<int>() + 1;
          world.api.PutPod(p);
          break;
        }
        case 2: {  // deleted and recreated by dpcm: a new uid, labeled pc
          world.api.RemovePod(pod);
          PodShape shape;
          shape.uid = "uid-" + std::to_string(seed) + "-" + std::to_string(step);
          world.api.PutPod(MemberPod("web", pod.back() - '0', shape));
          break;
        }
        case 3:  // the Lease deleted behind our back (after the status caught up)
          if (world.api.Lease("web") && world.status_epoch == LeaseEpoch(world)) {
            world.api.RemoveLease("web");
          }
          break;
        default: {
          const int fail_at = pick(2) == 0 ? 1 + pick(5) : 0;
          const bool concurrent = pick(5) == 0;
          const int concurrent_at = 1 + pick(5);
          int writes = 0;
          world.api.SetWriteHook([&](const std::string&, const std::string&) {
            ++writes;
            if (concurrent && writes == concurrent_at) (void)world.Step(any_view());
            return writes == fail_at ? Status::Transport("injected") : Status::Ok();
          });
          (void)world.Step(any_view());
          world.api.SetWriteHook(nullptr);
          ++handovers;
        }
      }
      history.push_back(world.View());
    }
    // Heal: all members ready, a few clean reconciles → exactly one DC, the holder.
    for (int i = 0; i < 3; ++i) world.SetReady("web-" + std::to_string(i), true);
    std::string heal_log;
    for (int i = 0; i < 3; ++i) heal_log += world.Step(world.View()).ToString() + "; ";
    INFO("healing: ", heal_log);
    INFO("lease: ", world.api.Lease("web") ? world.api.Lease("web")->dump() : "none");
    INFO("seed ", seed);
    INFO("first violation: ",
         world.invariants.violations.empty() ? "" : world.invariants.violations[0]);
    REQUIRE(world.invariants.violations.empty());
    REQUIRE(world.LabeledDc().size() == 1);
    CHECK(election::ParseLease(*world.api.Lease("web")).holder == world.LabeledDc()[0]);
  }
  MESSAGE(kSeeds << " seeds, " << handovers << " reconciles");
}

}  // namespace
}  // namespace dpcm::domain
