// DecideHookAck: the flight recorder's hooksAcknowledged phase, recorded only when it was seen.
#include "pkg/domain/flight_recorder.h"

#include <doctest/doctest.h>

#include "pkg/domain/domain_status.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const SteadyTime kSeen = SteadyTime{} + 1000s;

// status.lastFailover of web-0 → web-1 at epoch 4, labeled 9 ms after the failure.
json Pending() {
  FailoverRecord record{"web-0", "web-1", "pod-deleted", 4, {}};
  record.phases = {{"decided", 1ms}, {"fenced", 4ms}, {"leaseWritten", 6ms}, {"labeled", 9ms}};
  record.awaits_hooks = true;
  return FailoverJson(record, "2026-12-02T10:00:00Z");
}

HookAckObservation Acked(const std::string& role, int64_t epoch, SteadyTime at) {
  return {true, role, epoch, at};
}

const std::optional<PendingHookAck> kWaiting = PendingHookAck{"web-1", 4, kSeen};

TEST_CASE("DecideHookAck appends hooksAcknowledged once the new DC acknowledged dc at the epoch") {
  const auto decision = DecideHookAck(Pending(), kWaiting, Acked("dc", 4, kSeen + 31500us));
  REQUIRE(decision.last_failover.has_value());
  const json& last = *decision.last_failover;
  CHECK(last["hooks"] == kHooksAcknowledged);
  REQUIRE(last["phases"].size() == 5);
  CHECK(last["phases"][4]["name"] == kPhaseHooksAcknowledged);
  CHECK(last["phases"][4]["ms"] == 31.5);
  CHECK(last["phases"][3] == Pending()["phases"][3]);  // the rest is kept as it was
  CHECK(last["to"] == "web-1");
  REQUIRE(decision.phase.has_value());
  CHECK(*decision.phase == SteadyDuration(31500us));
  CHECK_FALSE(decision.keep_pending);

  // Recorded once: the status now says acknowledged, and nothing changes any more.
  const auto again = DecideHookAck(last, kWaiting, Acked("dc", 4, kSeen + 31500us));
  CHECK_FALSE(again.last_failover.has_value());
  CHECK_FALSE(again.phase.has_value());
  CHECK_FALSE(again.keep_pending);
}

TEST_CASE("DecideHookAck waits while the new DC has not acknowledged its promotion") {
  struct Row {
    const char* what;
    HookAckObservation target;
  };
  const Row rows[] = {
      {"nothing acknowledged yet", {true, "", -1, std::nullopt}},
      {"still pc", Acked("pc", 4, kSeen + 5ms)},
      {"dc at the previous epoch", Acked("dc", 3, kSeen - 10s)},
  };
  for (const auto& row : rows) {
    CAPTURE(row.what);
    const auto decision = DecideHookAck(Pending(), kWaiting, row.target);
    CHECK_FALSE(decision.last_failover.has_value());
    CHECK_FALSE(decision.phase.has_value());
    CHECK(decision.keep_pending);
  }
}

TEST_CASE("DecideHookAck never invents a time") {
  SUBCASE("another operator (or this one before a restart) recorded the failover") {
    const auto decision = DecideHookAck(Pending(), std::nullopt, Acked("dc", 4, kSeen + 5ms));
    REQUIRE(decision.last_failover.has_value());
    CHECK((*decision.last_failover)["hooks"] == kHooksUnrecorded);
    CHECK((*decision.last_failover)["phases"].size() == 4);
    CHECK_FALSE(decision.phase.has_value());
  }
  SUBCASE("the pending failover in memory is an older one") {
    const auto decision =
        DecideHookAck(Pending(), PendingHookAck{"web-2", 3, kSeen}, Acked("dc", 4, kSeen + 5ms));
    REQUIRE(decision.last_failover.has_value());
    CHECK((*decision.last_failover)["hooks"] == kHooksUnrecorded);
    CHECK_FALSE(decision.phase.has_value());
  }
  SUBCASE("role hooks were removed from the spec meanwhile") {
    const auto decision = DecideHookAck(Pending(), kWaiting, HookAckObservation{});
    REQUIRE(decision.last_failover.has_value());
    CHECK((*decision.last_failover)["hooks"] == kHooksNone);
    CHECK((*decision.last_failover)["phases"].size() == 4);
    CHECK_FALSE(decision.keep_pending);
  }
  SUBCASE("a failover without role hooks, or an older operator's record, is left alone") {
    json none = Pending();
    none["hooks"] = kHooksNone;
    json old = Pending();
    old.erase("hooks");
    for (const json& last : {none, old, json()}) {
      const auto decision = DecideHookAck(last, kWaiting, Acked("dc", 4, kSeen + 5ms));
      CHECK_FALSE(decision.last_failover.has_value());
      CHECK_FALSE(decision.phase.has_value());
      CHECK_FALSE(decision.keep_pending);
    }
  }
}

TEST_CASE("DecideHookAck keeps the phases in order") {
  // An acknowledgement stamped before the label (clocks of two threads) ends no earlier
  // than the labeled phase in the status.
  const auto decision = DecideHookAck(Pending(), kWaiting, Acked("dc", 4, kSeen + 2ms));
  REQUIRE(decision.last_failover.has_value());
  CHECK((*decision.last_failover)["phases"][4]["ms"] == 9.0);
  // Before the failure was seen: zero, not negative.
  const auto early = DecideHookAck(Pending(), kWaiting, Acked("dc", 4, kSeen - 1s));
  REQUIRE(early.phase.has_value());
  CHECK(*early.phase == SteadyDuration::zero());
}

}  // namespace
}  // namespace dpcm::domain
