#include "cmd/kubectl-dpcm/table.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <string_view>

namespace dpcm::kubectl_plugin {

std::string RenderTable(const std::vector<std::string>& headers,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(headers.size(), 0);
  for (size_t c = 0; c < headers.size(); ++c) widths[c] = headers[c].size();
  for (const auto& row : rows) {
    for (size_t c = 0; c < headers.size() && c < row.size(); ++c) {
      widths[c] = std::max(widths[c], row[c].size());
    }
  }
  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t c = 0; c < headers.size(); ++c) {
      const std::string cell = c < cells.size() ? cells[c] : "";
      text += cell;
      if (c + 1 < headers.size()) text += std::string(widths[c] - cell.size() + 3, ' ');
    }
    text.erase(text.find_last_not_of(' ') + 1);
    out += text + "\n";
  };
  line(headers);
  for (const auto& row : rows) line(row);
  return out;
}

std::optional<WallTime> ParseTime(const std::string& text) {
  std::tm tm{};
  int consumed = 0;
  // NOLINTNEXTLINE(cert-err34-c): sscanf's count and %n are checked below
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  const time_t seconds = timegm(&tm);
  if (seconds == static_cast<time_t>(-1)) return std::nullopt;
  auto rest = std::string_view(text).substr(static_cast<size_t>(consumed));
  std::chrono::nanoseconds fraction{0};
  if (!rest.empty() && rest[0] == '.') {
    size_t digits = 1;
    int64_t scale = 100000000;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
      fraction += std::chrono::nanoseconds((rest[digits] - '0') * scale);
      scale /= 10;
      ++digits;
    }
    rest = rest.substr(digits);
  }
  std::chrono::seconds offset{0};
  if (rest == "Z" || rest == "z") {
    // UTC
  } else if (rest.size() == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':') {
    int hours = 0;
    int minutes = 0;
    // NOLINTNEXTLINE(cert-err34-c): the count is checked
    if (std::sscanf(std::string(rest.substr(1)).c_str(), "%2d:%2d", &hours, &minutes) != 2) {
      return std::nullopt;
    }
    offset = std::chrono::hours(hours) + std::chrono::minutes(minutes);
    if (rest[0] == '+') offset = -offset;
  } else {
    return std::nullopt;
  }
  return WallTime(std::chrono::seconds(seconds) + offset) +
         std::chrono::duration_cast<WallTime::duration>(fraction);
}

std::string ShortAge(WallTime then, WallTime now) {
  const int64_t s =
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::seconds>(now - then).count());
  if (s < 120) return std::to_string(s) + "s";
  if (s < int64_t{2} * 3600) return std::to_string(s / 60) + "m";
  if (s < int64_t{2} * 86400) return std::to_string(s / 3600) + "h";
  return std::to_string(s / 86400) + "d";
}

}  // namespace dpcm::kubectl_plugin
