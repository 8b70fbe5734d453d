// The fields of a coordination.k8s.io/v1 Lease that elections read and write, and MicroTime I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace dpcm::election {

using WallTime = std::chrono::system_clock::time_point;

// Lease.spec plus the metadata an election needs for conditional writes.
struct LeaseRecord {
  std::string name;
  std::string resource_version;  // empty: the Lease does not exist yet
  std::string holder;
  int lease_duration_seconds = 0;
  std::optional<WallTime> acquire_time;
  std::optional<WallTime> renew_time;
  int64_t transitions = 0;  // leaseTransitions: the fencing epoch

  // True when `now` is past renewTime + leaseDurationSeconds (or there is no renewTime).
  bool ExpiredAt(WallTime now) const;
};

// Reads a Lease object; missing or malformed fields keep their zero values.
LeaseRecord ParseLease(const nlohmann::json& lease);

// Writes `record` into `lease` (spec and metadata.resourceVersion), keeping every other
// field (labels, owner references) as it was.
void ApplyLease(const LeaseRecord& record, nlohmann::json& lease);

// RFC 3339 with microseconds, as metav1.MicroTime: "2026-11-22T10:47:25.123456Z".
std::string FormatMicroTime(WallTime time);
// RFC 3339 (with or without fractional seconds, "Z" only); nullopt if malformed.
std::optional<WallTime> ParseTime(const std::string& text);
// RFC 3339 without fractional seconds, as metav1.Time.
std::string FormatTime(WallTime time);

}  // namespace dpcm::election
