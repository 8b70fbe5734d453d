// Records Kubernetes Events about objects, in the background so reconciles never wait on them.
#pragma once

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"

namespace dpcm::events {

// The object an Event is about (core/v1 ObjectReference).
struct ObjectReference {
  std::string api_version;
  std::string kind;
  std::string ns;
  std::string name;
  std::string uid;

  // From an object's apiVersion, kind and metadata.
  static ObjectReference Of(const nlohmann::json& object);
};

// Queues Events and writes them from one background thread. Bounded: when the API is
// slow and the queue is full, the oldest queued event is dropped (and logged) rather
// than blocking the caller. A failed write is logged, never retried. Thread-safe.
class EventRecorder {
 public:
  // `client` and `clock` must outlive the recorder. `component` is source.component.
  EventRecorder(client::ApiClient& client, std::string component,
                Clock& clock = RealClock::Instance(), size_t max_queued = 1000);
  ~EventRecorder();  // writes what is queued (up to a second's worth), then stops
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  void Normal(const ObjectReference& about, const std::string& reason, const std::string& message) {
    Record(about, "Normal", reason, message);
  }
  void Warning(const ObjectReference& about, const std::string& reason,
               const std::string& message) {
    Record(about, "Warning", reason, message);
  }
  void Record(const ObjectReference& about, const std::string& type, const std::string& reason,
              const std::string& message);

 private:
  void Run(const std::stop_token& stop);

  client::ApiClient& client_;
  const std::string component_;
  Clock& clock_;
  const size_t max_queued_;
  std::mutex mutex_;
  std::condition_variable_any queued_;
  std::deque<nlohmann::json> queue_;  // guarded by mutex_
  std::jthread thread_;
};

}  // namespace dpcm::events
