#include "pkg/events/event_recorder.h"

#include <spdlog/spdlog.h>

namespace dpcm::events {
namespace {

Clock& ClockOf(const RecorderOptions& options) {
  return options.clock != nullptr ? *options.clock : RealClock::Instance();
}

}  // namespace

EventRecorder::EventRecorder(client::ApiClient& client, std::string component,
                             RecorderOptions options)
    : EventRecorder(std::make_unique<ApiEventSink>(client), std::move(component), options) {}

EventRecorder::EventRecorder(std::unique_ptr<EventSink> sink, std::string component,
                             RecorderOptions options)
    : sink_(std::move(sink)),
      clock_(ClockOf(options)),
      correlator_(std::move(component), clock_, options.correlation),
      scheduler_({"events", 1, &clock_},
                 [this](const std::string& series) { return WriteOwed(series, false); }) {}

EventRecorder::~EventRecorder() {
  scheduler_.Stop();
  std::set<std::string> owing;
  {
    std::lock_guard lock(mutex_);
    owing = correlator_.Owing();
  }
  // Bounded, so that a slow or unreachable API cannot hold up the operator's exit.
  const auto deadline = clock_.Now() + kFlushTime;
  std::size_t left = owing.size();
  for (const auto& series : owing) {
    if (clock_.Now() > deadline) {
      spdlog::warn("events: out of time on shutdown; {} Event write(s) dropped", left);
      break;
    }
    WriteOwed(series, true);
    --left;
  }
}

void EventRecorder::Record(const ObjectReference& about, const std::string& type,
                           const std::string& reason, const std::string& message) {
  spdlog::info("event {} {}/{}: {} {}", type, about.ns, about.name, reason, message);
  EventCorrelator::Observed observed;
  {
    std::lock_guard lock(mutex_);
    observed = correlator_.Observe({about, type, reason, message});
  }
  scheduler_.RunAt(observed.series, observed.due);
}

std::optional<EventRecorder::TimePoint> EventRecorder::WriteOwed(const std::string& series,
                                                                 bool flush) {
  EventCorrelator::Due due;
  {
    std::lock_guard lock(mutex_);
    due = correlator_.Take(series, flush);
  }
  if (!due.write) return due.next;
  const Write& write = *due.write;
  const bool create = write.kind == Write::Kind::kCreate;
  const Status status = create ? sink_->Create(write.event) : sink_->Update(write.event);
  if (!status.ok() && !(!create && status.IsNotFound())) {
    spdlog::warn("could not record event {}: {}", write.event.value("reason", ""),
                 status.ToString());
  }
  std::lock_guard lock(mutex_);
  return correlator_.Written(series, status);
}

}  // namespace dpcm::events
