// A core/v1 Event and the object it is about, as the recorder writes them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

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

  bool operator==(const ObjectReference&) const = default;
};

// What one Record call reports: client-go's event fields that identify an occurrence.
struct Occurrence {
  ObjectReference about;
  std::string type;    // "Normal" or "Warning"
  std::string reason;  // UpperCamelCase, e.g. "FailingOver"
  std::string message;

  bool operator==(const Occurrence&) const = default;
};

// The longest message an Event carries; longer ones are cut (the API allows 1 KiB here).
inline constexpr std::size_t kMaxMessageBytes = 1024;

// A new core/v1 Event named `name` for `occurrence`, from source `component`, with count 1
// and first/lastTimestamp `at`.
nlohmann::json MakeEvent(const Occurrence& occurrence, const std::string& component,
                         const std::string& name, Clock::Wall::time_point at);

// "<object name>.<16 random hex digits>": a fresh Event name about `about`.
std::string NewEventName(const ObjectReference& about);

}  // namespace dpcm::events
