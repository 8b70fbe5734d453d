#include "pkg/election/lease_record.h"

#include <array>
#include <cstdio>
#include <ctime>
#include <string_view>

namespace dpcm::election {
namespace {

std::tm ToUtc(WallTime time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  return utc;
}

std::string StringAt(const nlohmann::json& object, const char* a, const char* b) {
  if (!object.is_object() || !object.contains(a) || !object[a].is_object()) return "";
  const auto& inner = object[a];
  return inner.contains(b) && inner[b].is_string() ? inner[b].get<std::string>() : "";
}

}  // namespace

bool LeaseRecord::ExpiredAt(WallTime now) const {
  if (!renew_time) return true;
  return now > *renew_time + std::chrono::seconds(lease_duration_seconds);
}

std::string FormatMicroTime(WallTime time) {
  const std::tm utc = ToUtc(time);
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(time.time_since_epoch()) %
      std::chrono::seconds(1);
  std::array<char, 96> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ",
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                utc.tm_sec, static_cast<long>(micros.count()));
  return buffer.data();
}

std::string FormatTime(WallTime time) {
  const std::tm utc = ToUtc(time);
  std::array<char, 96> buffer{};
  std::snprintf(buffer.data(), buffer.size(), "%04d-%02d-%02dT%02d:%02d:%02dZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec);
  return buffer.data();
}

std::optional<WallTime> ParseTime(const std::string& text) {
  // Exactly "YYYY-MM-DDThh:mm:ss" first: sscanf alone takes "1", " 1" or "+1" for a field.
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (text.size() < kShape.size()) return std::nullopt;
  for (size_t i = 0; i < kShape.size(); ++i) {
    const bool digit = text[i] >= '0' && text[i] <= '9';
    if (kShape[i] == 'd' ? !digit : text[i] != kShape[i]) return std::nullopt;
  }
  std::tm utc{};
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &utc.tm_year, &utc.tm_mon,
                  &utc.tm_mday, &utc.tm_hour, &utc.tm_min, &utc.tm_sec, &consumed) != 6) {
    return std::nullopt;
  }
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  std::chrono::microseconds fraction{0};
  size_t at = static_cast<size_t>(consumed);
  if (at < text.size() && text[at] == '.') {
    long scale = 100000;
    for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at) {
      fraction += std::chrono::microseconds((text[at] - '0') * scale);
      scale /= 10;
    }
  }
  if (at + 1 != text.size() || text[at] != 'Z') return std::nullopt;
  const std::tm fields = utc;
  const std::time_t seconds = timegm(&utc);  // normalizes utc: month 13, Feb 30, 25:00 roll over
  if (seconds == -1 || utc.tm_year != fields.tm_year || utc.tm_mon != fields.tm_mon ||
      utc.tm_mday != fields.tm_mday || utc.tm_hour != fields.tm_hour ||
      utc.tm_min != fields.tm_min || utc.tm_sec != fields.tm_sec) {
    return std::nullopt;
  }
  return std::chrono::system_clock::from_time_t(seconds) + fraction;
}

LeaseRecord ParseLease(const nlohmann::json& lease) {
  LeaseRecord record;
  record.name = StringAt(lease, "metadata", "name");
  record.resource_version = StringAt(lease, "metadata", "resourceVersion");
  if (!lease.is_object() || !lease.contains("spec") || !lease["spec"].is_object()) return record;
  const auto& spec = lease["spec"];
  record.holder = StringAt(lease, "spec", "holderIdentity");
  if (spec.contains("leaseDurationSeconds") && spec["leaseDurationSeconds"].is_number_integer()) {
    record.lease_duration_seconds = spec["leaseDurationSeconds"].get<int>();
  }
  if (spec.contains("leaseTransitions") && spec["leaseTransitions"].is_number_integer()) {
    record.transitions = spec["leaseTransitions"].get<int64_t>();
  }
  record.acquire_time = ParseTime(StringAt(lease, "spec", "acquireTime"));
  record.renew_time = ParseTime(StringAt(lease, "spec", "renewTime"));
  return record;
}

void ApplyLease(const LeaseRecord& record, nlohmann::json& lease) {
  lease["apiVersion"] = "coordination.k8s.io/v1";
  lease["kind"] = "Lease";
  lease["metadata"]["name"] = record.name;
  if (!record.resource_version.empty()) {
    lease["metadata"]["resourceVersion"] = record.resource_version;
  }
  auto& spec = lease["spec"];
  spec["holderIdentity"] = record.holder;
  spec["leaseDurationSeconds"] = record.lease_duration_seconds;
  spec["leaseTransitions"] = record.transitions;
  if (record.acquire_time) spec["acquireTime"] = FormatMicroTime(*record.acquire_time);
  if (record.renew_time) spec["renewTime"] = FormatMicroTime(*record.renew_time);
}

}  // namespace dpcm::election
