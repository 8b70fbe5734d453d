// BuildStatus, the restart plan kept in the status, and the error policy: what a user sees and what
// survives a leader change.
#include "pkg/domain/domain_status.h"

#include <doctest/doctest.h>

#include "pkg/domain/decide.h"
#include "pkg/domain/error_policy.h"
#include "pkg/domain/restarts.h"
#include "tests/support/domain_objects.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;
using testing::DomainObject;
using testing::LeaseObject;
using testing::MemberPod;
using testing::PodShape;
using namespace std::chrono_literals;

const election::WallTime kNow = election::WallTime{} + 100000s;

DomainSpec SpecOf(const json& domain) {
  SpecError error;
  auto spec = ParseSpec(domain, &error);
  REQUIRE(spec.ok());
  return *spec;
}

DomainView ViewOf(const json& domain, const std::vector<json>& pods, const json& lease,
                  const std::map<std::string, PluginVerdict>& verdicts = {}) {
  std::vector<cache::ObjectPtr> objects;
  for (const auto& pod : pods) objects.push_back(std::make_shared<const json>(pod));
  return Observe(domain, SpecOf(domain), objects,
                 lease.is_null() ? nullptr : std::make_shared<const json>(lease),
                 [&](const Member& m) {
                   const auto it = verdicts.find(m.name);
                   return it == verdicts.end() ? PluginVerdict{} : it->second;
                 });
}

json Condition(const json& status, const std::string& type) {
  for (const auto& c : status["conditions"]) {
    if (c["type"] == type) return c;
  }
  return nullptr;
}

PodShape DcAt(int64_t epoch) {
  PodShape shape;
  shape.role = kRoleDc;
  shape.epoch = epoch;
  return shape;
}

const PluginVerdict kFailing{true, true, 3, "HTTP 500", 0, ""};

TEST_CASE("BuildStatus: a settled DC is Running and Ready") {
  const json domain = DomainObject("web", 2);
  const auto view = ViewOf(domain, {MemberPod("web", 0, DcAt(3)), MemberPod("web", 1)},
                           LeaseObject("web", "web-0", 3, "uid-web-0/0"));
  const Plan plan = Decide(view, SpecOf(domain), {}, {}, kNow);
  Outcome outcome;
  outcome.dc = "web-0";
  outcome.epoch = 3;
  const json status = BuildStatus(view, SpecOf(domain), plan, outcome);
  CHECK(status["phase"] == "Running");
  CHECK(status["activePod"] == "web-0");
  CHECK(status["ready"] == "2/2");
  CHECK(status["epoch"] == 3);
  CHECK(Condition(status, "Ready")["status"] == "True");
  CHECK(Condition(status, "Degraded")["status"] == "False");
  CHECK(Condition(status, "Progressing")["reason"] == "Stable");
  CHECK(status["fencing"] == "LabelOnly");
}

TEST_CASE("BuildStatus: the fencing mode says whether dpcm-agent runs in the members") {
  json domain = DomainObject("web", 2);
  CHECK(FencingMode(SpecOf(domain)) == "LabelOnly");
  domain["spec"]["agent"] = {{"enabled", true}};
  const auto view = ViewOf(domain, {MemberPod("web", 0, DcAt(3)), MemberPod("web", 1)},
                           LeaseObject("web", "web-0", 3, "uid-web-0/0"));
  Outcome outcome;
  outcome.dc = "web-0";
  outcome.epoch = 3;
  const json status =
      BuildStatus(view, SpecOf(domain), Decide(view, SpecOf(domain), {}, {}, kNow), outcome);
  CHECK(status["fencing"] == "Agent");
}

TEST_CASE("BuildStatus: a failed handover is written too, with its Degraded reason") {
  const json domain = DomainObject("web", 2);
  const auto view = ViewOf(domain, {MemberPod("web", 0), MemberPod("web", 1)}, nullptr);
  const Plan plan = Decide(view, SpecOf(domain), {}, {}, kNow);
  Outcome outcome;
  const Status error(StatusCode::kAlreadyExists,
                     "a Lease named web exists and is not owned by this ProcessDomain");
  outcome.errors.push_back({Step::kHandover, error, ActionFor(Step::kHandover, error)});
  const json status = BuildStatus(view, SpecOf(domain), plan, outcome);
  CHECK(status["activePod"] == "");
  CHECK(Condition(status, "Ready")["status"] == "False");
  CHECK(Condition(status, "Degraded")["status"] == "True");
  CHECK(Condition(status, "Degraded")["reason"] == "LeaseNotOwned");
  CHECK(Condition(status, "Degraded")["message"] == error.message());
  CHECK(Condition(status, "Progressing")["reason"] == "FailingOver");
}

TEST_CASE("BuildStatus: failover delay, paused and restarts show in phase and conditions") {
  json domain = DomainObject("web", 2);
  domain["spec"]["election"] = {{"failoverDelaySeconds", 10}};
  PodShape down = DcAt(3);
  down.ready = false;
  auto view = ViewOf(domain, {MemberPod("web", 0, down), MemberPod("web", 1)},
                     LeaseObject("web", "web-0", 3));
  Plan plan = Decide(view, SpecOf(domain), {}, {}, kNow);
  json status = BuildStatus(view, SpecOf(domain), plan, {});
  CHECK(status["phase"] == "FailingOver");
  CHECK(Condition(status, "Progressing")["reason"] == "FailoverDelay");

  domain["spec"]["paused"] = true;
  plan = Decide(view, SpecOf(domain), {}, {}, kNow);
  status = BuildStatus(view, SpecOf(domain), plan, {});
  CHECK(status["phase"] == "Paused");

  json healthy = DomainObject("web", 2);
  view = ViewOf(healthy, {MemberPod("web", 0, DcAt(3)), MemberPod("web", 1)},
                LeaseObject("web", "web-0", 3), {{"web-1", kFailing}});
  plan = Decide(view, SpecOf(healthy), {}, {}, kNow);
  Outcome outcome;
  outcome.dc = "web-0";
  outcome.restarts = plan.restarts.book;
  outcome.restarts_in_flight = plan.restarts.in_flight;
  status = BuildStatus(view, SpecOf(healthy), plan, outcome);
  CHECK(Condition(status, "Progressing")["reason"] == "Restarting");
  CHECK(status["members"][1]["restarts"] == 1);
  CHECK(status["memberRestarts"][0]["name"] == "web-1");
  CHECK(status["memberRestarts"][0]["pendingUid"] == "uid-web-1");
}

TEST_CASE(
    "PlanRestarts: back-off, concurrency limit and in-flight restarts survive a leader change") {
  json domain = DomainObject("web", 3);
  domain["spec"]["restart"] = {{"backoff", {{"initialSeconds", 2}, {"maxSeconds", 8}}},
                               {"maxConcurrent", 1}};
  const DomainSpec spec = SpecOf(domain);
  const auto view =
      ViewOf(domain, {MemberPod("web", 0, DcAt(1)), MemberPod("web", 1), MemberPod("web", 2)},
             LeaseObject("web", "web-0", 1), {{"web-1", kFailing}, {"web-2", kFailing}});
  RestartPlan plan = PlanRestarts(view, spec, {}, "", kNow);
  REQUIRE(plan.restarts.size() == 1);  // maxConcurrent 1
  CHECK(plan.restarts[0].pod == "web-1");
  CHECK(plan.in_flight == 1);
  CHECK(plan.retry_in == std::chrono::steady_clock::duration(1s));

  // A new leader reads the book from the status the old one wrote.
  json written = domain;
  written["status"]["memberRestarts"] = RestartBookJson(plan.book);
  const RestartBook book = ParseRestartBook(written);
  REQUIRE(book.count("web-1") == 1);
  CHECK(book.at("web-1").pending_uid == "uid-web-1");
  // The old pod is still there (the delete was not sent): retried, still one in flight.
  plan = PlanRestarts(view, spec, book, "", kNow + 1s);
  REQUIRE(plan.restarts.size() == 1);
  CHECK(plan.restarts[0].retry);
  CHECK(plan.in_flight == 1);

  // The replacement has a verdict: the restart settles and web-2 may go — but web-1's
  // new pod failing again waits for its back-off (2 s after its first restart).
  PodShape replaced;
  replaced.uid = "uid-web-1-b";
  const auto after = ViewOf(
      domain, {MemberPod("web", 0, DcAt(1)), MemberPod("web", 1, replaced), MemberPod("web", 2)},
      LeaseObject("web", "web-0", 1), {{"web-1", kFailing}, {"web-2", kFailing}});
  plan = PlanRestarts(after, spec, book, "", kNow + 1s);
  REQUIRE(plan.restarts.size() == 1);
  CHECK(plan.restarts[0].pod == "web-2");
  plan = PlanRestarts(after, spec, plan.book, "", kNow + 1s);
  CHECK(plan.restarts.size() == 1);  // web-2 pending again (retry); web-1 held back
  CHECK(plan.book.at("web-1").streak == 1);
}

TEST_CASE("PlanRestarts: the back-off doubles and a quiet streak starts over") {
  json domain = DomainObject("web", 2);
  domain["spec"]["restart"] = {{"backoff", {{"initialSeconds", 2}, {"maxSeconds", 8}}},
                               {"maxConcurrent", 2}};
  const DomainSpec spec = SpecOf(domain);
  const auto view = ViewOf(domain, {MemberPod("web", 0, DcAt(1)), MemberPod("web", 1)},
                           LeaseObject("web", "web-0", 1), {{"web-1", kFailing}});
  RestartBook book;
  book["web-1"] = {2, 5, kNow, ""};  // two restarts in this streak, the last just now
  RestartPlan plan = PlanRestarts(view, spec, book, "", kNow + 3s);
  CHECK(plan.restarts.empty());  // 4 s after the second
  CHECK(plan.retry_in == std::chrono::steady_clock::duration(1s));
  plan = PlanRestarts(view, spec, book, "", kNow + 4s);
  REQUIRE(plan.restarts.size() == 1);
  CHECK(plan.restarts[0].streak == 3);
  CHECK(plan.book.at("web-1").total == 6);
  plan = PlanRestarts(view, spec, book, "", kNow + 17s);  // > 2 × maxSeconds: a new streak
  REQUIRE(plan.restarts.size() == 1);
  CHECK(plan.restarts[0].streak == 1);
}

TEST_CASE("FailuresSince: a failure is reported once, as the last status remembers it") {
  const json domain = DomainObject("web", 2);
  const auto view = ViewOf(domain, {MemberPod("web", 0, DcAt(1)), MemberPod("web", 1)},
                           LeaseObject("web", "web-0", 1), {{"web-1", kFailing}});
  NewFailures fresh = FailuresSince(view, json());
  REQUIRE(fresh.health_check.size() == 1);
  CHECK(fresh.health_check[0]->name == "web-1");
  CHECK(fresh.role_hook.empty());
  // Once a status says so (as the next reconcile, or a new leader, reads it): not again.
  Outcome outcome;
  outcome.dc = "web-0";
  const json status =
      BuildStatus(view, SpecOf(domain), Decide(view, SpecOf(domain), {}, {}, kNow), outcome);
  CHECK(FailuresSince(view, status).health_check.empty());
  // A role hook failing is a new failure of another kind.
  const auto hook =
      ViewOf(domain, {MemberPod("web", 0, DcAt(1)), MemberPod("web", 1)},
             LeaseObject("web", "web-0", 1), {{"web-1", {true, false, 0, "", 5, "refused"}}});
  fresh = FailuresSince(hook, status);
  CHECK(fresh.health_check.empty());
  REQUIRE(fresh.role_hook.size() == 1);

  const json invalid = BuildInvalidSpecStatus(json(), 3, "spec.replicas", "must be at most 100");
  CHECK(ReportsInvalidSpec(invalid, 3));
  CHECK_FALSE(ReportsInvalidSpec(invalid, 4));  // a new generation is reported again
  CHECK_FALSE(ReportsInvalidSpec(status, 1));
}

TEST_CASE("FailoverJson: the flight recorder's record as status.lastFailover") {
  FailoverRecord record{"web-0", "web-1", "pod-deleted", 7, {}};
  record.phases = {{"decided", 1500us}, {"fenced", 4ms}, {"leaseWritten", 6ms}, {"labeled", 9ms}};
  CHECK(record.took() == std::chrono::steady_clock::duration(9ms));
  const json last = FailoverJson(record, "2026-12-02T10:00:00Z");
  CHECK(last["from"] == "web-0");
  CHECK(last["to"] == "web-1");
  CHECK(last["reason"] == "pod-deleted");
  CHECK(last["epoch"] == 7);
  REQUIRE(last["phases"].size() == 4);
  CHECK(last["phases"][0]["name"] == "decided");
  CHECK(last["phases"][0]["ms"] == 1.5);
  CHECK(last["phases"][3]["ms"] == 9.0);
  // No role hooks: said so, and no hooksAcknowledged phase is invented.
  CHECK(last["hooks"] == "none");
  record.awaits_hooks = true;
  CHECK(FailoverJson(record, "2026-12-02T10:00:00Z")["hooks"] == "pending");
  CHECK(FailoverJson(record, "2026-12-02T10:00:00Z")["phases"].size() == 4);
  // Kept by every later status until the next failover.
  const json domain = DomainObject("web", 1);
  const auto view = ViewOf(domain, {MemberPod("web", 0, DcAt(7))}, LeaseObject("web", "web-0", 7));
  Outcome outcome;
  outcome.last_failover = last;
  CHECK(BuildStatus(view, SpecOf(domain), Decide(view, SpecOf(domain), {}, {}, kNow),
                    outcome)["lastFailover"] == last);
}

TEST_CASE("ActionFor: one table from a failed step to retry, Degraded reason and Event") {
  using Retry = ErrorAction::Retry;
  const Status conflict = Status::Conflict("changed");
  const Status forbidden = Status::FromHttp(403, "Forbidden", "no");
  CHECK(ActionFor(Step::kHandover, conflict).retry == Retry::kAfter);
  CHECK(ActionFor(Step::kHandover, conflict).degraded_reason.empty());
  CHECK(ActionFor(Step::kHandover, forbidden).retry == Retry::kRateLimited);
  CHECK(ActionFor(Step::kHandover, forbidden).degraded_reason == "HandoverFailed");
  CHECK(ActionFor(Step::kPods, forbidden).after == std::chrono::milliseconds(5000));
  CHECK(ActionFor(Step::kService, conflict).event_reason == "ServiceFailed");
  CHECK(ActionFor(Step::kStatus, conflict).retry == Retry::kAfter);
  CHECK(ActionFor(Step::kStatus, forbidden).retry == Retry::kRateLimited);
}

}  // namespace
}  // namespace dpcm::domain
