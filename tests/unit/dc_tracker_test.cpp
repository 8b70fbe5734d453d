// The e2e safety checker must be able to fail: feed it the event sequences it exists to catch.
#include <doctest/doctest.h>

#include "tests/support/dc_watcher.h"

namespace dpcm::testing {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

json Pod(const std::string& name, const std::string& role, bool ready) {
  return {
      {"metadata", {{"name", name}, {"labels", {{"dpcm.io/domain", "d"}, {"dpcm.io/role", role}}}}},
      {"status",
       {{"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
}

TEST_CASE("DcTracker flags two DCs at one resourceVersion and accepts a clean handover") {
  DcTracker tracker(5s);
  const auto t0 = DcTracker::WallClock::now();
  tracker.Apply(Pod("d-0", "dc", true), false, t0);
  tracker.Apply(Pod("d-1", "pc", true), false, t0);
  CHECK(tracker.CurrentDc("d") == "d-0");
  // A clean handover: demote first, then promote.
  tracker.Apply(Pod("d-0", "pc", false), false, t0 + 10ms);
  CHECK(tracker.CurrentDc("d").empty());
  tracker.Apply(Pod("d-1", "dc", true), false, t0 + 20ms);
  CHECK(tracker.CurrentDc("d") == "d-1");
  CHECK(tracker.Violations(t0 + 30ms).empty());
  // Promote before demote: two DCs at once.
  tracker.Apply(Pod("d-0", "dc", true), false, t0 + 40ms);
  const auto violations = tracker.Violations(t0 + 50ms);
  REQUIRE(violations.size() == 1);
  CHECK(violations[0].find("2 DCs at once: d-0, d-1") != std::string::npos);
}

TEST_CASE("DcTracker flags a domain left without a DC while a member is healthy") {
  DcTracker tracker(1s);
  const auto t0 = DcTracker::WallClock::now();
  tracker.Apply(Pod("d-0", "dc", true), false, t0);
  tracker.Apply(Pod("d-1", "pc", true), false, t0);
  tracker.Apply(Pod("d-0", "dc", true), true, t0 + 100ms);  // DC pod deleted
  CHECK(tracker.Violations(t0 + 900ms).empty());
  CHECK(tracker.Violations(t0 + 2s).size() == 1);
  // Without a healthy member, no DC is expected.
  DcTracker idle(1s);
  idle.Apply(Pod("d-0", "pc", false), false, t0);
  CHECK(idle.Violations(t0 + 10s).empty());
}

TEST_CASE("DcTracker notes when a DC stopped being healthy, not when a PC did") {
  DcTracker tracker(5s);
  const auto t0 = DcTracker::WallClock::now();
  tracker.Apply(Pod("d-0", "dc", true), false, t0);
  tracker.Apply(Pod("d-1", "pc", true), false, t0);
  tracker.Apply(Pod("d-1", "pc", false), false, t0 + 5ms);
  CHECK_FALSE(tracker.DcFailureSeen("d-1").has_value());
  tracker.Apply(Pod("d-0", "dc", true), false, t0 + 10ms);  // healthy still: no failure
  CHECK_FALSE(tracker.DcFailureSeen("d-0").has_value());
  tracker.Apply(Pod("d-0", "dc", false), false, t0 + 20ms);
  tracker.Apply(Pod("d-0", "dc", false), false, t0 + 30ms);  // still down: the first time kept
  CHECK(tracker.DcFailureSeen("d-0") == t0 + 20ms);
  tracker.Apply(Pod("d-0", "dc", true), false, t0 + 40ms);
  tracker.Apply(Pod("d-0", "dc", true), true, t0 + 50ms);  // deleted while DC
  CHECK(tracker.DcFailureSeen("d-0") == t0 + 50ms);
}

}  // namespace
}  // namespace dpcm::testing
