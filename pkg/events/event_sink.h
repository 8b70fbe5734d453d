// Where the event recorder writes Events: the API server, or a test's recording fake.
#pragma once

#include <nlohmann/json.hpp>

#include "pkg/client/api_client.h"
#include "pkg/status/status.h"

namespace dpcm::events {

// Writes Events. Called from the recorder's one writer thread (and, on shutdown, from the
// thread destroying the recorder), one call at a time.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Creates `event`, a complete core/v1 Event (metadata.name and namespace set).
  virtual Status Create(const nlohmann::json& event) = 0;
  // Sets count and lastTimestamp of the existing Event named by `event`'s metadata to
  // `event`'s. NotFound when that Event is gone (the API server expires Events, after one
  // hour by default); the recorder then creates it anew.
  virtual Status Update(const nlohmann::json& event) = 0;
};

// Writes to the API server: POST, and a JSON merge patch of count and lastTimestamp.
class ApiEventSink final : public EventSink {
 public:
  // `client` must outlive the sink.
  explicit ApiEventSink(client::ApiClient& client) : client_(client) {}
  Status Create(const nlohmann::json& event) override;
  Status Update(const nlohmann::json& event) override;

 private:
  client::ApiClient& client_;
};

}  // namespace dpcm::events
