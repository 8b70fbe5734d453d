// Decodes a watch stream's bytes into events, one JSON object per line, across chunk boundaries.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::watch {

enum class EventType { kAdded, kModified, kDeleted, kBookmark, kError };

// One line of a watch stream. For kError the object is the metav1.Status the server sent.
struct WatchEvent {
  EventType type = EventType::kError;
  nlohmann::json object;
};

// Either an event or the reason a line could not be decoded.
using DecodedLine = Result<WatchEvent>;

// Splits the stream on newlines and decodes each complete line; a partial line is kept
// until the rest arrives. A malformed line yields an error for that line only; decoding
// goes on with the next. Not thread-safe: one decoder per stream.
class WatchEventDecoder {
 public:
  // `max_line_bytes` bounds memory: a longer line is dropped with an error.
  explicit WatchEventDecoder(size_t max_line_bytes = size_t{16} * 1024 * 1024)
      : max_line_bytes_(max_line_bytes) {}

  // Appends `chunk` and returns what the newly completed lines decode to, in order.
  std::vector<DecodedLine> Feed(std::string_view chunk);
  // Bytes of an incomplete line held back.
  size_t pending_bytes() const { return pending_.size(); }

 private:
  static DecodedLine DecodeLine(std::string_view line);

  size_t max_line_bytes_;
  std::string pending_;
  bool discarding_ = false;  // inside an over-long line, skipping to its end
};

}  // namespace dpcm::watch
