// Records Kubernetes Events about objects, in the background so reconciles never wait on them.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/events/correlator.h"
#include "pkg/events/event.h"
#include "pkg/events/event_sink.h"
#include "pkg/scheduler/scheduler.h"

namespace dpcm::events {

// How long the recorder's destructor goes on writing what is owed.
inline constexpr std::chrono::seconds kFlushTime{1};

struct RecorderOptions {
  Clock* clock = nullptr;  // null = the real clock; must outlive the recorder
  // How repeats are folded into one Event and how often Events are written.
  CorrelatorOptions correlation;
};

// Records Events as client-go's recorder does, de-duplicated by an EventCorrelator: an
// occurrence identical to a recent one (same involved object, type, reason and message)
// adds to that Event's count and lastTimestamp instead of making a new Event, and each
// Event is written at most once per correlation.update_interval (so a reconciler that
// reports the same failure on every reconcile costs one write per interval, not one per
// reconcile), within a per-object spam limit (see CorrelatorOptions for the exact rules).
// Writes happen on one background thread (a scheduler::Scheduler on the injected clock);
// Record only touches memory, never blocks on the API. A failed write is logged; it is not
// retried, but the next occurrence writes the series' whole count. Thread-safe.
class EventRecorder {
 public:
  // Writes to the API through `client` (which must outlive the recorder). `component` is
  // every Event's source.component.
  EventRecorder(client::ApiClient& client, std::string component, RecorderOptions options = {});
  // Writes to `sink` (tests: a recording fake).
  EventRecorder(std::unique_ptr<EventSink> sink, std::string component,
                RecorderOptions options = {});
  // Stops the writer, then writes what is still owed (updates before their interval too),
  // one write per series, on the caller's thread, for at most kFlushTime on the clock.
  ~EventRecorder();
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  void Normal(const ObjectReference& about, const std::string& reason, const std::string& message) {
    Record(about, "Normal", reason, message);
  }
  void Warning(const ObjectReference& about, const std::string& reason,
               const std::string& message) {
    Record(about, "Warning", reason, message);
  }
  // Logs the occurrence and counts it in its series; its write is due at once for a new
  // series, else update_interval after the series' last write.
  void Record(const ObjectReference& about, const std::string& type, const std::string& reason,
              const std::string& message);

 private:
  using TimePoint = Clock::Monotonic::time_point;

  // Writes what `series` owes now, if anything; returns when it owes the next write.
  std::optional<TimePoint> WriteOwed(const std::string& series, bool flush);

  std::unique_ptr<EventSink> sink_;
  Clock& clock_;
  std::mutex mutex_;
  EventCorrelator correlator_;      // guarded by mutex_
  scheduler::Scheduler scheduler_;  // last: its worker calls WriteOwed
};

}  // namespace dpcm::events
