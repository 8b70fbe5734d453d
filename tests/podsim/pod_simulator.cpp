#include "tests/podsim/pod_simulator.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <system_error>

#include "tests/podsim/container_env.h"
#include "tests/podsim/names.h"
#include "tests/podsim/service_account.h"

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

// One container of a pod as it runs here: its process, probes and restart back-off. Its
// reported state is the matching entry of PodRuntime::state.containers.
struct PodSimulator::ContainerRuntime {
  size_t index = 0;  // in spec.containers
  std::string name;
  std::filesystem::path pid_path;
  std::filesystem::path log_path;

  pid_t pid = 0;     // the running instance's process, 0 when none
  int instance = 0;  // counts started instances; probes carry it to spot stale results
  Clock::Monotonic::time_point started_mono;

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
};

struct PodSimulator::PodRuntime {
  std::string uid;
  std::string ns;
  std::string name;
  std::string key;
  PodRunState state;
  std::vector<ContainerRuntime> containers;  // parallel to state.containers

  std::string restart_policy = "Always";
  std::chrono::seconds termination_grace{30};  // spec.terminationGracePeriodSeconds

  // The ServiceAccount whose token the containers get (spec.serviceAccountName, unless
  // automountServiceAccountToken is false), the directory it is written to, and whether it is
  // there: containers start only after it is (the kubelet mounts volumes first).
  std::string service_account;
  std::filesystem::path service_account_dir;
  bool token_written = false;

  bool deleting = false;  // the pod has a deletionTimestamp
  bool delete_sent = false;
  bool stale = false;  // the pod vanished or was replaced (another uid)

  Json last_status;  // the status last written successfully

  bool AnyRunning() const {
    return std::any_of(containers.begin(), containers.end(),
                       [](const ContainerRuntime& c) { return c.pid != 0; });
  }
};

// What a reconcile pass asks of the API server, done after the lock is released.
struct PodSimulator::ApiActions {
  std::string ns;
  std::string name;
  std::string uid;
  std::optional<Json> status;
  bool delete_pod = false;
  // Mint a token for this ServiceAccount into this directory (TokenRequest, bound to the pod).
  std::optional<std::pair<std::string, std::filesystem::path>> mint_token;
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
      std::string containers;
      for (const Json& cs : (*actions.status)["containerStatuses"]) {
        containers += " " + cs["name"].get<std::string>() + "=" + cs["state"].begin().key() +
                      (cs["ready"].get<bool>() ? "/ready" : "") + "/restarts " +
                      std::to_string(cs["restartCount"].get<int>());
      }
      spdlog::info("pod {}: status written: phase={} ready={}{} ({} us)", key,
                   (*actions.status)["phase"].get<std::string>(),
                   ConditionOf(*actions.status, "Ready"), containers, took.count());
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
  if (actions.mint_token) {
    const auto& [account, dir] = *actions.mint_token;
    const Status minted =
        WriteServiceAccountToken(client_, actions.ns, account, actions.name, actions.uid, dir);
    if (minted.ok()) {
      spdlog::info("pod {}: token of ServiceAccount {} written to {}", key, account, dir.string());
      std::lock_guard lock(mutex_);
      const auto it = runtimes_.find(actions.uid);
      if (it != runtimes_.end()) it->second->token_written = true;
      actions.RequeueAfter(milliseconds(0));
    } else {
      spdlog::warn("pod {}: FailedMount: token of ServiceAccount {}: {}; retrying", key, account,
                   minted.ToString());
      actions.RequeueAfter(milliseconds(1000));
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
  for (ContainerRuntime& c : rt.containers) {
    if (deleting && c.pid != 0 && !c.terminating) {
      const int64_t grace = IntField(*pod, "/metadata/deletionGracePeriodSeconds"_json_pointer)
                                .value_or(rt.termination_grace.count());
      TerminateLocked(
          rt, c,
          std::min<milliseconds>(std::chrono::seconds(grace), options_.max_termination_grace),
          "pod is being deleted", actions);
    }
    if (c.pid != 0 && c.terminating && !c.killed) {
      if (now >= c.kill_at) {
        spdlog::info("pod {}: container {}: grace period over, SIGKILL pid {}", key, c.name, c.pid);
        SignalProcess(c.pid, SIGKILL);
        c.killed = true;
      } else {
        actions.RequeueAfter(Until(c.kill_at, now));
      }
    }
  }
  if (deleting) {
    if (!rt.AnyRunning()) {
      for (ContainerRunState& c : rt.state.containers) {
        c.waiting_reason.clear();  // no restart is coming: show how it ended
        c.waiting_message.clear();
      }
      if (!rt.delete_sent) actions.delete_pod = true;
    }
  } else {
    // The service-account token first, as the kubelet mounts it before any container starts.
    if (!rt.service_account.empty() && !rt.token_written) {
      actions.mint_token.emplace(rt.service_account, rt.service_account_dir);
    }
    // Every container of the pod runs (all sharing the pod's address), each restarted on
    // its own back-off, as the kubelet does.
    for (ContainerRuntime& c : rt.containers) {
      if (actions.mint_token) break;
      if (c.pid != 0 || rt.state.containers[c.index].finished) continue;
      if (!c.start_at || now >= *c.start_at) {
        StartContainerLocked(rt, c, *pod, actions);
      } else {
        actions.RequeueAfter(Until(*c.start_at, now));
      }
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
    if (!rt.AnyRunning()) {
      DropRuntimeLocked(uid);
      continue;
    }
    for (ContainerRuntime& c : rt.containers) {
      if (c.pid == 0) continue;
      if (!c.terminating) {
        TerminateLocked(rt, c, options_.vanished_grace, "pod vanished", actions);
      } else if (!c.killed && now >= c.kill_at) {
        spdlog::info("pod {} (uid {}): container {}: SIGKILL pid {}", key, uid, c.name, c.pid);
        SignalProcess(c.pid, SIGKILL);
        c.killed = true;
      } else if (!c.killed) {
        actions.RequeueAfter(Until(c.kill_at, now));
      }
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
  const Json& specs = Field(pod, "/spec/containers"_json_pointer);
  if (!specs.is_array() || specs.empty()) {
    spdlog::error("pod {}: the pod has no container", rt->key);
    actions.RequeueAfter(milliseconds(5000));
    return nullptr;
  }
  const auto ip = ips_.Allocate(StringField(pod, "/status/podIP"_json_pointer));
  if (!ip) {
    spdlog::error("pod {}: no free IP address left after {}", rt->key, options_.ip_base);
    actions.RequeueAfter(milliseconds(5000));
    return nullptr;
  }
  rt->state.pod_ip = *ip;
  rt->state.host_ip = options_.node.host_ip;
  rt->state.start_time = clock_.WallNow();
  const Json& previous_statuses = Field(pod, "/status/containerStatuses"_json_pointer);
  for (size_t i = 0; i < specs.size(); ++i) {
    ContainerRuntime c;
    c.index = i;
    c.name = specs[i].is_object() ? specs[i].value("name", "") : "";
    // The first container keeps the pod's own state file names; the others add their name.
    const std::string infix = i == 0 ? "" : "." + c.name;
    c.pid_path = dir / StateFileName(rt->name, infix + ".pid");
    c.log_path = dir / StateFileName(rt->name, infix + ".log");
    if (c.pid_path.filename() != rt->name + infix + ".pid") {
      spdlog::info("pod {}: name too long for a file name; state files are {} and {}", rt->key,
                   c.pid_path.string(), c.log_path.string());
    }
    ContainerRunState state;
    state.container_name = c.name;
    state.image = specs[i].is_object() ? specs[i].value("image", "") : "";
    // A pod that ran under an earlier simulator process keeps counting its restarts.
    if (previous_statuses.is_array()) {
      for (const Json& previous : previous_statuses) {
        if (!previous.is_object() || previous.value("name", "") != c.name) continue;
        if (!previous.value("containerID", "").empty()) {
          state.restart_count = previous.value("restartCount", 0);
          state.ever_started = true;
        }
      }
    }
    rt->containers.push_back(std::move(c));
    rt->state.containers.push_back(std::move(state));
  }
  rt->service_account = StringField(pod, "/spec/serviceAccountName"_json_pointer);
  if (Field(pod, "/spec/automountServiceAccountToken"_json_pointer) == Json(false)) {
    rt->service_account.clear();
  }
  rt->service_account_dir = dir / StateFileName(rt->name, "." + uid + ".serviceaccount");
  if (const auto grace = IntField(pod, "/spec/terminationGracePeriodSeconds"_json_pointer)) {
    rt->termination_grace = std::chrono::seconds(std::max<int64_t>(0, *grace));
  }
  spdlog::info("pod {}: accepted (uid {}), IP {}", rt->key, uid, *ip);
  PodRuntime* raw = rt.get();
  uids_by_key_[raw->key].insert(uid);
  runtimes_.emplace(uid, std::move(rt));
  return raw;
}

void PodSimulator::StartContainerLocked(PodRuntime& rt, ContainerRuntime& c, const Json& pod,
                                        ApiActions& actions) {
  const auto now = clock_.Now();
  ContainerRunState& state = rt.state.containers[c.index];
  auto retry_later = [&](const std::string& reason, const std::string& message) {
    state.waiting_reason = reason;
    state.waiting_message = message;
    c.backoff = c.backoff.count() == 0 ? options_.restart_delay
                                       : std::min(c.backoff * 2, options_.max_restart_delay);
    c.start_at = now + c.backoff;
    actions.RequeueAfter(c.backoff);
    spdlog::warn("pod {}: container {}: {}: {}; retrying in {} ms", rt.key, c.name, reason, message,
                 c.backoff.count());
  };
  const Json& container =
      Field(pod, Json::json_pointer("/spec/containers/" + std::to_string(c.index)));
  if (!container.is_object()) {
    retry_later("CreateContainerConfigError", "the container is not in the pod's spec");
    return;
  }
  rt.restart_policy = StringField(pod, "/spec/restartPolicy"_json_pointer);
  if (rt.restart_policy.empty()) rt.restart_policy = "Always";
  const PodFacts facts{rt.name,         rt.ns,           rt.uid, options_.node.name,
                       rt.state.pod_ip, rt.state.host_ip};
  std::vector<std::string> base_env = options_.base_env;
  if (rt.token_written) {
    const auto env = ServiceAccountEnv(client_.config().server, rt.service_account_dir);
    std::erase_if(base_env, [&](const std::string& entry) {  // the pod's values win
      return std::any_of(env.begin(), env.end(), [&](const std::string& own) {
        return entry.substr(0, entry.find('=')) == own.substr(0, own.find('='));
      });
    });
    base_env.insert(base_env.end(), env.begin(), env.end());
  }
  auto launch = BuildLaunch(pod, container, facts, base_env);
  if (!launch.ok()) {
    retry_later("CreateContainerConfigError", launch.status().message());
    return;
  }
  c.readiness.reset();
  c.liveness.reset();
  c.readiness_unsupported = false;
  auto readiness = ParseProbe(container.value("readinessProbe", Json()), container, rt.state.pod_ip,
                              options_.max_probe_period);
  if (readiness.ok()) {
    c.readiness = *readiness;
  } else {
    c.readiness_unsupported = true;
    spdlog::warn("pod {}: container {}: readinessProbe: {}; it will never be ready", rt.key, c.name,
                 readiness.status().message());
  }
  auto liveness = ParseProbe(container.value("livenessProbe", Json()), container, rt.state.pod_ip,
                             options_.max_probe_period);
  if (liveness.ok()) {
    c.liveness = *liveness;
  } else {
    spdlog::warn("pod {}: container {}: livenessProbe ignored: {}", rt.key, c.name,
                 liveness.status().message());
  }

  SpawnRequest request{launch->argv, launch->env, launch->working_dir, c.log_path.string()};
  auto pid = SpawnProcess(request);
  if (!pid.ok()) {
    if (rt.restart_policy == "Never") {
      Termination failed;
      failed.exit_code = 128;
      failed.reason = "StartError";
      failed.message = pid.status().message();
      failed.started_at = failed.finished_at = clock_.WallNow();
      state.terminated = failed;
      state.finished = true;
      spdlog::warn("pod {}: container {}: cannot start: {}; restartPolicy Never: not run again",
                   rt.key, c.name, pid.status().message());
    } else {
      retry_later("RunContainerError", pid.status().message());
    }
    return;
  }
  c.pid = *pid;
  owner_by_pid_[c.pid] = {rt.uid, c.index};
  reaper_.ChildStarted();
  ++c.instance;
  if (state.ever_started) ++state.restart_count;
  const bool ready_now = !c.readiness && !c.readiness_unsupported;
  state.Started("sim://" + std::to_string(c.pid), clock_.WallNow(), ready_now);
  c.started_mono = now;
  c.start_at.reset();
  c.terminating = false;
  c.killed = false;
  if (c.readiness) {
    c.readiness_counter.emplace(false, c.readiness->success_threshold,
                                c.readiness->failure_threshold);
  }
  if (c.liveness) {
    c.liveness_counter.emplace(true, c.liveness->success_threshold, c.liveness->failure_threshold);
  }
  c.readiness_seen_success = false;
  WritePidFile(rt, c);
  std::string command;
  for (const auto& word : launch->argv) command += (command.empty() ? "" : " ") + word;
  spdlog::info("pod {}: container {}: started pid {} (restart {}) at {}: {}", rt.key, c.name, c.pid,
               state.restart_count, rt.state.pod_ip, command);
  ScheduleProbes(rt.uid, c.index, c.instance);
}

void PodSimulator::TerminateLocked(PodRuntime& rt, ContainerRuntime& c, milliseconds grace,
                                   const char* why, ApiActions& actions) {
  c.terminating = true;
  c.kill_at = clock_.Now() + grace;
  if (grace.count() <= 0) {
    spdlog::info("pod {}: container {}: {}: SIGKILL pid {}", rt.key, c.name, why, c.pid);
    SignalProcess(c.pid, SIGKILL);
    c.killed = true;
    return;
  }
  spdlog::info("pod {}: container {}: {}: SIGTERM pid {}, SIGKILL in {} ms", rt.key, c.name, why,
               c.pid, grace.count());
  SignalProcess(c.pid, SIGTERM);
  actions.RequeueAfter(grace);
}

void PodSimulator::DropRuntimeLocked(const std::string& uid) {
  auto it = runtimes_.find(uid);
  if (it == runtimes_.end()) return;
  PodRuntime& rt = *it->second;
  ips_.Release(rt.state.pod_ip);
  if (rt.token_written) {
    std::error_code ignored;
    std::filesystem::remove_all(rt.service_account_dir, ignored);
  }
  auto& uids = uids_by_key_[rt.key];
  uids.erase(uid);
  if (uids.empty()) uids_by_key_.erase(rt.key);
  spdlog::info("pod {} (uid {}): forgotten, IP {} released", rt.key, uid, rt.state.pod_ip);
  runtimes_.erase(it);
}

void PodSimulator::ScheduleProbes(const std::string& uid, size_t container, int instance) {
  const ContainerRuntime& c = runtimes_.at(uid)->containers.at(container);
  if (c.readiness) {
    probers_.Schedule(c.readiness->initial_delay, [this, uid, container, instance] {
      return ProbeTick(uid, container, instance, true);
    });
  }
  if (c.liveness) {
    probers_.Schedule(c.liveness->initial_delay, [this, uid, container, instance] {
      return ProbeTick(uid, container, instance, false);
    });
  }
}

PodSimulator::ContainerRuntime* PodSimulator::LiveInstanceLocked(const std::string& uid,
                                                                 size_t container, int instance) {
  const auto it = runtimes_.find(uid);
  if (shutting_down_ || it == runtimes_.end() || container >= it->second->containers.size()) {
    return nullptr;
  }
  ContainerRuntime& c = it->second->containers[container];
  return c.instance == instance && c.pid != 0 ? &c : nullptr;
}

std::optional<milliseconds> PodSimulator::ProbeTick(const std::string& uid, size_t container,
                                                    int instance, bool readiness) {
  ProbeSpec spec;
  {
    std::lock_guard lock(mutex_);
    const ContainerRuntime* c = LiveInstanceLocked(uid, container, instance);
    if (c == nullptr) return std::nullopt;  // that instance is gone: its probes end
    spec = readiness ? *c->readiness : *c->liveness;
  }
  std::string message;
  const bool success = RunProbe(spec, message);

  std::lock_guard lock(mutex_);
  ContainerRuntime* found = LiveInstanceLocked(uid, container, instance);
  if (found == nullptr) return std::nullopt;
  ContainerRuntime& c = *found;
  PodRuntime& rt = *runtimes_.at(uid);
  ContainerRunState& state = rt.state.containers[c.index];
  if (readiness) {
    if (success) c.readiness_seen_success = true;
    if (c.readiness_counter->Record(success)) {
      state.ready = c.readiness_counter->result();
      spdlog::info("pod {}: container {}: readiness probe {}: {}{}", rt.key, c.name,
                   success ? "succeeded" : "failed", state.ready ? "ready" : "not ready",
                   message.empty() ? "" : " (" + message + ")");
      Enqueue(rt.key);
    }
    return c.readiness_seen_success ? spec.period : std::min(spec.period, kStartupProbePeriod);
  }
  if (c.liveness_counter->Record(success) && !c.liveness_counter->result() && !c.terminating) {
    ApiActions ignored;
    TerminateLocked(rt, c,
                    std::min<milliseconds>(rt.termination_grace, options_.max_termination_grace),
                    "liveness probe failed", ignored);
    spdlog::info("pod {}: container {}: liveness failure: {}", rt.key, c.name, message);
    if (ignored.requeue) queue_.AddAfter(rt.key, *ignored.requeue);
  }
  return spec.period;
}

void PodSimulator::OnChildExit(pid_t pid, int wait_status) {
  std::lock_guard lock(mutex_);
  const auto owner = owner_by_pid_.find(pid);
  if (owner == owner_by_pid_.end()) {
    // A child that failed to exec (posix_spawn reports that itself), or a stray.
    spdlog::debug("reaped child pid {} of no pod ({})", pid, DescribeWaitStatus(wait_status));
    return;
  }
  PodRuntime& rt = *runtimes_.at(owner->second.first);
  ContainerRuntime& c = rt.containers.at(owner->second.second);
  ContainerRunState& state = rt.state.containers[c.index];
  owner_by_pid_.erase(owner);
  ::kill(-pid, SIGKILL);  // whatever the container left behind in its process group
  const auto now = clock_.Now();
  c.pid = 0;
  state.running = false;
  state.ready = false;
  state.waiting_reason.clear();
  state.waiting_message.clear();
  state.terminated = TerminationFromWaitStatus(wait_status, state.started_at, clock_.WallNow(),
                                               state.container_id);
  RemovePidFile(c, pid);
  spdlog::info("pod {}: container {}: pid {} exited: {}", rt.key, c.name, pid,
               DescribeWaitStatus(wait_status));
  children_changed_.notify_all();
  if (shutting_down_) return;
  if (!rt.deleting && !rt.stale) {
    const int code = state.terminated->exit_code;
    const bool restart =
        rt.restart_policy == "Always" || (rt.restart_policy == "OnFailure" && code != 0);
    if (restart) {
      const bool quick = now - c.started_mono < kBackoffResetAfter;
      c.backoff = c.backoff.count() == 0 || !quick
                      ? options_.restart_delay
                      : std::min(c.backoff * 2, options_.max_restart_delay);
      c.start_at = now + c.backoff;
      if (c.backoff > options_.restart_delay) {
        state.waiting_reason = "CrashLoopBackOff";
        state.waiting_message = "back-off " + std::to_string(c.backoff.count()) +
                                "ms restarting failed container=" + c.name + " pod=" + rt.name +
                                "_" + rt.ns + "(" + rt.uid + ")";
      }
      spdlog::info("pod {}: container {}: restarting in {} ms (restartPolicy {})", rt.key, c.name,
                   c.backoff.count(), rt.restart_policy);
    } else {
      state.finished = true;
      spdlog::info("pod {}: container {}: finished (restartPolicy {}); pod {}", rt.key, c.name,
                   rt.restart_policy, PhaseOf(rt.state));
    }
  }
  // Ahead of the queued work: a kubelet reports an exit within about a second whatever its
  // other pods do (PLEG, a worker per pod), while this queue, shared by every pod, held
  // thousands of pod starts at 1,000 x 3 and reported a DC's exit 27-33 s late.
  queue_.AddUrgent(rt.key);
}

void PodSimulator::WritePidFile(const PodRuntime& rt, const ContainerRuntime& c) const {
  // Written aside and renamed, so that a reader never sees half a number. The temporary
  // name is short: "<pod>.pid.tmp" may not fit in NAME_MAX.
  const auto tmp =
      (c.pid_path.parent_path() / (".podsim-" + std::to_string(::getpid()) + ".tmp")).string();
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << c.pid << "\n";
    if (!out) {
      spdlog::warn("pod {}: cannot write {}", rt.key, tmp);
      return;
    }
  }
  std::error_code error;
  std::filesystem::rename(tmp, c.pid_path, error);
  if (error)
    spdlog::warn("pod {}: cannot write {}: {}", rt.key, c.pid_path.string(), error.message());
}

void PodSimulator::RemovePidFile(const ContainerRuntime& c, pid_t pid) const {
  std::ifstream in(c.pid_path);
  pid_t written = 0;
  if (in >> written && written == pid) {
    std::error_code error;
    std::filesystem::remove(c.pid_path, error);
  }
}

void PodSimulator::Shutdown(milliseconds grace) {
  if (shut_down_.exchange(true)) return;
  {
    std::unique_lock lock(mutex_);
    shutting_down_ = true;
    if (!owner_by_pid_.empty()) {
      spdlog::info("shutting down: SIGTERM to {} processes", owner_by_pid_.size());
      for (const auto& [pid, uid] : owner_by_pid_) SignalProcess(pid, SIGTERM);
      if (!children_changed_.wait_for(lock, grace, [this] { return owner_by_pid_.empty(); })) {
        spdlog::info("shutting down: SIGKILL to {} processes", owner_by_pid_.size());
        for (const auto& [pid, uid] : owner_by_pid_) SignalProcess(pid, SIGKILL);
        if (!children_changed_.wait_for(lock, std::chrono::seconds(10),
                                        [this] { return owner_by_pid_.empty(); })) {
          spdlog::error("shutting down: {} processes did not die", owner_by_pid_.size());
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
    if (!owner_by_pid_.empty()) return;  // the reaper would wait for them forever
  }
  reaper_.Stop();
  spdlog::info("shut down");
}

}  // namespace dpcm::podsim
