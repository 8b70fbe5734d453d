#include "tests/podsim/pod_simulator.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <system_error>

#include "tests/podsim/container_env.h"
#include "tests/podsim/names.h"

namespace dpcm::podsim {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

// A container that ran at least this long before exiting resets the restart back-off.
constexpr milliseconds kBackoffResetAfter{10000};
// Until the first readiness success of a new instance, probe this often (at most).
constexpr milliseconds kStartupProbePeriod{200};

const Json& Field(const Json& object, const Json::json_pointer& pointer) {
  static const Json kNull;
  return object.contains(pointer) ? object.at(pointer) : kNull;
}

std::string StringField(const Json& object, const Json::json_pointer& pointer) {
  const Json& value = Field(object, pointer);
  return value.is_string() ? value.get<std::string>() : std::string();
}

std::optional<int64_t> IntField(const Json& object, const Json::json_pointer& pointer) {
  const Json& value = Field(object, pointer);
  if (value.is_number_integer()) return value.get<int64_t>();
  return std::nullopt;
}

// The status ("True", "False", ...) of condition `type` in a pod or a pod status; "" if absent.
std::string ConditionOf(const Json& pod_or_status, const std::string& type) {
  const Json& conditions = pod_or_status.contains("status")
                               ? Field(pod_or_status, "/status/conditions"_json_pointer)
                               : Field(pod_or_status, "/conditions"_json_pointer);
  if (!conditions.is_array()) return "";
  for (const auto& condition : conditions) {
    if (condition.value("type", "") == type) return condition.value("status", "");
  }
  return "";
}

milliseconds Until(Clock::Monotonic::time_point at, Clock::Monotonic::time_point now) {
  return std::max(milliseconds(0), std::chrono::ceil<milliseconds>(at - now));
}

}  // namespace

struct PodSimulator::PodRuntime {
  std::string uid;
  std::string ns;
  std::string name;
  std::string key;
  PodRunState state;
  std::filesystem::path pid_path;
  std::filesystem::path log_path;

  pid_t pid = 0;     // the running instance's process, 0 when none
  int instance = 0;  // counts started instances; probes carry it to spot stale results
  Clock::Monotonic::time_point started_mono;
  std::string restart_policy = "Always";
  std::chrono::seconds termination_grace{30};  // spec.terminationGracePeriodSeconds

  std::optional<ProbeSpec> readiness;
  std::optional<ProbeSpec> liveness;
  bool readiness_unsupported = false;  // never ready: the probe cannot be run here
  std::optional<ProbeCounter> readiness_counter;
  std::optional<ProbeCounter> liveness_counter;
  bool readiness_seen_success = false;

  milliseconds backoff{0};
  std::optional<Clock::Monotonic::time_point> start_at;  // no (re)start before this

  bool terminating = false;  // SIGTERM sent to the running instance
  bool killed = false;       // SIGKILL sent to it
  Clock::Monotonic::time_point kill_at;
  bool deleting = false;  // the pod has a deletionTimestamp
  bool delete_sent = false;
  bool stale = false;  // the pod vanished or was replaced (another uid)

  Json last_status;  // the status last written successfully
};

// What a reconcile pass asks of the API server, done after the lock is released.
struct PodSimulator::ApiActions {
  std::string ns;
  std::string name;
  std::string uid;
  std::optional<Json> status;
  bool delete_pod = false;
  std::optional<milliseconds> requeue;

  void RequeueAfter(milliseconds delay) {
    if (!requeue || delay < *requeue) requeue = delay;
  }
};

Result<std::unique_ptr<PodSimulator>> PodSimulator::Create(client::ApiClient& client,
                                                           SimulatorOptions options, Clock& clock) {
  auto ips = IpAllocator::Create(options.ip_base, options.ip_count);
  if (!ips.ok()) return ips.status();
  if (!IsDns1123Subdomain(options.node.name)) {
    return Status::Config("--node-name: not a valid node name: " + options.node.name);
  }
  std::error_code error;
  std::filesystem::create_directories(options.state_dir, error);
  if (error) {
    return Status::Config("--state-dir " + options.state_dir.string() + ": " + error.message());
  }
  for (const auto& ns : options.namespaces) {
    if (!IsDns1123Label(ns)) return Status::Config("--namespace: not a namespace name: " + ns);
  }
  return std::unique_ptr<PodSimulator>(
      new PodSimulator(client, std::move(options), clock, std::move(*ips)));
}

PodSimulator::PodSimulator(client::ApiClient& client, SimulatorOptions options, Clock& clock,
                           IpAllocator ips)
    : client_(client),
      options_(std::move(options)),
      clock_(clock),
      heartbeat_(client, options_.node, clock),
      reaper_([this](pid_t pid, int wait_status) { OnChildExit(pid, wait_status); }),
      probers_(options_.probe_threads),
      ips_(std::move(ips)) {}

PodSimulator::~PodSimulator() { Shutdown(); }

Status PodSimulator::Start(const std::stop_token& stop) {
  Status registered = heartbeat_.Register(stop);
  if (!registered.ok()) return registered;
  heartbeat_.Start();
  std::vector<std::string> namespaces = options_.namespaces;
  if (namespaces.empty()) namespaces.emplace_back();
  for (const auto& ns : namespaces) {
    cache::InformerOptions informer_options;
    informer_options.watcher.selectors.field_selector = "spec.nodeName=" + options_.node.name;
    auto informer =
        std::make_unique<cache::Informer>(client_, client::resources::Pods(), ns, informer_options);
    auto enqueue = [this](const cache::ObjectPtr& pod) { Enqueue(cache::KeyOf(*pod)); };
    informer->AddHandlers(
        {.on_add = enqueue,
         .on_update = [this](const cache::ObjectPtr&,
                             const cache::ObjectPtr& pod) { Enqueue(cache::KeyOf(*pod)); },
         .on_delete = enqueue});
    informers_.push_back(std::move(informer));
  }
  // Workers read informers_, so it is complete before any of them runs.
  reaper_.Start();
  probers_.Start();
  for (int i = 0; i < std::max(1, options_.workers); ++i) {
    workers_.emplace_back([this](const std::stop_token& token) { RunWorker(token); });
  }
  for (auto& informer : informers_) informer->Start();
  spdlog::info("watching pods in {}; node {}; state in {}",
               options_.namespaces.empty() ? "all namespaces" : "the given namespaces",
               options_.node.name, options_.state_dir.string());
  return Status::Ok();
}

cache::ObjectPtr PodSimulator::FindPod(const std::string& key) const {
  const auto slash = key.find('/');
  const std::string ns = slash == std::string::npos ? "" : key.substr(0, slash);
  for (size_t i = 0; i < informers_.size(); ++i) {
    if (options_.namespaces.empty() || options_.namespaces[i] == ns) {
      return informers_[i]->store().Get(key);
    }
  }
  return nullptr;
}

void PodSimulator::RunWorker(const std::stop_token& /*stop*/) {
  while (auto key = queue_.Get()) {  // ShutDown() in Stop() ends the loop
    std::optional<milliseconds> again;
    try {
      again = Reconcile(*key);
    } catch (const std::exception& e) {  // bad data from the API must not end the simulator
      spdlog::error("pod {}: {}", *key, e.what());
      again = milliseconds(1000);
    }
    queue_.Done(*key);
    if (again) queue_.AddAfter(*key, *again);
  }
}

std::optional<milliseconds> PodSimulator::Reconcile(const std::string& key) {
  const cache::ObjectPtr pod = FindPod(key);
  ApiActions actions;
  {
    std::lock_guard lock(mutex_);
    if (shutting_down_) return std::nullopt;
    ReconcileLocked(key, pod, actions);
  }
  const auto pods = client::resources::Pods();
  bool status_ok = true;
  if (actions.status) {
    // The uid makes the write conditional: a pod recreated under the same name is not
    // given its predecessor's status.
    const Json patch = {{"metadata", {{"uid", actions.uid}}}, {"status", *actions.status}};
    const auto started = clock_.Now();
    auto written =
        client_.Patch(pods, actions.ns, actions.name, client::PatchType::kMerge, patch, "status");
    if (written.ok()) {
      const auto took =
          std::chrono::duration_cast<std::chrono::microseconds>(clock_.Now() - started);
      const Json& cs = (*actions.status)["containerStatuses"][0];
      spdlog::info("pod {}: status written: phase={} ready={} restarts={} state={} ({} us)", key,
                   (*actions.status)["phase"].get<std::string>(), cs["ready"].get<bool>(),
                   cs["restartCount"].get<int>(), cs["state"].begin().key(), took.count());
      std::lock_guard lock(mutex_);
      const auto it = runtimes_.find(actions.uid);
      if (it != runtimes_.end()) it->second->last_status = *actions.status;
    } else if (written.status().IsNotFound() || written.status().IsConflict()) {
      spdlog::info("pod {}: status not written, the pod is gone: {}", key,
                   written.status().message());
    } else if (written.status().IsInvalid()) {
      // A uid that no longer matches (the pod was replaced) also lands here.
      status_ok = false;
      spdlog::error("pod {}: status rejected: {}", key, written.status().ToString());
      actions.RequeueAfter(milliseconds(5000));
    } else {
      status_ok = false;
      spdlog::warn("pod {}: status write failed: {}", key, written.status().ToString());
      actions.RequeueAfter(milliseconds(500));
    }
  }
  if (actions.delete_pod && status_ok) {
    client::DeleteOptions options;
    options.precondition_uid = actions.uid;
    options.grace_period_seconds = 0;
    auto deleted = client_.Delete(pods, actions.ns, actions.name, options);
    if (deleted.ok() || deleted.status().IsNotFound() || deleted.status().IsConflict()) {
      spdlog::info("pod {}: deleted (grace 0, uid {}){}", key, actions.uid,
                   deleted.ok() ? "" : ": " + deleted.status().message());
      std::lock_guard lock(mutex_);
      const auto it = runtimes_.find(actions.uid);
      if (it != runtimes_.end()) it->second->delete_sent = true;
    } else {
      spdlog::warn("pod {}: delete failed: {}", key, deleted.status().ToString());
      actions.RequeueAfter(milliseconds(500));
    }
  }
  return actions.requeue;
}

void PodSimulator::ReconcileLocked(const std::string& key, const cache::ObjectPtr& pod,
                                   ApiActions& actions) {
  const std::string uid = pod ? StringField(*pod, "/metadata/uid"_json_pointer) : "";
  HandleStaleRuntimesLocked(key, uid, actions);
  if (!pod) return;
  actions.ns = StringField(*pod, "/metadata/namespace"_json_pointer);
  actions.name = StringField(*pod, "/metadata/name"_json_pointer);
  actions.uid = uid;
  const bool deleting = pod->contains("/metadata/deletionTimestamp"_json_pointer) &&
                        !Field(*pod, "/metadata/deletionTimestamp"_json_pointer).is_null();
  // The scheduler binds; only pods bound to this node are run here.
  if (StringField(*pod, "/spec/nodeName"_json_pointer) != options_.node.name) return;
  if (!IsDns1123Label(actions.ns) || !IsDns1123Subdomain(actions.name) || uid.empty()) {
    if (refused_.insert(key).second) {
      spdlog::error("pod {}: refused: its namespace or name is not a DNS-1123 name", key);
    }
    return;
  }

  auto found = runtimes_.find(uid);
  if (found == runtimes_.end()) {
    const std::string phase = StringField(*pod, "/status/phase"_json_pointer);
    if (deleting) {  // nothing runs here for it (finished before, or never started)
      actions.delete_pod = true;
      return;
    }
    if (phase == "Succeeded" || phase == "Failed") return;  // finished in an earlier run
  }
  PodRuntime* runtime = RuntimeForLocked(*pod, actions);
  if (runtime == nullptr) return;
  PodRuntime& rt = *runtime;
  const auto now = clock_.Now();

  rt.deleting = deleting;
  if (deleting && rt.pid != 0 && !rt.terminating) {
    const int64_t grace = IntField(*pod, "/metadata/deletionGracePeriodSeconds"_json_pointer)
                              .value_or(rt.termination_grace.count());
    TerminateLocked(
        rt, std::min<milliseconds>(std::chrono::seconds(grace), options_.max_termination_grace),
        "pod is being deleted", actions);
  }
  if (rt.pid != 0 && rt.terminating && !rt.killed) {
    if (now >= rt.kill_at) {
      spdlog::info("pod {}: grace period over, SIGKILL pid {}", key, rt.pid);
      SignalProcess(rt.pid, SIGKILL);
      rt.killed = true;
    } else {
      actions.RequeueAfter(Until(rt.kill_at, now));
    }
  }
  if (deleting) {
    if (rt.pid == 0) {
      rt.state.waiting_reason.clear();  // no restart is coming: show how it ended
      rt.state.waiting_message.clear();
      if (!rt.delete_sent) actions.delete_pod = true;
    }
  } else if (rt.pid == 0 && !rt.state.finished) {
    if (!rt.start_at || now >= *rt.start_at) {
      StartContainerLocked(rt, *pod, actions);
    } else {
      actions.RequeueAfter(Until(*rt.start_at, now));
    }
  }

  UpdateConditions(rt.state, clock_.WallNow());
  Json desired = BuildPodStatus(rt.state);
  // As the kubelet's status manager: also rewrite when the server disagrees about
  // readiness (the node-lifecycle controller marks pods of a silent node not Ready; a
  // node that comes back must say Ready again).
  if (desired != rt.last_status || ConditionOf(*pod, "Ready") != ConditionOf(desired, "Ready")) {
    actions.status = std::move(desired);
  }
}

void PodSimulator::HandleStaleRuntimesLocked(const std::string& key, const std::string& live_uid,
                                             ApiActions& actions) {
  const auto uids = uids_by_key_.find(key);
  if (uids == uids_by_key_.end()) return;
  const auto now = clock_.Now();
  for (const std::string& uid : std::set<std::string>(uids->second)) {
    if (uid == live_uid) continue;
    PodRuntime& rt = *runtimes_.at(uid);
    if (!rt.stale) {
      rt.stale = true;
      spdlog::info("pod {} (uid {}): gone from the API", key, uid);
    }
    if (rt.pid == 0) {
      DropRuntimeLocked(uid);
      continue;
    }
    if (!rt.terminating) {
      TerminateLocked(rt, options_.vanished_grace, "pod vanished", actions);
    } else if (!rt.killed && now >= rt.kill_at) {
      spdlog::info("pod {} (uid {}): SIGKILL pid {}", key, uid, rt.pid);
      SignalProcess(rt.pid, SIGKILL);
      rt.killed = true;
    } else if (!rt.killed) {
      actions.RequeueAfter(Until(rt.kill_at, now));
    }
  }
}

PodSimulator::PodRuntime* PodSimulator::RuntimeForLocked(const Json& pod, ApiActions& actions) {
  const std::string uid = StringField(pod, "/metadata/uid"_json_pointer);
  if (auto it = runtimes_.find(uid); it != runtimes_.end()) return it->second.get();

  auto rt = std::make_unique<PodRuntime>();
  rt->uid = uid;
  rt->ns = actions.ns;
  rt->name = actions.name;
  rt->key = rt->ns + "/" + rt->name;
  const auto dir = options_.state_dir / rt->ns;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    spdlog::error("pod {}: cannot create {}: {}", rt->key, dir.string(), error.message());
    actions.RequeueAfter(milliseconds(5000));
    return nullptr;
  }
  rt->pid_path = dir / StateFileName(rt->name, ".pid");
  rt->log_path = dir / StateFileName(rt->name, ".log");
  if (rt->pid_path.filename() != rt->name + ".pid") {
    spdlog::info("pod {}: name too long for a file name; state files are {} and {}", rt->key,
                 rt->pid_path.string(), rt->log_path.string());
  }
  const auto ip = ips_.Allocate(StringField(pod, "/status/podIP"_json_pointer));
  if (!ip) {
    spdlog::error("pod {}: no free IP address left after {}", rt->key, options_.ip_base);
    actions.RequeueAfter(milliseconds(5000));
    return nullptr;
  }
  const Json& container = Field(pod, "/spec/containers/0"_json_pointer);
  rt->state.container_name = container.value("name", "");
  rt->state.image = container.value("image", "");
  rt->state.pod_ip = *ip;
  rt->state.host_ip = options_.node.host_ip;
  rt->state.start_time = clock_.WallNow();
  // A pod that ran under an earlier simulator process keeps counting its restarts.
  const Json& previous = Field(pod, "/status/containerStatuses/0"_json_pointer);
  if (previous.is_object() && !previous.value("containerID", "").empty()) {
    rt->state.restart_count = previous.value("restartCount", 0);
    rt->state.ever_started = true;
  }
  if (const auto grace = IntField(pod, "/spec/terminationGracePeriodSeconds"_json_pointer)) {
    rt->termination_grace = std::chrono::seconds(std::max<int64_t>(0, *grace));
  }
  spdlog::info("pod {}: accepted (uid {}), IP {}", rt->key, uid, *ip);
  PodRuntime* raw = rt.get();
  uids_by_key_[raw->key].insert(uid);
  runtimes_.emplace(uid, std::move(rt));
  return raw;
}

void PodSimulator::StartContainerLocked(PodRuntime& rt, const Json& pod, ApiActions& actions) {
  const auto now = clock_.Now();
  auto retry_later = [&](const std::string& reason, const std::string& message) {
    rt.state.waiting_reason = reason;
    rt.state.waiting_message = message;
    rt.backoff = rt.backoff.count() == 0 ? options_.restart_delay
                                         : std::min(rt.backoff * 2, options_.max_restart_delay);
    rt.start_at = now + rt.backoff;
    actions.RequeueAfter(rt.backoff);
    spdlog::warn("pod {}: {}: {}; retrying in {} ms", rt.key, reason, message, rt.backoff.count());
  };
  const Json& container = Field(pod, "/spec/containers/0"_json_pointer);
  if (!container.is_object()) {
    retry_later("CreateContainerConfigError", "the pod has no container");
    return;
  }
  rt.restart_policy = StringField(pod, "/spec/restartPolicy"_json_pointer);
  if (rt.restart_policy.empty()) rt.restart_policy = "Always";
  const PodFacts facts{rt.name,         rt.ns,           rt.uid, options_.node.name,
                       rt.state.pod_ip, rt.state.host_ip};
  auto launch = BuildLaunch(pod, container, facts, options_.base_env);
  if (!launch.ok()) {
    retry_later("CreateContainerConfigError", launch.status().message());
    return;
  }
  rt.readiness.reset();
  rt.liveness.reset();
  rt.readiness_unsupported = false;
  auto readiness = ParseProbe(container.value("readinessProbe", Json()), container, rt.state.pod_ip,
                              options_.max_probe_period);
  if (readiness.ok()) {
    rt.readiness = *readiness;
  } else {
    rt.readiness_unsupported = true;
    spdlog::warn("pod {}: readinessProbe: {}; the container will never be ready", rt.key,
                 readiness.status().message());
  }
  auto liveness = ParseProbe(container.value("livenessProbe", Json()), container, rt.state.pod_ip,
                             options_.max_probe_period);
  if (liveness.ok()) {
    rt.liveness = *liveness;
  } else {
    spdlog::warn("pod {}: livenessProbe ignored: {}", rt.key, liveness.status().message());
  }

  SpawnRequest request{launch->argv, launch->env, launch->working_dir, rt.log_path.string()};
  auto pid = SpawnProcess(request);
  if (!pid.ok()) {
    if (rt.restart_policy == "Never") {
      Termination failed;
      failed.exit_code = 128;
      failed.reason = "StartError";
      failed.message = pid.status().message();
      failed.started_at = failed.finished_at = clock_.WallNow();
      rt.state.terminated = failed;
      rt.state.finished = true;
      spdlog::warn("pod {}: cannot start: {}; restartPolicy Never: Failed", rt.key,
                   pid.status().message());
    } else {
      retry_later("RunContainerError", pid.status().message());
    }
    return;
  }
  rt.pid = *pid;
  uid_by_pid_[rt.pid] = rt.uid;
  reaper_.ChildStarted();
  ++rt.instance;
  if (rt.state.ever_started) ++rt.state.restart_count;
  const bool ready_now = !rt.readiness && !rt.readiness_unsupported;
  rt.state.Started("sim://" + std::to_string(rt.pid), clock_.WallNow(), ready_now);
  rt.started_mono = now;
  rt.start_at.reset();
  rt.terminating = false;
  rt.killed = false;
  if (rt.readiness) {
    rt.readiness_counter.emplace(false, rt.readiness->success_threshold,
                                 rt.readiness->failure_threshold);
  }
  if (rt.liveness) {
    rt.liveness_counter.emplace(true, rt.liveness->success_threshold,
                                rt.liveness->failure_threshold);
  }
  rt.readiness_seen_success = false;
  WritePidFile(rt);
  std::string command;
  for (const auto& word : launch->argv) command += (command.empty() ? "" : " ") + word;
  spdlog::info("pod {}: started pid {} (restart {}) at {}: {}", rt.key, rt.pid,
               rt.state.restart_count, rt.state.pod_ip, command);
  ScheduleProbes(rt.uid, rt.instance);
}

void PodSimulator::TerminateLocked(PodRuntime& rt, milliseconds grace, const char* why,
                                   ApiActions& actions) {
  rt.terminating = true;
  rt.kill_at = clock_.Now() + grace;
  if (grace.count() <= 0) {
    spdlog::info("pod {}: {}: SIGKILL pid {}", rt.key, why, rt.pid);
    SignalProcess(rt.pid, SIGKILL);
    rt.killed = true;
    return;
  }
  spdlog::info("pod {}: {}: SIGTERM pid {}, SIGKILL in {} ms", rt.key, why, rt.pid, grace.count());
  SignalProcess(rt.pid, SIGTERM);
  actions.RequeueAfter(grace);
}

void PodSimulator::DropRuntimeLocked(const std::string& uid) {
  auto it = runtimes_.find(uid);
  if (it == runtimes_.end()) return;
  PodRuntime& rt = *it->second;
  ips_.Release(rt.state.pod_ip);
  auto& uids = uids_by_key_[rt.key];
  uids.erase(uid);
  if (uids.empty()) uids_by_key_.erase(rt.key);
  spdlog::info("pod {} (uid {}): forgotten, IP {} released", rt.key, uid, rt.state.pod_ip);
  runtimes_.erase(it);
}

void PodSimulator::ScheduleProbes(const std::string& uid, int instance) {
  const PodRuntime& rt = *runtimes_.at(uid);
  if (rt.readiness) {
    probers_.Schedule(rt.readiness->initial_delay,
                      [this, uid, instance] { return ProbeTick(uid, instance, true); });
  }
  if (rt.liveness) {
    probers_.Schedule(rt.liveness->initial_delay,
                      [this, uid, instance] { return ProbeTick(uid, instance, false); });
  }
}

std::optional<milliseconds> PodSimulator::ProbeTick(const std::string& uid, int instance,
                                                    bool readiness) {
  ProbeSpec spec;
  {
    std::lock_guard lock(mutex_);
    const auto it = runtimes_.find(uid);
    if (shutting_down_ || it == runtimes_.end() || it->second->instance != instance ||
        it->second->pid == 0) {
      return std::nullopt;  // that instance is gone: its probes end
    }
    spec = readiness ? *it->second->readiness : *it->second->liveness;
  }
  std::string message;
  const bool success = RunProbe(spec, message);

  std::lock_guard lock(mutex_);
  const auto it = runtimes_.find(uid);
  if (shutting_down_ || it == runtimes_.end() || it->second->instance != instance ||
      it->second->pid == 0) {
    return std::nullopt;
  }
  PodRuntime& rt = *it->second;
  if (readiness) {
    if (success) rt.readiness_seen_success = true;
    if (rt.readiness_counter->Record(success)) {
      rt.state.ready = rt.readiness_counter->result();
      spdlog::info("pod {}: readiness probe {}: {}{}", rt.key, success ? "succeeded" : "failed",
                   rt.state.ready ? "ready" : "not ready",
                   message.empty() ? "" : " (" + message + ")");
      Enqueue(rt.key);
    }
    return rt.readiness_seen_success ? spec.period : std::min(spec.period, kStartupProbePeriod);
  }
  if (rt.liveness_counter->Record(success) && !rt.liveness_counter->result() && !rt.terminating) {
    ApiActions ignored;
    TerminateLocked(rt,
                    std::min<milliseconds>(rt.termination_grace, options_.max_termination_grace),
                    "liveness probe failed", ignored);
    spdlog::info("pod {}: liveness failure: {}", rt.key, message);
    if (ignored.requeue) queue_.AddAfter(rt.key, *ignored.requeue);
  }
  return spec.period;
}

void PodSimulator::OnChildExit(pid_t pid, int wait_status) {
  std::lock_guard lock(mutex_);
  const auto owner = uid_by_pid_.find(pid);
  if (owner == uid_by_pid_.end()) {
    // A child that failed to exec (posix_spawn reports that itself), or a stray.
    spdlog::debug("reaped child pid {} of no pod ({})", pid, DescribeWaitStatus(wait_status));
    return;
  }
  PodRuntime& rt = *runtimes_.at(owner->second);
  uid_by_pid_.erase(owner);
  ::kill(-pid, SIGKILL);  // whatever the container left behind in its process group
  const auto now = clock_.Now();
  rt.pid = 0;
  rt.state.running = false;
  rt.state.ready = false;
  rt.state.waiting_reason.clear();
  rt.state.waiting_message.clear();
  rt.state.terminated = TerminationFromWaitStatus(wait_status, rt.state.started_at,
                                                  clock_.WallNow(), rt.state.container_id);
  RemovePidFile(rt, pid);
  spdlog::info("pod {}: pid {} exited: {}", rt.key, pid, DescribeWaitStatus(wait_status));
  children_changed_.notify_all();
  if (shutting_down_) return;
  if (!rt.deleting && !rt.stale) {
    const int code = rt.state.terminated->exit_code;
    const bool restart =
        rt.restart_policy == "Always" || (rt.restart_policy == "OnFailure" && code != 0);
    if (restart) {
      const bool quick = now - rt.started_mono < kBackoffResetAfter;
      rt.backoff = rt.backoff.count() == 0 || !quick
                       ? options_.restart_delay
                       : std::min(rt.backoff * 2, options_.max_restart_delay);
      rt.start_at = now + rt.backoff;
      if (rt.backoff > options_.restart_delay) {
        rt.state.waiting_reason = "CrashLoopBackOff";
        rt.state.waiting_message = "back-off " + std::to_string(rt.backoff.count()) +
                                   "ms restarting failed container=" + rt.state.container_name +
                                   " pod=" + rt.name + "_" + rt.ns + "(" + rt.uid + ")";
      }
      spdlog::info("pod {}: restarting in {} ms (restartPolicy {})", rt.key, rt.backoff.count(),
                   rt.restart_policy);
    } else {
      rt.state.finished = true;
      spdlog::info("pod {}: finished (restartPolicy {}): {}", rt.key, rt.restart_policy,
                   PhaseOf(rt.state));
    }
  }
  Enqueue(rt.key);
}

void PodSimulator::WritePidFile(const PodRuntime& rt) const {
  // Written aside and renamed, so that a reader never sees half a number. The temporary
  // name is short: "<pod>.pid.tmp" may not fit in NAME_MAX.
  const auto tmp =
      (rt.pid_path.parent_path() / (".podsim-" + std::to_string(::getpid()) + ".tmp")).string();
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << rt.pid << "\n";
    if (!out) {
      spdlog::warn("pod {}: cannot write {}", rt.key, tmp);
      return;
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, rt.pid_path, error);
  if (error)
    spdlog::warn("pod {}: cannot write {}: {}", rt.key, rt.pid_path.string(), error.message());
}

void PodSimulator::RemovePidFile(const PodRuntime& rt, pid_t pid) const {
  std::ifstream in(rt.pid_path);
  pid_t written = 0;
  if (in >> written && written == pid) {
    std::error_code error;
    std::filesystem::remove(rt.pid_path, error);
  }
}

void PodSimulator::Shutdown(milliseconds grace) {
  if (shut_down_.exchange(true)) return;
  {
    std::unique_lock lock(mutex_);
    shutting_down_ = true;
    if (!uid_by_pid_.empty()) {
      spdlog::info("shutting down: SIGTERM to {} processes", uid_by_pid_.size());
      for (const auto& [pid, uid] : uid_by_pid_) SignalProcess(pid, SIGTERM);
      if (!children_changed_.wait_for(lock, grace, [this] { return uid_by_pid_.empty(); })) {
        spdlog::info("shutting down: SIGKILL to {} processes", uid_by_pid_.size());
        for (const auto& [pid, uid] : uid_by_pid_) SignalProcess(pid, SIGKILL);
        if (!children_changed_.wait_for(lock, std::chrono::seconds(10),
                                        [this] { return uid_by_pid_.empty(); })) {
          spdlog::error("shutting down: {} processes did not die", uid_by_pid_.size());
        }
      }
    }
  }
  heartbeat_.Stop();
  queue_.ShutDown();
  workers_.clear();  // joins
  for (auto& informer : informers_) informer->Stop();
  probers_.Stop();
  {
    std::lock_guard lock(mutex_);
    if (!uid_by_pid_.empty()) return;  // the reaper would wait for them forever
  }
  reaper_.Stop();
  spdlog::info("shut down");
}

}  // namespace dpcm::podsim
