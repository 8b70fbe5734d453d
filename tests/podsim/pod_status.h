// What the simulator knows about one pod's container, and the pods/status it reports from it.
#pragma once

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dpcm::podsim {

using WallTime = std::chrono::system_clock::time_point;

// "2024-05-01T12:00:00Z": metav1.Time has second precision, so status built from the
// same facts is byte-for-byte the same and "changed" means changed.
std::string FormatTime(WallTime time);

// How one container instance ended (state.terminated / lastState.terminated).
struct Termination {
  int exit_code = 0;
  int signal = 0;      // the killing signal, 0 for a normal exit
  std::string reason;  // "Completed" (exit 0) or "Error"
  std::string message;
  WallTime started_at;
  WallTime finished_at;
  std::string container_id;
};

// Builds the Termination for a waitpid() status.
Termination TerminationFromWaitStatus(int wait_status, WallTime started_at, WallTime finished_at,
                                      std::string container_id);

struct ConditionState {
  bool status = false;
  WallTime since;
};

// The run state of one container of a pod. Plain data; the simulator guards it.
struct ContainerRunState {
  std::string container_name;
  std::string image;

  bool running = false;
  std::string container_id;  // "sim://<pid>" of the current or last instance
  WallTime started_at;       // of the running instance
  bool ready = false;        // readiness of the running instance
  int restart_count = 0;
  bool ever_started = false;
  bool finished = false;  // exited and will not run again (restartPolicy)
  // The last exit. Shown as state.terminated until the next start, unless a waiting
  // reason is set (CrashLoopBackOff), which shows it as lastState instead.
  std::optional<Termination> terminated;
  std::optional<Termination> last_terminated;  // the exit before `terminated`
  std::string waiting_reason;                  // CrashLoopBackOff, RunContainerError, ...
  std::string waiting_message;

  // Moves to a new running instance: the shown exit becomes lastState.
  void Started(std::string id, WallTime at, bool ready_at_start);
};

// The run state of a pod: its address, conditions and every container (in spec order).
// Plain data; the simulator guards it.
struct PodRunState {
  std::string pod_ip;
  std::string host_ip;
  WallTime start_time;                               // when the simulator accepted the pod
  std::vector<ContainerRunState> containers;         // spec.containers, in order
  std::map<std::string, ConditionState> conditions;  // by type, with transition times
};

// Records condition transitions (PodScheduled, Initialized, ContainersReady, Ready) at
// `now` where the run state changed them.
void UpdateConditions(PodRunState& state, WallTime now);

// The pod status for `state`: phase, conditions, hostIP, podIP(s), startTime and one
// containerStatuses entry per container, in spec order. Conditions must have been updated
// first.
nlohmann::json BuildPodStatus(const PodRunState& state);

// As the kubelet: Pending until a container started; Succeeded when every container finished
// with exit code 0, Failed when every container finished and one did not; Running otherwise.
std::string PhaseOf(const PodRunState& state);

// Whether every container of the pod runs and is ready (ContainersReady).
bool AllContainersReady(const PodRunState& state);

}  // namespace dpcm::podsim
