// Decide: which member is DC, when the role moves and why, scaling, relabels — every branch as a
// table of views.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "pkg/domain/decide.h"
#include "tests/support/domain_objects.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;
using testing::DomainObject;
using testing::LeaseObject;
using testing::MemberPod;
using testing::PodShape;
using namespace std::chrono_literals;

const SteadyTime kNow = SteadyTime{} + 1000s;
const election::WallTime kWallNow = election::WallTime{} + 1000s;

struct Scenario {
  json domain = DomainObject("web", 3);
  std::vector<json> pods;
  json lease;  // null: none
  std::map<std::string, PluginVerdict> verdicts;

  DomainSpec Spec() const {
    SpecError error;
    auto spec = ParseSpec(domain, &error);
    INFO(error.field, ": ", error.message);
    REQUIRE(spec.ok());
    return *spec;
  }
  DomainView View() const {
    std::vector<cache::ObjectPtr> objects;
    for (const auto& pod : pods) objects.push_back(std::make_shared<const json>(pod));
    const cache::ObjectPtr lease_object =
        lease.is_null() ? nullptr : std::make_shared<const json>(lease);
    return Observe(domain, Spec(), objects, lease_object, [this](const Member& m) {
      const auto it = verdicts.find(m.name);
      return it == verdicts.end() ? PluginVerdict{} : it->second;
    });
  }
  Plan Run(const Bookkeeping& book = {}, SteadyTime now = kNow) const {
    return Decide(View(), Spec(), book, now, kWallNow);
  }
};

PodShape Dc(int64_t epoch, bool ready = true) {
  PodShape shape;
  shape.role = kRoleDc;
  shape.epoch = epoch;
  shape.ready = ready;
  return shape;
}

// web-1 is the settled DC at epoch 4 of three healthy members.
Scenario Settled() {
  Scenario s;
  s.pods = {MemberPod("web", 0), MemberPod("web", 1, Dc(4)), MemberPod("web", 2)};
  s.lease = LeaseObject("web", "web-1", 4, "uid-web-1/0");
  return s;
}

TEST_CASE("Decide: the first election takes the lowest healthy ordinal at a new epoch") {
  Scenario s;
  s.pods = {MemberPod("web", 2), MemberPod("web", 1), MemberPod("web", 0, testing::NotReady())};
  const Plan plan = s.Run();
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-1");
  CHECK(plan.move->previous.empty());
  CHECK(plan.move->reason.empty());
  CHECK(plan.move->new_epoch);
  CHECK(plan.dc == "web-1");
}

TEST_CASE("Decide: a settled DC is left alone, whatever its ordinal") {
  const Plan plan = Settled().Run();
  CHECK_FALSE(plan.move);
  CHECK(plan.dc == "web-1");
  CHECK(plan.relabel_pc.empty());
  CHECK_FALSE(plan.dc_failure_seen);
  CHECK_FALSE(plan.requeue_after);
}

TEST_CASE("Decide: an unfit DC loses the role to the best healthy member, with its reason") {
  struct Case {
    const char* name;
    std::function<void(Scenario&)> change;
    const char* reason;
  };
  const std::vector<Case> cases = {
      {"not ready", [](Scenario& s) { s.pods[1] = MemberPod("web", 1, Dc(4, false)); },
       "not-ready"},
      {"pod gone", [](Scenario& s) { s.pods.erase(s.pods.begin() + 1); }, "pod-deleted"},
      {"terminating",
       [](Scenario& s) {
         PodShape shape = Dc(4);
         shape.terminating = true;
         s.pods[1] = MemberPod("web", 1, shape);
       },
       "pod-deleted"},
      {"health plugin failed",
       [](Scenario& s) { s.verdicts["web-1"] = {true, true, 3, "HTTP 500", 0, ""}; },
       "health-check-failed"},
      {"role hook not acknowledged",
       [](Scenario& s) { s.verdicts["web-1"] = {true, false, 0, "", 5, "connection refused"}; },
       "role-hook-failed"},
      {"scaled down", [](Scenario& s) { s.domain["spec"]["replicas"] = 1; }, "scaled-down"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    Scenario s = Settled();
    c.change(s);
    const Plan plan = s.Run();
    REQUIRE(plan.move);
    CHECK(plan.move->target == "web-0");
    CHECK(plan.move->previous == "web-1");
    CHECK(plan.move->reason == std::string(c.reason));
    CHECK(plan.move->new_epoch);
    CHECK(plan.dc_failure_seen == kNow);  // first seen now
  }
}

TEST_CASE("Decide: a DC restarted while nobody looked is a death, not a DC (finding 1)") {
  Scenario s = Settled();
  PodShape restarted = Dc(4);
  restarted.restarts = 1;  // the kubelet restarted its container: a new process
  s.pods[1] = MemberPod("web", 1, restarted);
  CHECK_FALSE(s.View().dc.settled());
  Plan plan = s.Run();
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-0");
  CHECK(plan.move->previous == "web-1");
  CHECK(plan.move->reason == kReasonRestarted);

  // Nobody else can take over: the new process is elected again, at a new epoch.
  s.pods[0] = MemberPod("web", 0, testing::NotReady());
  s.pods[2] = MemberPod("web", 2, testing::NotReady());
  plan = s.Run();
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-1");
  CHECK(plan.move->previous == "web-1");
  CHECK(plan.move->new_epoch);

  // Recreated under the same name (a StatefulSet): a new uid is a new incarnation too.
  Scenario recreated = Settled();
  PodShape fresh;
  fresh.uid = "uid-new";
  recreated.pods[1] = MemberPod("web", 1, fresh);
  plan = recreated.Run();
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-0");
  CHECK(plan.move->reason == kReasonRestarted);
}

TEST_CASE("Decide: failoverDelaySeconds holds the move until the DC was unfit that long") {
  Scenario s = Settled();
  s.domain["spec"]["election"] = {{"failoverDelaySeconds", 5}};
  s.pods[1] = MemberPod("web", 1, Dc(4, false));
  Plan plan = s.Run();
  CHECK_FALSE(plan.move);
  CHECK(plan.waiting_for_delay);
  CHECK(plan.dc_failure_seen == kNow);
  REQUIRE(plan.requeue_after);
  CHECK(*plan.requeue_after == 5s);

  plan = s.Run({kNow - 2s, {}});
  CHECK(plan.waiting_for_delay);
  CHECK(*plan.requeue_after == 3s);
  CHECK(plan.dc_failure_seen == kNow - 2s);  // the clock keeps running

  plan = s.Run({kNow - 5s, {}});
  CHECK_FALSE(plan.waiting_for_delay);
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-0");

  // A DC that recovers within the delay keeps the role and the clock is reset.
  s.pods[1] = MemberPod("web", 1, Dc(4));
  plan = s.Run({kNow - 2s, {}});
  CHECK_FALSE(plan.move);
  CHECK_FALSE(plan.dc_failure_seen);
}

TEST_CASE("Decide: a paused domain plans nothing") {
  Scenario s = Settled();
  s.domain["spec"]["paused"] = true;
  s.pods[1] = MemberPod("web", 1, Dc(4, false));
  s.pods[2] = MemberPod("web", 2, testing::WithRole(""));
  s.pods.erase(s.pods.begin());  // web-0 missing: not recreated either
  const Plan plan = s.Run();
  CHECK_FALSE(plan.move);
  CHECK(plan.create_ordinals.empty());
  CHECK(plan.relabel_pc.empty());
  CHECK(plan.restarts.restarts.empty());
  CHECK(plan.dc_failure_seen == kNow);  // still timed, for when it resumes
}

TEST_CASE("Decide: a Lease deleted behind our back is written again above every epoch seen") {
  Scenario s = Settled();
  s.lease = nullptr;
  const DomainView view = s.View();
  CHECK(view.dc.name == "web-1");  // the labeled member, without a Lease
  CHECK(view.epoch_floor == 4);
  const Plan plan = s.Run();
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-1");
  CHECK(plan.move->previous.empty());
  CHECK(plan.move->new_epoch);

  // A Lease behind the status's epoch (recreated by someone) is moved past it.
  Scenario behind = Settled();
  behind.domain["status"] = {{"epoch", 9}};
  const Plan rewrite = behind.Run();
  REQUIRE(rewrite.move);
  CHECK(rewrite.move->target == "web-1");
  CHECK(rewrite.move->new_epoch);
  CHECK(behind.View().epoch_floor == 9);
}

TEST_CASE("Decide: a Lease whose holder is not labeled yet is completed, not moved") {
  Scenario s = Settled();
  s.pods[1] = MemberPod("web", 1);  // the handover stopped after the Lease write
  const Plan plan = s.Run();
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-1");
  CHECK(plan.move->previous.empty());
  CHECK_FALSE(plan.move->new_epoch);  // the Lease is right; only the label is missing
}

TEST_CASE("Decide: no healthy member means no DC and no move") {
  Scenario s;
  s.pods = {MemberPod("web", 0, testing::NotReady()), MemberPod("web", 1, testing::NotReady())};
  const Plan plan = s.Run();
  CHECK_FALSE(plan.move);
  CHECK(plan.dc.empty());
  CHECK(plan.create_ordinals == std::vector<int>{2});
}

TEST_CASE("Decide: scaling creates missing ordinals and deletes extra members, never the DC") {
  Scenario s = Settled();
  s.domain["spec"]["replicas"] = 5;
  Plan plan = s.Run();
  CHECK(plan.create_ordinals == std::vector<int>{3, 4});
  CHECK(plan.scaling);
  CHECK(plan.requeue_after == std::chrono::steady_clock::duration(5s));

  s.domain["spec"]["replicas"] = 1;
  plan = s.Run();
  CHECK(plan.scale_down == std::vector<std::string>{"web-2"});  // web-1 is DC: moved first
  REQUIRE(plan.move);
  CHECK(plan.move->target == "web-0");
}

TEST_CASE("Decide: members without the pc label are relabeled; the DC and dying pods are not") {
  Scenario s = Settled();
  s.pods[0] = MemberPod("web", 0, testing::WithRole(""));
  PodShape dying;
  dying.role = "";
  dying.terminating = true;
  s.pods[2] = MemberPod("web", 2, dying);
  const Plan plan = s.Run();
  CHECK(plan.relabel_pc == std::vector<std::string>{"web-0"});
}

TEST_CASE("Decide: the DC with a failing health plugin is restarted only once the role left it") {
  Scenario s = Settled();
  s.verdicts["web-1"] = {true, true, 3, "HTTP 500", 0, ""};
  Plan plan = s.Run();
  REQUIRE(plan.move);
  // The move happens in this reconcile; the restart with it (dropped if the move fails).
  REQUIRE(plan.restarts.restarts.size() == 1);
  CHECK(plan.restarts.restarts[0].pod == "web-1");

  s.domain["spec"]["election"] = {{"failoverDelaySeconds", 30}};
  plan = s.Run();
  CHECK(plan.waiting_for_delay);
  CHECK(plan.restarts.restarts.empty());

  // Nobody can take over: restarted at once.
  Scenario alone = Settled();
  alone.pods = {alone.pods[1]};
  alone.domain["spec"]["replicas"] = 2;
  alone.verdicts["web-1"] = {true, true, 3, "HTTP 500", 0, ""};
  plan = alone.Run();
  CHECK_FALSE(plan.move);
  REQUIRE(plan.restarts.restarts.size() == 1);
}

}  // namespace
}  // namespace dpcm::domain
