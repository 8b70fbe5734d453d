#include "pkg/watch/event_decoder.h"

namespace dpcm::watch {

DecodedLine WatchEventDecoder::DecodeLine(std::string_view line) {
  auto parsed = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return Status::Decode("watch event is not a JSON object: " + std::string(line.substr(0, 120)));
  }
  const auto type = parsed.find("type");
  const auto object = parsed.find("object");
  if (type == parsed.end() || !type->is_string() || object == parsed.end() ||
      !object->is_object()) {
    return Status::Decode("watch event lacks a type or an object");
  }
  WatchEvent event;
  const auto& name = type->get_ref<const std::string&>();
  if (name == "ADDED") {
    event.type = EventType::kAdded;
  } else if (name == "MODIFIED") {
    event.type = EventType::kModified;
  } else if (name == "DELETED") {
    event.type = EventType::kDeleted;
  } else if (name == "BOOKMARK") {
    event.type = EventType::kBookmark;
  } else if (name == "ERROR") {
    event.type = EventType::kError;
  } else {
    return Status::Decode("unknown watch event type \"" + name.substr(0, 40) + "\"");
  }
  event.object = std::move(*object);
  return event;
}

std::vector<DecodedLine> WatchEventDecoder::Feed(std::string_view chunk) {
  std::vector<DecodedLine> out;
  while (!chunk.empty()) {
    const auto newline = chunk.find('\n');
    const std::string_view piece = chunk.substr(0, newline);
    if (!discarding_) {
      if (pending_.size() + piece.size() > max_line_bytes_) {
        out.emplace_back(Status::Decode("watch event longer than " +
                                        std::to_string(max_line_bytes_) + " bytes dropped"));
        pending_.clear();
        discarding_ = true;
      } else {
        pending_.append(piece);
      }
    }
    if (newline == std::string_view::npos) break;
    chunk.remove_prefix(newline + 1);
    if (!discarding_ && pending_.find_first_not_of(" \t\r") != std::string::npos) {
      out.push_back(DecodeLine(pending_));
    }
    pending_.clear();
    discarding_ = false;
  }
  return out;
}

}  // namespace dpcm::watch
