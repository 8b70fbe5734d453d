// Plain-text tables and times for kubectl dpcm's screens: kubectl's column layout and short ages.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace dpcm::kubectl_plugin {

using WallTime = std::chrono::system_clock::time_point;

// Renders rows under upper-case headers as kubectl does: columns left-aligned, three
// spaces apart, no trailing blanks. A row shorter than the headers is padded with "".
std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows);

// Parses an RFC 3339 time ("2026-12-02T11:00:00Z", with optional fraction and offset);
// nullopt when `text` is not one.
std::optional<WallTime> ParseTime(const std::string& text);

// "45s", "3m", "2h", "5d": how long before `now` `then` was (kubectl's short ages);
// "0s" for a time in the future.
std::string ShortAge(WallTime then, WallTime now);

}  // namespace dpcm::kubectl_plugin
