// EventRecorder with a recording sink on a fake clock: the first occurrence is written at
// once, repeats become one update per interval, an expired Event is created again, and what
// is owed is written on shutdown.
#include "pkg/events/event_recorder.h"

#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/support/eventually.h"

namespace dpcm::events {
namespace {

using namespace std::chrono_literals;
using testing::AdvanceUntil;
using testing::Eventually;

// Records every write; answers updates with `update_status`.
class RecordingSink final : public EventSink {
 public:
  struct Log {
    std::mutex mutex;
    std::vector<Write> writes;
    Status update_status;
  };

  explicit RecordingSink(std::shared_ptr<Log> log) : log_(std::move(log)) {}
  Status Create(const nlohmann::json& event) override {
    std::lock_guard lock(log_->mutex);
    log_->writes.push_back({Write::Kind::kCreate, event});
    return Status::Ok();
  }
  Status Update(const nlohmann::json& event) override {
    std::lock_guard lock(log_->mutex);
    log_->writes.push_back({Write::Kind::kUpdate, event});
    return log_->update_status;
  }

 private:
  std::shared_ptr<Log> log_;
};

std::vector<Write> Writes(RecordingSink::Log& log) {
  std::lock_guard lock(log.mutex);
  return log.writes;
}

const ObjectReference kDomain{"dpcm.io/v1alpha1", "ProcessDomain", "default", "web", "uid-web"};

RecorderOptions Options(FakeClock& clock) {
  RecorderOptions options;
  options.clock = &clock;
  options.correlation.update_interval = 30s;
  return options;
}

TEST_CASE("EventRecorder writes the first occurrence at once and repeats once per interval") {
  FakeClock clock;
  auto log = std::make_shared<RecordingSink::Log>();
  {
    EventRecorder recorder(std::make_unique<RecordingSink>(log), "dpcm-operator", Options(clock));
    recorder.Warning(kDomain, "PodsFailed", "no pods");
    REQUIRE(Eventually([&] { return Writes(*log).size() == 1; }));
    CHECK(Writes(*log)[0].kind == Write::Kind::kCreate);
    CHECK(Writes(*log)[0].event["count"] == 1);

    // A reconciler reporting the same failure 100 times within the interval.
    for (int i = 0; i < 100; ++i) {
      clock.Advance(100ms);
      recorder.Warning(kDomain, "PodsFailed", "no pods");
    }
    // Due 30 s after the create was written (which the sink saw a little before the
    // recorder noted it: the clock may have moved meanwhile).
    REQUIRE(AdvanceUntil(
        clock, [&] { return Writes(*log).size() == 2; }, 1s));
    const Write update = Writes(*log)[1];
    CHECK(update.kind == Write::Kind::kUpdate);
    CHECK(update.event["count"] == 101);
    CHECK(update.event["metadata"]["name"] == Writes(*log)[0].event["metadata"]["name"]);

    // Another reason is another Event, written at once.
    recorder.Normal(kDomain, "FailedOver", "web-1 is DC");
    REQUIRE(Eventually([&] { return Writes(*log).size() == 3; }));
    CHECK(Writes(*log)[2].event["reason"] == "FailedOver");
  }
  CHECK(Writes(*log).size() == 3);  // nothing else was owed on shutdown
}

TEST_CASE("EventRecorder creates an Event again when the API has expired it") {
  FakeClock clock;
  auto log = std::make_shared<RecordingSink::Log>();
  log->update_status = Status::NotFound("events \"web.x\" not found");
  EventRecorder recorder(std::make_unique<RecordingSink>(log), "dpcm-operator", Options(clock));
  recorder.Warning(kDomain, "PodsFailed", "no pods");
  REQUIRE(Eventually([&] { return Writes(*log).size() == 1; }));
  recorder.Warning(kDomain, "PodsFailed", "no pods");
  REQUIRE(AdvanceUntil(
      clock, [&] { return Writes(*log).size() == 3; }, 1s));
  const auto writes = Writes(*log);
  CHECK(writes[1].kind == Write::Kind::kUpdate);
  CHECK(writes[2].kind == Write::Kind::kCreate);
  CHECK(writes[2].event["count"] == 2);
}

TEST_CASE("EventRecorder writes what it owes when it is destroyed") {
  FakeClock clock;
  auto log = std::make_shared<RecordingSink::Log>();
  {
    EventRecorder recorder(std::make_unique<RecordingSink>(log), "dpcm-operator", Options(clock));
    recorder.Warning(kDomain, "PodsFailed", "no pods");
    REQUIRE(Eventually([&] { return Writes(*log).size() == 1; }));
    recorder.Warning(kDomain, "PodsFailed", "no pods");
    recorder.Warning(kDomain, "PodsFailed", "no pods");
  }  // before the interval is up
  const auto writes = Writes(*log);
  REQUIRE(writes.size() == 2);
  CHECK(writes[1].kind == Write::Kind::kUpdate);
  CHECK(writes[1].event["count"] == 3);
}

}  // namespace
}  // namespace dpcm::events
