// What `kubectl dpcm status` and `why` show, built from API objects without any I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cmd/kubectl-dpcm/table.h"

namespace dpcm::kubectl_plugin {

using Json = nlohmann::json;

// One phase of a failover: its name and the milliseconds since the failure was first
// seen at which it finished (cumulative).
struct FailoverPhase {
  std::string name;
  int64_t ms = 0;
};

// status.lastFailover of a ProcessDomain (the flight recorder).
struct FailoverRecord {
  std::string from;
  std::string to;
  std::string reason;
  int64_t epoch = 0;
  std::string time;  // RFC 3339
  std::vector<FailoverPhase> phases;
  // What became of the new DC's role hook: "none" (the domain has none: no
  // hooksAcknowledged phase), "pending", "acknowledged" or "unrecorded"; "" from an
  // operator that does not record it.
  std::string hooks;

  // The last phase's cumulative milliseconds (the whole failover), or nullopt without phases.
  std::optional<int64_t> TotalMs() const;
};

// The domain's status.lastFailover, or nullopt when the status has none (an operator
// without the flight recorder, or no failover yet). Malformed fields read as empty.
std::optional<FailoverRecord> LastFailover(const Json& domain);

// `kubectl dpcm status`: a domain table, then a member table, for `domains` (ProcessDomain
// objects) as of `now`. `show_namespace` adds a NAMESPACE column (for -A).
std::string RenderStatus(const std::vector<Json>& domains, bool show_namespace, WallTime now);
// The same as JSON: {"domains": [{namespace, name, phase, dc, epoch, ready, failovers,
// paused, lastFailover, lastFailoverTime, members: [...]}]}.
Json StatusJson(const std::vector<Json>& domains);

// A domain Event in `why`: one of its FailingOver or Promoted Events.
struct FailoverEvent {
  std::string time;  // lastTimestamp, else eventTime, else firstTimestamp
  std::string reason;
  std::string message;
  int64_t count = 1;
};

// The FailingOver and Promoted Events among `events` (core v1 Events of any reason),
// newest first (by time, then by resourceVersion).
std::vector<FailoverEvent> FailoverEvents(const std::vector<Json>& events);

// `kubectl dpcm why DOMAIN`: the domain's DC and failover count, the last failover with
// its per-phase timings (cumulative and per step), then `events` (see FailoverEvents).
std::string RenderWhy(const Json& domain, const std::vector<Json>& events, WallTime now);
// The same as JSON: {namespace, name, dc, epoch, failovers, lastFailover, events: [...]}.
Json WhyJson(const Json& domain, const std::vector<Json>& events);

}  // namespace dpcm::kubectl_plugin
