// Unit tests of the pod simulator's parts that need no API server.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "tests/podsim/child_process.h"
#include "tests/podsim/container_env.h"
#include "tests/podsim/ip_allocator.h"
#include "tests/podsim/names.h"
#include "tests/podsim/pod_status.h"
#include "tests/podsim/probe.h"

using namespace dpcm::podsim;
using Json = nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("pod and namespace names are checked as the API checks them") {
  CHECK(IsDns1123Subdomain("web-0"));
  CHECK(IsDns1123Subdomain("a.b-c.d"));
  CHECK(IsDns1123Subdomain(std::string(253, 'a')));
  CHECK_FALSE(IsDns1123Subdomain(std::string(254, 'a')));
  CHECK_FALSE(IsDns1123Subdomain(""));
  CHECK_FALSE(IsDns1123Subdomain(".."));
  CHECK_FALSE(IsDns1123Subdomain("a/b"));
  CHECK_FALSE(IsDns1123Subdomain("-a"));
  CHECK_FALSE(IsDns1123Subdomain("A"));
  CHECK_FALSE(IsDns1123Subdomain("a..b"));
  CHECK(IsDns1123Label("default"));
  CHECK_FALSE(IsDns1123Label("a.b"));
  CHECK_FALSE(IsDns1123Label(std::string(64, 'a')));
}

TEST_CASE("state file names fit NAME_MAX and stay unique") {
  CHECK(StateFileName("web-0", ".pid") == "web-0.pid");
  const std::string longest(253, 'a');
  std::string other = longest;
  other.back() = 'b';
  const auto a = StateFileName(longest, ".pid");
  const auto b = StateFileName(other, ".pid");
  CHECK(a.size() <= 255);
  CHECK(a != b);
  CHECK(a.ends_with(".pid"));
  CHECK(StateFileName(std::string(251, 'a'), ".log").size() == 255);
}

TEST_CASE("IP addresses are handed out lowest first and reused") {
  auto ips = IpAllocator::Create("127.1.0.0");
  REQUIRE(ips.ok());
  CHECK(*ips->Allocate() == "127.1.0.1");
  CHECK(*ips->Allocate() == "127.1.0.2");
  CHECK(*ips->Allocate() == "127.1.0.3");
  ips->Release("127.1.0.2");
  CHECK(*ips->Allocate() == "127.1.0.2");
  CHECK(*ips->Allocate("127.1.0.9") == "127.1.0.9");
  CHECK(*ips->Allocate("127.1.0.9") == "127.1.0.4");  // taken: the lowest free instead
  CHECK(*ips->Allocate("10.0.0.1") == "127.1.0.5");   // out of range
  auto tiny = IpAllocator::Create("127.1.0.254", 1);
  REQUIRE(tiny.ok());
  CHECK(*tiny->Allocate() == "127.1.0.255");
  CHECK_FALSE(tiny->Allocate().has_value());
  CHECK_FALSE(IpAllocator::Create("127.1.0").ok());
  CHECK_FALSE(IpAllocator::Create("127.1.0.256").ok());
}

TEST_CASE("$(VAR) expansion follows Kubernetes") {
  auto lookup = [](std::string_view name) -> std::optional<std::string> {
    if (name == "A") return std::string("x");
    return std::nullopt;
  };
  CHECK(ExpandVariables("$(A)-$(B)", lookup) == "x-$(B)");
  CHECK(ExpandVariables("$$(A)", lookup) == "$(A)");
  CHECK(ExpandVariables("a$b$", lookup) == "a$b$");
  CHECK(ExpandVariables("$(A", lookup) == "$(A");
}

TEST_CASE("a container's launch: argv without a shell, env with fieldRefs and POD_*") {
  const Json pod = Json::parse(R"json({
    "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "demo"}},
    "spec": {"containers": [{
      "name": "c", "image": "i", "command": ["app", "--name=$(MY_NAME)"], "args": ["; rm -rf /"],
      "env": [
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
        {"name": "GREETING", "value": "hi $(MY_NAME)"},
        {"name": "HOME", "value": "/nowhere"}]}]
}
})json");
  const PodFacts facts{"p", "ns", "u", "node", "127.1.0.7", "127.0.0.1"};
  auto launch = BuildLaunch(pod, pod["spec"]["containers"][0], facts, {"HOME=/root", "PATH=/bin"});
  REQUIRE(launch.ok());
  CHECK(launch->argv == std::vector<std::string>{"app", "--name=p", "; rm -rf /"});
  auto has = [&](const std::string& entry) {
    return std::find(launch->env.begin(), launch->env.end(), entry) != launch->env.end();
  };
  CHECK(has("HOME=/nowhere"));
  CHECK_FALSE(has("HOME=/root"));
  CHECK(has("PATH=/bin"));
  CHECK(has("IP=127.1.0.7"));
  CHECK(has("APP=demo"));
  CHECK(has("GREETING=hi p"));
  CHECK(has("POD_NAME=p"));
  CHECK(has("POD_NAMESPACE=ns"));
  CHECK(has("POD_IP=127.1.0.7"));

  Json secret = pod;
  secret["spec"]["containers"][0]["env"] =
      Json::parse(R"([{"name": "S", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}])");
  CHECK_FALSE(BuildLaunch(secret, secret["spec"]["containers"][0], facts, {}).ok());
  Json no_command = pod;
  no_command["spec"]["containers"][0].erase("command");
  CHECK_FALSE(BuildLaunch(no_command, no_command["spec"]["containers"][0], facts, {}).ok());
}

TEST_CASE("probes: defaults, named ports, unsupported handlers") {
  const Json container = Json::parse(R"({"ports": [{"name": "http", "containerPort": 8080}]})");
  auto http = ParseProbe(Json::parse(R"({"httpGet": {"path": "healthz", "port": "http"},
                                          "periodSeconds": 5, "failureThreshold": 2})"),
                         container, "127.1.0.3", 1000ms);
  REQUIRE(http.ok());
  REQUIRE(http->has_value());
  CHECK((*http)->port == 8080);
  CHECK((*http)->path == "/healthz");
  CHECK((*http)->period == 1000ms);
  CHECK((*http)->timeout == 1000ms);
  CHECK((*http)->failure_threshold == 2);
  CHECK((*http)->Describe() == "http-get http://127.1.0.3:8080/healthz");
  auto none = ParseProbe(Json(), container, "127.1.0.3", 1000ms);
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  CHECK_FALSE(
      ParseProbe(Json::parse(R"({"exec": {"command": ["x"]}})"), container, "", 1000ms).ok());
  CHECK_FALSE(
      ParseProbe(Json::parse(R"({"tcpSocket": {"port": "nope"}})"), container, "", 1000ms).ok());
}

TEST_CASE("probe results flip only after their thresholds") {
  ProbeCounter readiness(false, 2, 3);
  CHECK_FALSE(readiness.Record(true));
  CHECK(readiness.Record(true));
  CHECK(readiness.result());
  CHECK_FALSE(readiness.Record(false));
  CHECK_FALSE(readiness.Record(false));
  CHECK_FALSE(readiness.Record(true));  // the run of failures is broken
  CHECK_FALSE(readiness.Record(false));
  CHECK_FALSE(readiness.Record(false));
  CHECK(readiness.Record(false));
  CHECK_FALSE(readiness.result());
}

TEST_CASE("a tcp probe against a closed port fails quickly") {
  ProbeSpec spec;
  spec.kind = ProbeSpec::Kind::kTcpSocket;
  spec.host = "127.0.0.1";
  spec.port = 1;
  std::string message;
  CHECK_FALSE(RunProbe(spec, message));
  CHECK_FALSE(message.empty());
}

TEST_CASE("pod status: running, exit, CrashLoopBackOff, terminal phases") {
  PodRunState pod;
  pod.containers.resize(1);
  ContainerRunState& state = pod.containers[0];
  state.container_name = "app";
  state.image = "img";
  pod.pod_ip = "127.1.0.1";
  pod.host_ip = "127.0.0.1";
  const auto t0 = std::chrono::system_clock::from_time_t(1700000000);
  pod.start_time = t0;
  UpdateConditions(pod, t0);
  Json status = BuildPodStatus(pod);
  CHECK(status["phase"] == "Pending");
  CHECK(status["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating");

  state.Started("sim://10", t0, true);
  UpdateConditions(pod, t0 + 1s);
  status = BuildPodStatus(pod);
  CHECK(status["phase"] == "Running");
  CHECK(status["podIP"] == "127.1.0.1");
  CHECK(status["podIPs"][0]["ip"] == "127.1.0.1");
  CHECK(status["containerStatuses"][0]["ready"] == true);
  CHECK(status["containerStatuses"][0]["containerID"] == "sim://10");
  CHECK(status["containerStatuses"][0]["state"]["running"]["startedAt"] == "2023-11-14T22:13:20Z");
  const Json ready = status["conditions"][1];
  CHECK(ready["type"] == "Ready");
  CHECK(ready["status"] == "True");
  CHECK(ready["lastTransitionTime"] == "2023-11-14T22:13:21Z");
  CHECK(BuildPodStatus(pod) == status);  // same facts, same bytes

  state.running = false;
  state.ready = false;
  state.terminated = TerminationFromWaitStatus(SIGKILL, t0, t0 + 5s, "sim://10");
  UpdateConditions(pod, t0 + 5s);
  status = BuildPodStatus(pod);
  const Json& cs = status["containerStatuses"][0];
  CHECK(status["phase"] == "Running");
  CHECK(cs["ready"] == false);
  CHECK(cs["state"]["terminated"]["exitCode"] == 137);
  CHECK(cs["state"]["terminated"]["signal"] == 9);
  CHECK(cs["state"]["terminated"]["reason"] == "Error");
  CHECK(status["conditions"][1]["status"] == "False");
  CHECK(status["conditions"][1]["reason"] == "ContainersNotReady");

  state.Started("sim://11", t0 + 6s, true);
  state.restart_count = 1;
  status = BuildPodStatus(pod);
  CHECK(status["containerStatuses"][0]["lastState"]["terminated"]["containerID"] == "sim://10");
  CHECK(status["containerStatuses"][0]["restartCount"] == 1);

  state.running = false;
  state.terminated = TerminationFromWaitStatus(1 << 8, t0 + 6s, t0 + 7s, "sim://11");
  state.waiting_reason = "CrashLoopBackOff";
  status = BuildPodStatus(pod);
  CHECK(status["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff");
  CHECK(status["containerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 1);

  state.waiting_reason.clear();
  state.finished = true;
  CHECK(PhaseOf(pod) == "Failed");
  state.terminated->exit_code = 0;
  CHECK(PhaseOf(pod) == "Succeeded");
}

TEST_CASE("pod status: every container reported; ready only when all are") {
  PodRunState pod;
  pod.containers.resize(2);
  pod.containers[0].container_name = "app";
  pod.containers[1].container_name = "agent";
  pod.pod_ip = "127.1.0.1";
  const auto t0 = std::chrono::system_clock::from_time_t(1700000000);
  pod.containers[0].Started("sim://10", t0, true);
  UpdateConditions(pod, t0);
  Json status = BuildPodStatus(pod);
  REQUIRE(status["containerStatuses"].size() == 2);
  CHECK(status["containerStatuses"][1]["name"] == "agent");
  CHECK(status["containerStatuses"][1]["state"]["waiting"]["reason"] == "ContainerCreating");
  CHECK(status["phase"] == "Running");
  CHECK(status["conditions"][1]["status"] == "False");
  CHECK(status["conditions"][1]["message"] == "containers with unready status: [agent]");

  pod.containers[1].Started("sim://11", t0 + 1s, true);
  UpdateConditions(pod, t0 + 1s);
  status = BuildPodStatus(pod);
  CHECK(status["conditions"][1]["status"] == "True");
  CHECK(status["containerStatuses"][1]["ready"] == true);

  pod.containers[1].running = false;
  pod.containers[1].terminated = TerminationFromWaitStatus(SIGKILL, t0, t0 + 2s, "sim://11");
  pod.containers[1].restart_count = 0;
  UpdateConditions(pod, t0 + 2s);
  status = BuildPodStatus(pod);
  CHECK(status["conditions"][1]["status"] == "False");
  CHECK(status["containerStatuses"][0]["ready"] == true);
  CHECK(status["containerStatuses"][1]["state"]["terminated"]["exitCode"] == 137);

  for (auto& c : pod.containers) {
    c.running = false;
    c.finished = true;
    c.terminated = TerminationFromWaitStatus(0, t0, t0 + 3s, c.container_id);
  }
  CHECK(PhaseOf(pod) == "Succeeded");
  pod.containers[1].terminated->exit_code = 2;
  CHECK(PhaseOf(pod) == "Failed");
}

TEST_CASE("spawned processes get their argv, env and log, the reaper reports exits") {
  const auto dir =
      std::filesystem::temp_directory_path() / ("podsim-test-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::promise<std::pair<pid_t, int>> exited;
  ChildReaper reaper([&](pid_t pid, int status) { exited.set_value({pid, status}); });
  reaper.Start();
  SpawnRequest request;
  request.argv = {"sh", "-c", "echo \"$GREETING $0\"; exit 3", "arg with 'quotes' $HOME"};
  request.env = {"GREETING=hello", "PATH=/usr/bin:/bin"};
  request.log_path = (dir / "out.log").string();
  auto pid = SpawnProcess(request);
  REQUIRE(pid.ok());
  reaper.ChildStarted();
  auto future = exited.get_future();
  REQUIRE(future.wait_for(5s) == std::future_status::ready);
  const auto [reaped, status] = future.get();
  CHECK(reaped == *pid);
  CHECK(WEXITSTATUS(status) == 3);
  std::ifstream log(dir / "out.log");
  std::string line;
  std::getline(log, line);
  CHECK(line == "hello arg with 'quotes' $HOME");
  reaper.Stop();

  request.argv = {"/definitely/not/here"};
  CHECK_FALSE(SpawnProcess(request).ok());
  std::filesystem::remove_all(dir);
}
