#include "pkg/events/event.h"

#include <cstdint>
#include <random>

#include "pkg/election/lease_record.h"

namespace dpcm::events {

ObjectReference ObjectReference::Of(const nlohmann::json& object) {
  ObjectReference ref;
  if (!object.is_object()) return ref;
  ref.api_version = object.value("apiVersion", "");
  ref.kind = object.value("kind", "");
  if (object.contains("metadata") && object["metadata"].is_object()) {
    const auto& m = object["metadata"];
    ref.ns = m.value("namespace", "");
    ref.name = m.value("name", "");
    ref.uid = m.value("uid", "");
  }
  return ref;
}

nlohmann::json MakeEvent(const Occurrence& occurrence, const std::string& component,
                         const std::string& name, Clock::Wall::time_point at) {
  const ObjectReference& about = occurrence.about;
  const std::string now = election::FormatTime(at);
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", name}, {"namespace", about.ns}}},
          {"involvedObject",
           {{"apiVersion", about.api_version},
            {"kind", about.kind},
            {"namespace", about.ns},
            {"name", about.name},
            {"uid", about.uid}}},
          {"reason", occurrence.reason},
          {"message", occurrence.message.substr(0, kMaxMessageBytes)},
          {"type", occurrence.type},
          {"source", {{"component", component}}},
          {"firstTimestamp", now},
          {"lastTimestamp", now},
          {"count", 1}};
}

std::string NewEventName(const ObjectReference& about) {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = about.name + ".";
  uint64_t bits = generator();
  for (int i = 0; i < 16; ++i, bits >>= 4U) out.push_back(kHex[bits & 0xFU]);
  return out;
}

}  // namespace dpcm::events
