// Pod events to domain requests: the label lookup, the DC-failure signal that jumps the
// queue, and the label selector for adopt-mode candidates.
#include "pkg/domain/pod_events.h"

#include <doctest/doctest.h>

#include <map>
#include <string>

#include "pkg/domain/adoption.h"
#include "pkg/domain/spec.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

// A running, Ready member of domain "web" with `role`.
json Pod(const std::string& role) {
  return {{"metadata",
           {{"name", "web-0"},
            {"namespace", "team-a"},
            {"uid", "u1"},
            {"labels", {{kDomainLabel, "web"}, {kRoleLabel, role}}}}},
          {"status",
           {{"phase", "Running"},
            {"podIP", "10.0.0.5"},
            {"conditions", json::array({{{"type", "Ready"}, {"status", "True"}}})},
            {"containerStatuses",
             json::array({{{"name", "app"},
                           {"ready", true},
                           {"restartCount", 0},
                           {"state", {{"running", {{"startedAt", "2026-12-02T07:00:00Z"}}}}}}})}}}};
}

TEST_CASE("DomainOf reads the dpcm.io/domain label and nothing else") {
  const auto request = DomainOf(Pod("pc"));
  REQUIRE(request.has_value());
  CHECK(request->ns == "team-a");
  CHECK(request->name == "web");

  json unlabeled = Pod("pc");
  unlabeled["metadata"]["labels"].erase(kDomainLabel);
  CHECK_FALSE(DomainOf(unlabeled).has_value());
  json wrong_type = Pod("pc");
  wrong_type["metadata"]["labels"][kDomainLabel] = 7;
  CHECK_FALSE(DomainOf(wrong_type).has_value());
  for (const json& garbage : {json(nullptr), json("pod"), json::array(), json{{"metadata", 1}},
                              json{{"metadata", {{"labels", "x"}}}}}) {
    CAPTURE(garbage.dump());
    CHECK_NOTHROW(CHECK_FALSE(DomainOf(garbage).has_value()));
  }
}

TEST_CASE("SignalsDcFailure: only a DC that is gone, terminating, exited or not Ready") {
  CHECK_FALSE(SignalsDcFailure(Pod("dc"), false));  // a healthy DC: housekeeping
  CHECK(SignalsDcFailure(Pod("dc"), true));         // deleted
  CHECK_FALSE(SignalsDcFailure(Pod("pc"), true));   // a PC's death moves no DC

  json terminating = Pod("dc");
  terminating["metadata"]["deletionTimestamp"] = "2026-12-02T07:01:00Z";
  CHECK(SignalsDcFailure(terminating, false));

  json exited = Pod("dc");
  exited["status"]["containerStatuses"][0]["state"] = {{"terminated", {{"exitCode", 137}}}};
  exited["status"]["containerStatuses"][0]["ready"] = false;
  CHECK(SignalsDcFailure(exited, false));

  json not_ready = Pod("dc");
  not_ready["status"]["conditions"][0]["status"] = "False";
  CHECK(SignalsDcFailure(not_ready, false));

  json failed = Pod("dc");
  failed["status"]["phase"] = "Failed";
  CHECK(SignalsDcFailure(failed, false));

  json sick_pc = exited;
  sick_pc["metadata"]["labels"][kRoleLabel] = "pc";
  CHECK_FALSE(SignalsDcFailure(sick_pc, false));
  CHECK_NOTHROW(CHECK_FALSE(SignalsDcFailure(json("x"), false)));
}

TEST_CASE("SignalsDcFailure: a DC restarted in place since the previous event, Ready again") {
  json restarted = Pod("dc");
  restarted["status"]["containerStatuses"][0]["restartCount"] = 1;
  restarted["status"]["containerStatuses"][0]["lastState"] = {{"terminated", {{"exitCode", 137}}}};
  const json before = Pod("dc");
  CHECK(SignalsDcFailure(restarted, false, &before));
  CHECK_FALSE(SignalsDcFailure(restarted, false));              // no previous state to compare
  CHECK_FALSE(SignalsDcFailure(restarted, false, &restarted));  // the same restart seen again
  json restarted_pc = restarted;
  restarted_pc["metadata"]["labels"][kRoleLabel] = "pc";
  json before_pc = before;
  before_pc["metadata"]["labels"][kRoleLabel] = "pc";
  CHECK_FALSE(SignalsDcFailure(restarted_pc, false, &before_pc));  // a PC's restart moves no DC
}

TEST_CASE("AdoptionWatches selects candidates by matchLabels that lack dpcm.io/domain") {
  CHECK(AdoptionWatches::CandidateSelector({{"app", "db"}}) == "app=db,!dpcm.io/domain");
  CHECK(AdoptionWatches::CandidateSelector({{"app", "db"}, {"tier", ""}}) ==
        "app=db,tier=,!dpcm.io/domain");
}

}  // namespace
}  // namespace dpcm::domain
