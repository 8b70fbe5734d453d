#include "tests/podsim/pod_status.h"

#include <sys/wait.h>

#include <algorithm>
#include <ctime>

namespace dpcm::podsim {
namespace {

using Json = nlohmann::json;

Json TerminationJson(const Termination& t) {
  Json out = {{"exitCode", t.exit_code},
              {"reason", t.reason},
              {"startedAt", FormatTime(t.started_at)},
              {"finishedAt", FormatTime(t.finished_at)},
              {"containerID", t.container_id}};
  if (t.signal != 0) out["signal"] = t.signal;
  if (!t.message.empty()) out["message"] = t.message;
  return out;
}

bool ContainerReady(const ContainerRunState& state) { return state.running && state.ready; }

Json ContainerStatusJson(const ContainerRunState& state) {
  Json container = {{"name", state.container_name},      {"image", state.image},
                    {"imageID", "sim://" + state.image}, {"started", state.running},
                    {"ready", ContainerReady(state)},    {"restartCount", state.restart_count}};
  if (!state.container_id.empty()) container["containerID"] = state.container_id;
  Json current = Json::object();
  Json last = Json::object();
  if (state.running) {
    current["running"] = {{"startedAt", FormatTime(state.started_at)}};
    if (state.last_terminated) last["terminated"] = TerminationJson(*state.last_terminated);
  } else if (!state.waiting_reason.empty()) {
    Json waiting = {{"reason", state.waiting_reason}};
    if (!state.waiting_message.empty()) waiting["message"] = state.waiting_message;
    current["waiting"] = std::move(waiting);
    if (state.terminated) {
      last["terminated"] = TerminationJson(*state.terminated);
    } else if (state.last_terminated) {
      last["terminated"] = TerminationJson(*state.last_terminated);
    }
  } else if (state.terminated) {
    current["terminated"] = TerminationJson(*state.terminated);
    if (state.last_terminated) last["terminated"] = TerminationJson(*state.last_terminated);
  } else {
    current["waiting"] = {{"reason", "ContainerCreating"}};
  }
  container["state"] = std::move(current);
  container["lastState"] = std::move(last);
  return container;
}

bool AllFinished(const PodRunState& state) {
  if (state.containers.empty()) return false;
  return std::all_of(state.containers.begin(), state.containers.end(),
                     [](const ContainerRunState& c) { return c.finished; });
}

}  // namespace

std::string FormatTime(WallTime time) {
  const std::time_t seconds = std::chrono::system_clock::to_time_t(time);
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

Termination TerminationFromWaitStatus(int wait_status, WallTime started_at, WallTime finished_at,
                                      std::string container_id) {
  Termination t;
  if (WIFSIGNALED(wait_status)) {
    t.signal = WTERMSIG(wait_status);
    t.exit_code = 128 + t.signal;  // what a container runtime reports for a killed process
  } else {
    t.exit_code = WEXITSTATUS(wait_status);
  }
  t.reason = t.exit_code == 0 ? "Completed" : "Error";
  t.started_at = started_at;
  t.finished_at = finished_at;
  t.container_id = std::move(container_id);
  return t;
}

void ContainerRunState::Started(std::string id, WallTime at, bool ready_at_start) {
  if (terminated) last_terminated = std::move(terminated);
  terminated.reset();
  waiting_reason.clear();
  waiting_message.clear();
  running = true;
  ever_started = true;
  container_id = std::move(id);
  started_at = at;
  ready = ready_at_start;
}

std::string PhaseOf(const PodRunState& state) {
  if (AllFinished(state)) {
    const bool all_zero = std::all_of(
        state.containers.begin(), state.containers.end(),
        [](const ContainerRunState& c) { return c.terminated && c.terminated->exit_code == 0; });
    return all_zero ? "Succeeded" : "Failed";
  }
  const bool started = std::any_of(state.containers.begin(), state.containers.end(),
                                   [](const ContainerRunState& c) { return c.ever_started; });
  return started ? "Running" : "Pending";
}

bool AllContainersReady(const PodRunState& state) {
  return !state.containers.empty() &&
         std::all_of(state.containers.begin(), state.containers.end(), ContainerReady);
}

void UpdateConditions(PodRunState& state, WallTime now) {
  const bool ready = AllContainersReady(state);
  for (const auto& [type, status] : {std::pair<const char*, bool>{"PodScheduled", true},
                                     {"Initialized", true},
                                     {"ContainersReady", ready},
                                     {"Ready", ready}}) {
    auto it = state.conditions.find(type);
    if (it == state.conditions.end()) {
      state.conditions.emplace(type, ConditionState{status, now});
    } else if (it->second.status != status) {
      it->second = {status, now};
    }
  }
}

Json BuildPodStatus(const PodRunState& state) {
  Json status;
  status["phase"] = PhaseOf(state);
  Json conditions = Json::array();
  // The order the kubelet writes them in.
  for (const char* type : {"Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
    const auto it = state.conditions.find(type);
    if (it == state.conditions.end()) continue;
    Json c = {{"type", type},
              {"status", it->second.status ? "True" : "False"},
              {"lastProbeTime", nullptr},
              {"lastTransitionTime", FormatTime(it->second.since)}};
    const std::string t = type;
    if (!it->second.status && (t == "Ready" || t == "ContainersReady")) {
      if (AllFinished(state)) {
        c["reason"] = "PodCompleted";
      } else {
        std::string unready;
        for (const auto& container : state.containers) {
          if (ContainerReady(container)) continue;
          unready += (unready.empty() ? "" : " ") + container.container_name;
        }
        c["reason"] = "ContainersNotReady";
        c["message"] = "containers with unready status: [" + unready + "]";
      }
    }
    conditions.push_back(std::move(c));
  }
  status["conditions"] = std::move(conditions);
  status["hostIP"] = state.host_ip;
  if (!state.pod_ip.empty()) {
    status["podIP"] = state.pod_ip;
    status["podIPs"] = Json::array({{{"ip", state.pod_ip}}});
  }
  status["startTime"] = FormatTime(state.start_time);

  Json statuses = Json::array();
  for (const auto& container : state.containers) statuses.push_back(ContainerStatusJson(container));
  status["containerStatuses"] = std::move(statuses);
  return status;
}

}  // namespace dpcm::podsim
