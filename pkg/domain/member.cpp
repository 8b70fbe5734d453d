#include "pkg/domain/member.h"

#include <algorithm>
#include <charconv>

#include "pkg/domain/spec.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

const json& Field(const json& object, std::initializer_list<const char*> path) {
  static const json kNull;
  const json* at = &object;
  for (const char* key : path) {
    if (!at->is_object()) return kNull;
    const auto it = at->find(key);
    if (it == at->end()) return kNull;
    at = &*it;
  }
  return *at;
}

std::string StringField(const json& object, std::initializer_list<const char*> path) {
  const json& value = Field(object, path);
  return value.is_string() ? value.get<std::string>() : "";
}

bool ConditionTrue(const json& pod, std::string_view type) {
  const json& conditions = Field(pod, {"status", "conditions"});
  if (!conditions.is_array()) return false;
  return std::any_of(conditions.begin(), conditions.end(), [&](const json& c) {
    return c.is_object() && c.value("type", "") == type && c.value("status", "") == "True";
  });
}

// dpcm-agent's container status. The agent is not the application: its exit or restart
// says nothing about whether the application process runs, so it must never count as a
// confirmed death (that would promote a second DC beside a live one) nor as a new
// incarnation of the application. Without the agent, its health checks and role hooks
// fail, and that unconfirmed failure takes the slow path.
bool IsAgent(const json& status) {
  return status.is_object() && status.value("name", "") == kAgentContainerName;
}

// Every application container (all but the agent) reports ready.
bool ApplicationReady(const json& statuses) {
  return std::all_of(statuses.begin(), statuses.end(), [](const json& status) {
    return IsAgent(status) || (status.is_object() && status.value("ready", false));
  });
}

Unhealthy Classify(const json& pod) {
  if (!Field(pod, {"metadata", "deletionTimestamp"}).is_null()) return Unhealthy::kDeleted;
  const std::string phase = StringField(pod, {"status", "phase"});
  if (phase == "Failed" || phase == "Succeeded") return Unhealthy::kFailed;
  const json& statuses = Field(pod, {"status", "containerStatuses"});
  if (statuses.is_array()) {
    for (const auto& status : statuses) {
      if (IsAgent(status)) continue;
      const json& state = Field(status, {"state"});
      if (state.is_object() && (state.contains("terminated") || state.contains("waiting")) &&
          !Field(status, {"lastState", "terminated"}).is_null()) {
        return Unhealthy::kExited;
      }
      if (state.is_object() && state.contains("terminated")) return Unhealthy::kExited;
    }
  }
  if (phase != "Running") return Unhealthy::kNotRunning;
  // The pod's Ready condition counts the agent too: when the agent is what is not ready,
  // the application's containers decide.
  const bool agent_unready =
      statuses.is_array() && std::any_of(statuses.begin(), statuses.end(), [](const json& s) {
        return IsAgent(s) && !s.value("ready", false);
      });
  if (!ConditionTrue(pod, "Ready") && !agent_unready) return Unhealthy::kNotReady;
  if (statuses.is_array() && !ApplicationReady(statuses)) return Unhealthy::kNotReady;
  return Unhealthy::kNone;
}

}  // namespace

std::optional<int64_t> EpochAnnotation(const json& pod, const char* key) {
  const std::string text = StringField(pod, {"metadata", "annotations", key});
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

const char* UnhealthyReason(Unhealthy why) {
  switch (why) {
    case Unhealthy::kNone:
      return "healthy";
    case Unhealthy::kDeleted:
      return "pod-deleted";
    case Unhealthy::kExited:
      return "container-exited";
    case Unhealthy::kNotReady:
      return "not-ready";
    case Unhealthy::kFailed:
      return "pod-failed";
    case Unhealthy::kNotRunning:
      return "not-running";
    case Unhealthy::kHealthCheck:
      return "health-check-failed";
    case Unhealthy::kRoleHook:
      return "role-hook-failed";
  }
  return "unknown";
}

bool Member::is_dc() const { return role == kRoleDc; }

bool Member::reachable() const {
  const bool running = unhealthy == Unhealthy::kNone || unhealthy == Unhealthy::kNotReady ||
                       unhealthy == Unhealthy::kHealthCheck || unhealthy == Unhealthy::kRoleHook;
  return running && !pod_ip.empty();
}

Member MemberFromPod(const json& pod, std::string_view domain_name) {
  Member member;
  member.name = StringField(pod, {"metadata", "name"});
  member.uid = StringField(pod, {"metadata", "uid"});
  member.resource_version = StringField(pod, {"metadata", "resourceVersion"});
  member.role = StringField(pod, {"metadata", "labels", kRoleLabel});
  member.pod_ip = StringField(pod, {"status", "podIP"});
  const std::string prefix = std::string(domain_name) + "-";
  if (member.name.size() > prefix.size() && member.name.compare(0, prefix.size(), prefix) == 0) {
    const std::string_view digits = std::string_view(member.name).substr(prefix.size());
    int ordinal = -1;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), ordinal);
    if (ec == std::errc() && end == digits.data() + digits.size() && ordinal >= 0) {
      member.ordinal = ordinal;
    }
  }
  const json& statuses = Field(pod, {"status", "containerStatuses"});
  if (statuses.is_array()) {
    for (const auto& status : statuses) {
      if (status.is_object() && status.contains("restartCount") &&
          status["restartCount"].is_number_integer()) {
        (IsAgent(status) ? member.agent_restarts : member.restarts) +=
            status["restartCount"].get<int>();
      }
    }
  }
  member.epoch = EpochAnnotation(pod, kEpochAnnotation);
  member.fenced_epoch = EpochAnnotation(pod, kFenceAnnotation);
  member.unhealthy = Classify(pod);
  return member;
}

void TrimPod(json& pod) {
  if (!pod.is_object()) return;
  json trimmed = json::object();
  const json& m = Field(pod, {"metadata"});
  json meta = json::object();
  for (const char* key : {"name", "namespace", "uid", "resourceVersion", "labels",
                          "ownerReferences", "deletionTimestamp"}) {
    if (m.is_object() && m.contains(key)) meta[key] = m[key];
  }
  const json& annotations = Field(pod, {"metadata", "annotations"});
  if (annotations.is_object()) {
    // The map stays even when none of ours is in it: a JSON patch built from the cached pod
    // (object::SetInMap) adds a key to an existing map, but replaces a missing one whole,
    // which on the real pod would drop everyone else's annotations.
    json kept = json::object();
    for (const char* key : {kEpochAnnotation, kFenceAnnotation}) {
      if (annotations.contains(key)) kept[key] = annotations[key];
    }
    meta["annotations"] = std::move(kept);
  }
  trimmed["metadata"] = std::move(meta);
  const json& status = Field(pod, {"status"});
  json kept = json::object();
  for (const char* key : {"phase", "podIP"}) {
    if (status.is_object() && status.contains(key)) kept[key] = status[key];
  }
  const json& conditions = Field(pod, {"status", "conditions"});
  if (conditions.is_array()) {
    kept["conditions"] = json::array();
    for (const auto& c : conditions) {
      if (c.is_object()) {
        kept["conditions"].push_back(
            {{"type", c.value("type", "")}, {"status", c.value("status", "")}});
      }
    }
  }
  const json& containers = Field(pod, {"status", "containerStatuses"});
  if (containers.is_array()) {
    kept["containerStatuses"] = json::array();
    for (const auto& c : containers) {
      if (!c.is_object()) continue;
      json entry = {{"name", c.value("name", "")},
                    {"ready", c.value("ready", false)},
                    {"restartCount", c.value("restartCount", 0)}};
      const json& state = Field(c, {"state"});
      if (state.is_object()) {
        entry["state"] = json::object();
        for (const auto& [key, value] : state.items()) entry["state"][key] = json::object();
      }
      if (!Field(c, {"lastState", "terminated"}).is_null()) {
        entry["lastState"] = {{"terminated", json::object()}};
      }
      kept["containerStatuses"].push_back(std::move(entry));
    }
  }
  trimmed["status"] = std::move(kept);
  pod = std::move(trimmed);
}

}  // namespace dpcm::domain
