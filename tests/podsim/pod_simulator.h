// PodSimulator plays the kubelet of one Node: keeps the Node alive, runs the pods the scheduler
// bound to it as local processes, reports their status.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pkg/cache/informer.h"
#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/workqueue/workqueue.h"
#include "tests/podsim/child_process.h"
#include "tests/podsim/ip_allocator.h"
#include "tests/podsim/node_heartbeat.h"
#include "tests/podsim/pod_status.h"
#include "tests/podsim/probe.h"

namespace dpcm::podsim {

struct SimulatorOptions {
  std::vector<std::string> namespaces;  // empty = all namespaces
  NodeOptions node;                     // the Node's name, address, status and lease timings
  std::filesystem::path state_dir;      // <ns>/<pod>.pid and <ns>/<pod>.log
  std::chrono::milliseconds restart_delay{1000};
  std::chrono::milliseconds max_restart_delay{10000};
  std::chrono::milliseconds max_probe_period{1000};
  std::chrono::milliseconds max_termination_grace{5000};
  // How long a process of a pod that vanished from the API gets between SIGTERM and SIGKILL.
  std::chrono::milliseconds vanished_grace{2000};
  std::string ip_base = "127.1.0.0";
  // How many addresses after ip_base pods may get (a node's /24 in its own network
  // namespace holds 254).
  uint32_t ip_count = 65534;
  int workers = 4;
  int probe_threads = 4;
  std::vector<std::string> base_env;  // the environment every container inherits
};

// The kubelet's job for the local control plane. The Node is kept alive by a
// NodeHeartbeat (status and Lease). Pods are bound by the real scheduler; the pods bound
// to this node (watched with fieldSelector spec.nodeName, as the kubelet does) are
// handled level-based: every pod event, process exit, probe result change and timer
// queues the pod's namespace/name, and a worker compares what the API says with what
// runs here and acts:
// - a pod bound here gets every container run as a process (posix_spawnp, no shell), all
//   on the pod's one address, each restarted per restartPolicy with CrashLoopBackOff-like delays,
//   probed for readiness and liveness, and its status written (merge patch on pods/status) when it
//   changes;
// - a pod with a deletionTimestamp gets SIGTERM, SIGKILL after its grace period (capped),
//   and once its process is gone a DELETE with gracePeriodSeconds=0 and a uid precondition;
// - a pod that vanished (or was replaced by one with another uid) has its process killed.
// Process exits are reaped by a dedicated thread and reported at once, ahead of queued work.
class PodSimulator {
 public:
  // `client` and `clock` must outlive the simulator.
  static Result<std::unique_ptr<PodSimulator>> Create(client::ApiClient& client,
                                                      SimulatorOptions options,
                                                      Clock& clock = RealClock::Instance());
  ~PodSimulator();
  PodSimulator(const PodSimulator&) = delete;
  PodSimulator& operator=(const PodSimulator&) = delete;

  // Registers the Node (created or reused, status Ready, Lease renewed), then starts the
  // heartbeat, the reaper, the pod informers, the workers and the probers. Fails only if
  // `stop` fires first.
  Status Start(const std::stop_token& stop);
  // Kills every process (SIGTERM, SIGKILL after `grace`), waits until all are reaped,
  // and stops every thread. Pod statuses, the Node and its Lease are left as they are.
  // Idempotent.
  void Shutdown(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

 private:
  struct ContainerRuntime;
  struct PodRuntime;
  struct ApiActions;

  PodSimulator(client::ApiClient& client, SimulatorOptions options, Clock& clock, IpAllocator ips);

  void Enqueue(const std::string& key) { queue_.Add(key); }
  void RunWorker(const std::stop_token& stop);
  cache::ObjectPtr FindPod(const std::string& key) const;

  // One level-based pass over the pod `key`; returns when to look again, if ever.
  std::optional<std::chrono::milliseconds> Reconcile(const std::string& key);
  // The locked part: decides and does everything local; leaves API writes in `actions`.
  void ReconcileLocked(const std::string& key, const cache::ObjectPtr& pod, ApiActions& actions);
  void HandleStaleRuntimesLocked(const std::string& key, const std::string& live_uid,
                                 ApiActions& actions);
  PodRuntime* RuntimeForLocked(const nlohmann::json& pod, ApiActions& actions);
  void StartContainerLocked(PodRuntime& runtime, ContainerRuntime& container,
                            const nlohmann::json& pod, ApiActions& actions);
  void TerminateLocked(PodRuntime& runtime, ContainerRuntime& container,
                       std::chrono::milliseconds grace, const char* why, ApiActions& actions);
  void DropRuntimeLocked(const std::string& uid);
  void ScheduleProbes(const std::string& uid, size_t container, int instance);
  // The container `container` of pod `uid` if instance `instance` of it still runs.
  ContainerRuntime* LiveInstanceLocked(const std::string& uid, size_t container, int instance);
  // Runs one probe of instance `instance` of a container of pod `uid`; returns the delay to
  // the next.
  std::optional<std::chrono::milliseconds> ProbeTick(const std::string& uid, size_t container,
                                                     int instance, bool readiness);
  void OnChildExit(pid_t pid, int wait_status);
  void WritePidFile(const PodRuntime& runtime, const ContainerRuntime& container) const;
  void RemovePidFile(const ContainerRuntime& container, pid_t pid) const;

  client::ApiClient& client_;
  const SimulatorOptions options_;
  Clock& clock_;
  NodeHeartbeat heartbeat_;
  workqueue::WorkQueue queue_;
  ChildReaper reaper_;
  TaskScheduler probers_;
  std::vector<std::unique_ptr<cache::Informer>> informers_;  // one per namespace, or one for all
  std::vector<std::jthread> workers_;

  mutable std::mutex mutex_;
  std::condition_variable children_changed_;
  bool shutting_down_ = false;                                   // guarded by mutex_
  IpAllocator ips_;                                              // guarded by mutex_
  std::map<std::string, std::unique_ptr<PodRuntime>> runtimes_;  // by uid; guarded by mutex_
  std::map<std::string, std::set<std::string>> uids_by_key_;     // guarded by mutex_
  // The pod uid and container index of each running process; guarded by mutex_.
  std::map<pid_t, std::pair<std::string, size_t>> owner_by_pid_;
  std::set<std::string> refused_;  // keys logged as unusable
  std::atomic<bool> shut_down_{false};
};

}  // namespace dpcm::podsim
