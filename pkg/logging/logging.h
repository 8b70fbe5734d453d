// Process-wide structured logging setup: --log-level and --log-format=json|text.
#pragma once

#include <string>

#include "pkg/status/status.h"

namespace dpcm::logging {

// Configures spdlog's default logger to write to stderr. `level`: trace, debug, info,
// warn, error. `format`: "text" (human) or "json" (one JSON object per line with time,
// level, logger and msg; the message is escaped). Returns kConfig for unknown values.
Status Configure(const std::string& level, const std::string& format);

}  // namespace dpcm::logging
