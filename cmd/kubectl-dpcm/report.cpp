#include "cmd/kubectl-dpcm/report.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "pkg/object/object.h"

namespace dpcm::kubectl_plugin {
namespace {

// The value at `pointer` when it has type T, else `fallback`. Never throws.
template <typename T>
T At(const Json& object, const char* pointer, T fallback) {
  const Json::json_pointer ptr(pointer);
  if (!object.is_object() || !object.contains(ptr)) return fallback;
  const Json& value = object.at(ptr);
  if constexpr (std::is_same_v<T, std::string>) {
    return value.is_string() ? value.get<std::string>() : fallback;
  } else if constexpr (std::is_same_v<T, bool>) {
    return value.is_boolean() ? value.get<bool>() : fallback;
  } else {
    return value.is_number_integer() ? value.get<T>() : fallback;
  }
}

std::string Text(const Json& object, const char* pointer) {
  return At<std::string>(object, pointer, "");
}

std::string BoolText(const Json& object, const char* pointer) {
  const Json::json_pointer ptr(pointer);
  if (!object.is_object() || !object.contains(ptr) || !object.at(ptr).is_boolean()) return "-";
  return object.at(ptr).get<bool>() ? "true" : "false";
}

std::string IntText(const Json& object, const char* pointer) {
  const Json::json_pointer ptr(pointer);
  if (!object.is_object() || !object.contains(ptr) || !object.at(ptr).is_number_integer()) {
    return "-";
  }
  return std::to_string(object.at(ptr).get<int64_t>());
}

std::string OrDash(const std::string& text) { return text.empty() ? "-" : text; }

// The line of `why` on the new DC's role hook, or "" when the record does not say.
std::string HooksLine(const std::string& hooks) {
  if (hooks.empty()) return "";
  if (hooks == "none") return "no role hooks: nothing to acknowledge (no hooksAcknowledged phase)";
  if (hooks == "pending") return "role hook: the new DC has not acknowledged its promotion yet";
  if (hooks == "acknowledged") return "role hook: the new DC acknowledged its promotion";
  if (hooks == "unrecorded") {
    return "role hook: acknowledgement time not recorded (the operator that recorded this "
           "failover stopped leading before it)";
  }
  return "role hook: " + hooks;
}

// "pod-deleted, 42 ms, 3m ago" for the LAST FAILOVER column.
std::string LastFailoverCell(const Json& domain, WallTime now) {
  std::vector<std::string> parts;
  std::string time = Text(domain, "/status/lastFailoverTime");
  if (auto record = LastFailover(domain)) {
    if (!record->reason.empty()) parts.push_back(record->reason);
    if (auto total = record->TotalMs()) parts.push_back(std::to_string(*total) + " ms");
    if (!record->time.empty()) time = record->time;
  }
  if (auto parsed = ParseTime(time)) {
    parts.push_back(ShortAge(*parsed, now) + " ago");
  } else if (!time.empty()) {
    parts.push_back(time);
  }
  std::string cell;
  for (const auto& part : parts) cell += (cell.empty() ? "" : ", ") + part;
  return OrDash(cell);
}

Json RecordJson(const FailoverRecord& record) {
  Json phases = Json::array();
  for (const auto& phase : record.phases) {
    phases.push_back({{"name", phase.name}, {"ms", phase.ms}});
  }
  Json out = {{"from", record.from},   {"to", record.to},     {"reason", record.reason},
              {"epoch", record.epoch}, {"time", record.time}, {"phases", phases}};
  if (!record.hooks.empty()) out["hooks"] = record.hooks;
  return out;
}

int64_t ResourceVersionNumber(const Json& object) {
  const std::string rv = object::Meta(object, "resourceVersion");
  try {
    return rv.empty() ? 0 : std::stoll(rv);
  } catch (const std::exception&) {
    return 0;
  }
}

}  // namespace

std::optional<int64_t> FailoverRecord::TotalMs() const {
  if (phases.empty()) return std::nullopt;
  return phases.back().ms;
}

std::optional<FailoverRecord> LastFailover(const Json& domain) {
  const Json::json_pointer ptr("/status/lastFailover");
  if (!domain.is_object() || !domain.contains(ptr) || !domain.at(ptr).is_object()) {
    return std::nullopt;
  }
  const Json& last = domain.at(ptr);
  FailoverRecord record{Text(last, "/from"),   Text(last, "/to"),
                        Text(last, "/reason"), At<int64_t>(last, "/epoch", 0),
                        Text(last, "/time"),   {},
                        Text(last, "/hooks")};
  for (const auto& phase : last.value("phases", Json::array())) {
    if (!phase.is_object()) continue;
    // The operator writes fractional milliseconds (e.g. 24.317): rounded, not dropped.
    const Json& ms = phase.contains("ms") ? phase["ms"] : Json();
    record.phases.push_back(
        {Text(phase, "/name"), ms.is_number() ? std::llround(ms.get<double>()) : int64_t{0}});
  }
  return record;
}

std::string RenderStatus(const std::vector<Json>& domains, bool show_namespace, WallTime now) {
  if (domains.empty()) return "No ProcessDomains found.\n";
  std::vector<std::string> domain_headers = {"DOMAIN",  "PHASE", "DC",        "EPOCH",
                                             "FENCING", "READY", "FAILOVERS", "LAST FAILOVER"};
  std::vector<std::string> member_headers = {"DOMAIN",  "MEMBER",   "ROLE",     "READY",
                                             "HEALTHY", "FAILURES", "RESTARTS", "MESSAGE"};
  if (show_namespace) {
    domain_headers.insert(domain_headers.begin(), "NAMESPACE");
    member_headers.insert(member_headers.begin(), "NAMESPACE");
  }
  std::vector<std::vector<std::string>> domain_rows;
  std::vector<std::vector<std::string>> member_rows;
  for (const auto& domain : domains) {
    const std::string ns = object::Meta(domain, "namespace");
    const std::string name = object::Meta(domain, "name");
    std::vector<std::string> row = {name,
                                    OrDash(Text(domain, "/status/phase")),
                                    OrDash(Text(domain, "/status/activePod")),
                                    IntText(domain, "/status/epoch"),
                                    OrDash(Text(domain, "/status/fencing")),
                                    OrDash(Text(domain, "/status/ready")),
                                    IntText(domain, "/status/failovers"),
                                    LastFailoverCell(domain, now)};
    if (show_namespace) row.insert(row.begin(), ns);
    domain_rows.push_back(std::move(row));
    for (const auto& member : domain.value("/status/members"_json_pointer, Json::array())) {
      std::vector<std::string> cells = {name,
                                        Text(member, "/name"),
                                        OrDash(Text(member, "/role")),
                                        BoolText(member, "/ready"),
                                        BoolText(member, "/healthy"),
                                        IntText(member, "/consecutiveFailures"),
                                        IntText(member, "/restarts"),
                                        Text(member, "/message")};
      if (show_namespace) cells.insert(cells.begin(), ns);
      member_rows.push_back(std::move(cells));
    }
  }
  std::string out = RenderTable(domain_headers, domain_rows);
  if (!member_rows.empty()) out += "\n" + RenderTable(member_headers, member_rows);
  return out;
}

Json StatusJson(const std::vector<Json>& domains) {
  Json list = Json::array();
  for (const auto& domain : domains) {
    const Json status = domain.value("status", Json::object());
    Json item = {
        {"namespace", object::Meta(domain, "namespace")},
        {"name", object::Meta(domain, "name")},
        {"phase", Text(domain, "/status/phase")},
        {"dc", Text(domain, "/status/activePod")},
        {"epoch", At<int64_t>(domain, "/status/epoch", 0)},
        {"ready", Text(domain, "/status/ready")},
        {"failovers", At<int64_t>(domain, "/status/failovers", 0)},
        {"paused", At<bool>(domain, "/spec/paused", false)},
        {"lastFailoverTime", Text(domain, "/status/lastFailoverTime")},
        {"members", status.is_object() ? status.value("members", Json::array()) : Json::array()}};
    auto record = LastFailover(domain);
    item["lastFailover"] = record ? RecordJson(*record) : Json(nullptr);
    list.push_back(std::move(item));
  }
  return {{"domains", list}};
}

std::vector<FailoverEvent> FailoverEvents(const std::vector<Json>& events) {
  struct Sortable {
    WallTime at;
    int64_t rv;
    FailoverEvent event;
  };
  std::vector<Sortable> kept;
  for (const auto& event : events) {
    const std::string reason = Text(event, "/reason");
    if (reason != "FailingOver" && reason != "Promoted") continue;
    std::string time = Text(event, "/lastTimestamp");
    if (time.empty()) time = Text(event, "/eventTime");
    if (time.empty()) time = Text(event, "/firstTimestamp");
    kept.push_back({ParseTime(time).value_or(WallTime{}),
                    ResourceVersionNumber(event),
                    {time, reason, Text(event, "/message"), At<int64_t>(event, "/count", 1)}});
  }
  std::stable_sort(kept.begin(), kept.end(), [](const Sortable& a, const Sortable& b) {
    return a.at != b.at ? a.at > b.at : a.rv > b.rv;
  });
  std::vector<FailoverEvent> out;
  out.reserve(kept.size());
  for (auto& k : kept) out.push_back(std::move(k.event));
  return out;
}

std::string RenderWhy(const Json& domain, const std::vector<Json>& events, WallTime now) {
  std::ostringstream out;
  out << "Domain " << object::Meta(domain, "namespace") << "/" << object::Meta(domain, "name")
      << ": phase " << OrDash(Text(domain, "/status/phase")) << ", DC "
      << OrDash(Text(domain, "/status/activePod")) << " at epoch "
      << IntText(domain, "/status/epoch") << ", " << IntText(domain, "/status/failovers")
      << " failover(s)\n\n";
  if (auto record = LastFailover(domain)) {
    out << "Last failover: " << OrDash(record->from) << " -> " << OrDash(record->to) << ", reason "
        << OrDash(record->reason) << ", epoch " << record->epoch;
    if (auto at = ParseTime(record->time)) {
      out << ", at " << record->time << " (" << ShortAge(*at, now) << " ago)";
    }
    out << "\n";
    if (record->phases.empty()) {
      out << "  (no phase timings recorded)\n";
    } else {
      std::vector<std::vector<std::string>> rows;
      int64_t previous = 0;
      for (const auto& phase : record->phases) {
        rows.push_back(
            {phase.name, std::to_string(phase.ms), "+" + std::to_string(phase.ms - previous)});
        previous = phase.ms;
      }
      rows.push_back({"total", std::to_string(previous), ""});
      std::istringstream table(RenderTable({"PHASE", "AT (MS)", "STEP (MS)"}, rows));
      for (std::string line; std::getline(table, line);) out << "  " << line << "\n";
      out << "  (times since the failure was first seen)\n";
    }
    if (const std::string hooks = HooksLine(record->hooks); !hooks.empty()) {
      out << "  " << hooks << "\n";
    }
  } else {
    const std::string time = Text(domain, "/status/lastFailoverTime");
    out << "Last failover: "
        << (time.empty() ? "none recorded"
                         : "at " + time +
                               " (no status.lastFailover: phase timings need an "
                               "operator with the failover flight recorder)")
        << "\n";
  }
  const auto failover_events = FailoverEvents(events);
  out << "\nEvents (FailingOver, Promoted; newest first):\n";
  if (failover_events.empty()) {
    out << "  none (Events expire after an hour by default)\n";
  } else {
    std::vector<std::vector<std::string>> rows;
    for (const auto& event : failover_events) {
      auto at = ParseTime(event.time);
      rows.push_back({at ? ShortAge(*at, now) + " ago" : OrDash(event.time), event.reason,
                      event.count > 1 ? "x" + std::to_string(event.count) : "", event.message});
    }
    std::istringstream table(RenderTable({"AGE", "REASON", "COUNT", "MESSAGE"}, rows));
    for (std::string line; std::getline(table, line);) out << "  " << line << "\n";
  }
  return out.str();
}

Json WhyJson(const Json& domain, const std::vector<Json>& events) {
  Json list = Json::array();
  for (const auto& event : FailoverEvents(events)) {
    list.push_back({{"time", event.time},
                    {"reason", event.reason},
                    {"message", event.message},
                    {"count", event.count}});
  }
  auto record = LastFailover(domain);
  return {{"namespace", object::Meta(domain, "namespace")},
          {"name", object::Meta(domain, "name")},
          {"phase", Text(domain, "/status/phase")},
          {"dc", Text(domain, "/status/activePod")},
          {"epoch", At<int64_t>(domain, "/status/epoch", 0)},
          {"failovers", At<int64_t>(domain, "/status/failovers", 0)},
          {"lastFailoverTime", Text(domain, "/status/lastFailoverTime")},
          {"lastFailover", record ? RecordJson(*record) : Json(nullptr)},
          {"events", list}};
}

}  // namespace dpcm::kubectl_plugin
