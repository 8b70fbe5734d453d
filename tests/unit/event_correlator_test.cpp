// EventCorrelator: which occurrences fold into one Event, when each write is due, the spam
// limit per object, expired Events, and the bound on series kept - on a fake clock.
#include <doctest/doctest.h>

#include <chrono>
#include <string>

#include "pkg/events/correlator.h"

namespace dpcm::events {
namespace {

using namespace std::chrono_literals;

ObjectReference Domain(const std::string& name) {
  return {"dpcm.io/v1alpha1", "ProcessDomain", "default", name, "uid-" + name};
}

Occurrence Failed(const std::string& domain = "web", const std::string& message = "no pods") {
  return {Domain(domain), "Warning", "PodsFailed", message};
}

// Takes the write owed for `series` now and reports it written with `status`.
std::optional<Write> TakeAndWrite(EventCorrelator& correlator, const std::string& series,
                                  const Status& status = Status::Ok()) {
  auto due = correlator.Take(series);
  if (due.write) correlator.Written(series, status);
  return due.write;
}

TEST_CASE("EventCorrelator creates the first occurrence at once, with count 1") {
  FakeClock clock;
  EventCorrelator correlator("dpcm-operator", clock);
  const auto observed = correlator.Observe(Failed());
  CHECK(observed.due == clock.Now());
  const auto write = TakeAndWrite(correlator, observed.series);
  REQUIRE(write);
  CHECK(write->kind == Write::Kind::kCreate);
  const auto& event = write->event;
  CHECK(event["count"] == 1);
  CHECK(event["reason"] == "PodsFailed");
  CHECK(event["type"] == "Warning");
  CHECK(event["message"] == "no pods");
  CHECK(event["source"]["component"] == "dpcm-operator");
  CHECK(event["involvedObject"]["name"] == "web");
  CHECK(event["involvedObject"]["uid"] == "uid-web");
  CHECK(event["metadata"]["namespace"] == "default");
  CHECK(event["metadata"]["name"].get<std::string>().rfind("web.", 0) == 0);
  CHECK(event["firstTimestamp"] == event["lastTimestamp"]);
  // Nothing more is owed; the series is asked about again when it can no longer grow.
  const auto idle = correlator.Take(observed.series);
  CHECK_FALSE(idle.write);
  REQUIRE(idle.next);
  CHECK(*idle.next == clock.Now() + CorrelatorOptions{}.window);
  CHECK(correlator.Owing().empty());
}

TEST_CASE("EventCorrelator forgets a series that owes nothing once it is quiet for a window") {
  FakeClock clock;
  CorrelatorOptions options;
  options.window = 10min;
  options.update_interval = 30s;
  EventCorrelator correlator("dpcm-operator", clock, options);
  const auto first = correlator.Observe(Failed());
  const auto created = TakeAndWrite(correlator, first.series);
  REQUIRE(created);
  // A repeat, not yet written when the window passes: still owed, so written, not dropped.
  clock.Advance(1s);
  correlator.Observe(Failed());
  clock.Advance(10min + 1s);
  const auto owed = TakeAndWrite(correlator, first.series);
  REQUIRE(owed);
  CHECK(owed->event["count"] == 2);
  CHECK(correlator.size() == 1);
  // Written and quiet for a window since its last occurrence: forgotten.
  const auto idle = correlator.Take(first.series);
  CHECK_FALSE(idle.write);
  CHECK_FALSE(idle.next);
  CHECK(correlator.size() == 0);
  // The same failure later is a new Event.
  const auto again = correlator.Observe(Failed());
  const auto recreated = TakeAndWrite(correlator, again.series);
  REQUIRE(recreated);
  CHECK(recreated->kind == Write::Kind::kCreate);
  CHECK(recreated->event["count"] == 1);
  CHECK(recreated->event["metadata"]["name"] != created->event["metadata"]["name"]);
}

TEST_CASE("EventCorrelator makes a settled series' Event again, the same, on its next occurrence") {
  // A series that owes nothing keeps only the Event's name and first time; the repeat
  // must still update that Event, not another, with the message cut as at first.
  FakeClock clock;
  CorrelatorOptions options;
  options.update_interval = 30s;
  EventCorrelator correlator("dpcm-operator", clock, options);
  const std::string message(kMaxMessageBytes + 100, 'x');
  const auto first = correlator.Observe(Failed("web", message));
  const auto created = TakeAndWrite(correlator, first.series);
  REQUIRE(created);
  CHECK(correlator.Owing().empty());

  clock.Advance(5min);
  const auto again = correlator.Observe(Failed("web", message));
  CHECK(again.series == first.series);
  clock.Advance(30s);
  const auto update = TakeAndWrite(correlator, again.series);
  REQUIRE(update);
  CHECK(update->kind == Write::Kind::kUpdate);
  CHECK(update->event["count"] == 2);
  nlohmann::json expected = created->event;
  expected["count"] = 2;
  expected["lastTimestamp"] = update->event["lastTimestamp"];
  CHECK(update->event == expected);
  CHECK(update->event["lastTimestamp"] != created->event["lastTimestamp"]);
}

TEST_CASE("EventCorrelator folds identical occurrences into one Event, written once per interval") {
  FakeClock clock;
  CorrelatorOptions options;
  options.update_interval = 30s;
  EventCorrelator correlator("dpcm-operator", clock, options);
  const auto first = correlator.Observe(Failed());
  const auto created = TakeAndWrite(correlator, first.series);
  REQUIRE(created);
  const std::string name = created->event["metadata"]["name"];
  const auto created_at = clock.Now();

  // The same failure on every reconcile, once a second: merged, not written yet.
  for (int i = 0; i < 10; ++i) {
    clock.Advance(1s);
    const auto again = correlator.Observe(Failed());
    CHECK(again.series == first.series);
    CHECK(again.due == created_at + 30s);
  }
  const auto early = correlator.Take(first.series);
  CHECK_FALSE(early.write);
  REQUIRE(early.next);
  CHECK(*early.next == created_at + 30s);

  clock.Advance(20s);
  const auto update = TakeAndWrite(correlator, first.series);
  REQUIRE(update);
  CHECK(update->kind == Write::Kind::kUpdate);
  CHECK(update->event["count"] == 11);
  CHECK(update->event["metadata"]["name"] == name);
  CHECK(update->event["firstTimestamp"] == created->event["firstTimestamp"]);
  CHECK(update->event["lastTimestamp"] != created->event["lastTimestamp"]);
  CHECK(correlator.Owing().empty());

  // A reconciler failing once a second for ten minutes: one create and one update per
  // interval at most, however many occurrences.
  int writes = 0;
  for (int second = 0; second < 600; ++second) {
    clock.Advance(1s);
    const auto observed = correlator.Observe(Failed());
    if (observed.due <= clock.Now() && TakeAndWrite(correlator, observed.series)) ++writes;
  }
  CHECK(writes == 20);
}

TEST_CASE("EventCorrelator keeps different objects, types, reasons and messages apart") {
  FakeClock clock;
  EventCorrelator correlator("dpcm-operator", clock);
  const auto base = correlator.Observe(Failed());
  CHECK(correlator.Observe(Failed("db")).series != base.series);
  CHECK(correlator.Observe(Failed("web", "other message")).series != base.series);
  CHECK(correlator.Observe({Domain("web"), "Normal", "PodsFailed", "no pods"}).series !=
        base.series);
  CHECK(correlator.Observe({Domain("web"), "Warning", "Other", "no pods"}).series != base.series);
  ObjectReference recreated = Domain("web");
  recreated.uid = "uid-2";  // deleted and created again under the same name
  CHECK(correlator.Observe({recreated, "Warning", "PodsFailed", "no pods"}).series != base.series);
  CHECK(correlator.size() == 6);
  CHECK(correlator.Owing().size() == 6);
}

TEST_CASE("EventCorrelator starts a new Event after a quiet window") {
  FakeClock clock;
  CorrelatorOptions options;
  options.window = 10min;
  EventCorrelator correlator("dpcm-operator", clock, options);
  const auto first = correlator.Observe(Failed());
  const auto created = TakeAndWrite(correlator, first.series);
  REQUIRE(created);
  clock.Advance(10min + 1s);
  const auto later = correlator.Observe(Failed());
  const auto recreated = TakeAndWrite(correlator, later.series);
  REQUIRE(recreated);
  CHECK(recreated->kind == Write::Kind::kCreate);
  CHECK(recreated->event["count"] == 1);
  CHECK(recreated->event["metadata"]["name"] != created->event["metadata"]["name"]);
  CHECK(correlator.size() == 1);
}

TEST_CASE("EventCorrelator limits writes per object: a burst, then one per refill") {
  FakeClock clock;
  CorrelatorOptions options;
  options.spam_burst = 3;
  options.spam_refill = 5min;
  EventCorrelator correlator("dpcm-operator", clock, options);
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    const auto observed = correlator.Observe(Failed("web", "message " + std::to_string(i)));
    CHECK(TakeAndWrite(correlator, observed.series));
  }
  const auto spam = correlator.Observe(Failed("web", "message 3"));
  const auto refused = correlator.Take(spam.series);
  CHECK_FALSE(refused.write);
  REQUIRE(refused.next);
  CHECK(*refused.next == clock.Now() + 5min);
  // Another object has its own bucket.
  CHECK(TakeAndWrite(correlator, correlator.Observe(Failed("db")).series));

  // The refused series keeps counting and is written whole once a token is back.
  correlator.Observe(Failed("web", "message 3"));
  clock.Advance(5min);
  const auto written = TakeAndWrite(correlator, spam.series);
  REQUIRE(written);
  CHECK(written->kind == Write::Kind::kCreate);
  CHECK(written->event["count"] == 2);
}

TEST_CASE("EventCorrelator creates an expired Event again, with the series' whole count") {
  FakeClock clock;
  EventCorrelator correlator("dpcm-operator", clock);
  const auto series = correlator.Observe(Failed()).series;
  REQUIRE(TakeAndWrite(correlator, series));
  correlator.Observe(Failed());
  clock.Advance(1min);
  const auto update = correlator.Take(series);
  REQUIRE(update.write);
  CHECK(update.write->kind == Write::Kind::kUpdate);
  // The API expired the Event (its TTL can be shorter than a series).
  const auto again = correlator.Written(series, Status::NotFound("events \"web.x\" not found"));
  REQUIRE(again);
  CHECK(*again == clock.Now());
  const auto recreate = TakeAndWrite(correlator, series);
  REQUIRE(recreate);
  CHECK(recreate->kind == Write::Kind::kCreate);
  CHECK(recreate->event["count"] == 2);
  CHECK(recreate->event["metadata"]["name"] == update.write->event["metadata"]["name"]);
}

TEST_CASE("EventCorrelator does not retry a failed write; the next occurrence writes again") {
  FakeClock clock;
  EventCorrelator correlator("dpcm-operator", clock);
  const auto first = correlator.Observe(Failed());
  REQUIRE(TakeAndWrite(correlator, first.series, Status::Transport("connection refused")));
  CHECK(correlator.Owing().empty());
  const auto second = correlator.Observe(Failed());
  CHECK(second.due == clock.Now());  // never created: at once
  const auto retried = TakeAndWrite(correlator, second.series);
  REQUIRE(retried);
  CHECK(retried->kind == Write::Kind::kCreate);
  CHECK(retried->event["count"] == 2);
}

TEST_CASE("EventCorrelator keeps at most max_series, forgetting the least recent") {
  FakeClock clock;
  CorrelatorOptions options;
  options.max_series = 3;
  EventCorrelator correlator("dpcm-operator", clock, options);
  const auto a = correlator.Observe(Failed("a"));
  clock.Advance(1s);
  const auto b = correlator.Observe(Failed("b"));
  clock.Advance(1s);
  correlator.Observe(Failed("c"));
  clock.Advance(1s);
  correlator.Observe(Failed("a"));  // a is recent again
  clock.Advance(1s);
  correlator.Observe(Failed("d"));
  CHECK(correlator.size() == 3);
  CHECK_FALSE(correlator.Take(b.series).write);  // b was forgotten
  CHECK(correlator.Take(a.series).write);
}

TEST_CASE("EventCorrelator answers nothing for a series name it did not give") {
  FakeClock clock;
  EventCorrelator correlator("dpcm-operator", clock);
  const auto observed = correlator.Observe(Failed());
  for (const std::string name : {"", "x", "12x", "-1", "99999999999999999999999", "7"}) {
    CAPTURE(name);
    const auto due = correlator.Take(name);
    CHECK_FALSE(due.write);
    CHECK_FALSE(due.next);
    CHECK_FALSE(correlator.Written(name, Status::Ok()));
  }
  CHECK(correlator.Take(observed.series).write);
}

}  // namespace
}  // namespace dpcm::events
