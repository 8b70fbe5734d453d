// dpcm-agent end to end: command health checks and role hooks run inside the member pod, a
// failing check fails the DC over, roles arrive demote-before-promote, the app reads GET /role.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/e2e_scenario.h"
#include "tests/support/role_api.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::OperatorEnv;
using testing::TestEnv;
using testing::e2e::Eventually;
using testing::e2e::Millis;
using testing::e2e::Scenario;
using WallClock = testing::DcWatcher::WallClock;

// One line a role hook command wrote: when, for which pod, what, and its parent process.
struct RoleLine {
  long long nanos = 0;
  std::string pod;
  std::string role;
  int64_t epoch = 0;
  pid_t parent = 0;
};

std::vector<RoleLine> ReadRoles(const std::string& path) {
  std::vector<RoleLine> lines;
  std::ifstream in(path);
  RoleLine line;
  while (in >> line.nanos >> line.pod >> line.role >> line.epoch >> line.parent) {
    lines.push_back(line);
  }
  return lines;
}

// A domain with the agent: the health check and the role hook are commands (a shell here,
// argv only for the agent) that record their parent process, so the test can tell where
// they ran.
Json AgentDomain(const std::string& name, const std::string& dir) {
  Json domain = OperatorEnv::SampleDomain(name, 2);
  domain["spec"]["agent"] = {{"enabled", true}};
  // The application follows its agent's role API (on the pod's address in the test world).
  Json& app = domain["spec"]["template"]["spec"]["containers"][0];
  app["env"] = Json::array(
      {{{"name", "POD_IP"}, {"valueFrom", {{"fieldRef", {{"fieldPath", "status.podIP"}}}}}}});
  app["args"].push_back("--role-api=$(POD_IP):8720");
  const Json env = Json::array({{{"name", "DIR"}, {"value", dir}}});
  domain["spec"]["health"] = {
      {"periodSeconds", 1},
      {"timeoutSeconds", 1},
      {"failureThreshold", 2},
      {"command",
       {{"command", Json::array({"/bin/sh", "-c",
                                 "echo $PPID > \"$DIR/$DPCM_POD.health-parent\"; "
                                 "if [ -e \"$DIR/$DPCM_POD.unhealthy\" ]; then "
                                 "echo \"marked unhealthy\"; exit 1; fi; echo \"healthy\""})},
        {"env", env}}}};
  domain["spec"]["roleHooks"] = {
      {"timeoutSeconds", 2},
      {"command",
       {{"command", Json::array({"/bin/sh", "-c",
                                 "echo \"$(date +%s%N) $DPCM_POD $DPCM_ROLE $DPCM_EPOCH $PPID\" >> "
                                 "\"$DIR/roles\""})},
        {"env", env}}}};
  return domain;
}

TEST_CASE("agent: command checks and role hooks run in the member, and a failover demotes first") {
  Scenario s;
  const std::string dir = TestEnv::Dir() + "/agent-e2e-" + s.ns;
  std::filesystem::create_directories(dir);
  s.Create(AgentDomain("ag", dir));
  const std::string dc = s.WaitRunning("ag", 2);
  const std::string pc = dc == "ag-0" ? "ag-1" : "ag-0";
  const int64_t epoch = s.Epoch("ag");

  // Where the commands ran: their parent is the member's dpcm-agent container process, not
  // the operator.
  auto& nodes = s.env.nodes();
  for (const std::string& pod : {dc, pc}) {
    CAPTURE(pod);
    auto agent_pid = nodes.PodPid(s.ns, pod, "dpcm-agent");
    REQUIRE_MESSAGE(agent_pid.ok(), agent_pid.status().ToString());
    CHECK(*agent_pid != s.env.OperatorPid());
    CHECK(Eventually([&] {
      std::ifstream in(dir + "/" + pod + ".health-parent");
      pid_t parent = 0;
      return in >> parent && parent == *agent_pid;
    }));
    CHECK(Eventually([&] {
      for (const auto& line : ReadRoles(dir + "/roles")) {
        if (line.pod == pod && line.parent == *agent_pid) return true;
      }
      return false;
    }));
  }
  const Json pod_statuses = s.Pod(dc).value("/status/containerStatuses"_json_pointer, Json());
  REQUIRE(pod_statuses.size() == 2);
  CHECK(pod_statuses[1].value("name", "") == "dpcm-agent");

  // The application's role API: the DC's agent says dc at the domain's epoch.
  const std::string dc_ip = s.Pod(dc).value("/status/podIP"_json_pointer, "");
  const std::string pc_ip = s.Pod(pc).value("/status/podIP"_json_pointer, "");
  CHECK(Eventually([&] {
    const Json role = testing::RoleApiGet(dc_ip, "/role", 2);
    return role.is_object() && role.value("role", "") == "dc" && role.value("epoch", -1) == epoch;
  }));
  const Json pc_role = testing::RoleApiGet(pc_ip, "/role", 2);
  REQUIRE(pc_role.is_object());
  CHECK(pc_role.value("role", "") == "pc");
  CHECK(pc_role.value("pod", "") == pc);
  CHECK(pc_role.value("domain", "") == "ag");

  // The PC's application long-polls; the DC's health command starts failing.
  const auto version = pc_role.value("version", 0);
  auto long_poll = std::async(std::launch::async, [&] {
    Json role =
        testing::RoleApiGet(pc_ip, "/role?after=" + std::to_string(version) + "&wait=30s", 30);
    return std::make_pair(role, WallClock::now());
  });
  const auto failed = WallClock::now();
  std::ofstream(dir + "/" + dc + ".unhealthy") << "1\n";
  auto change = s.watcher.WaitForNewDc("ag", dc, 30s);
  REQUIRE_MESSAGE(change.has_value(), "no failover after the DC's health command failed");
  CHECK(change->dc == pc);
  const auto [polled, answered] = long_poll.get();
  REQUIRE(polled.is_object());
  CHECK(polled.value("role", "") == "dc");
  const int64_t new_epoch = polled.value("epoch", int64_t{-1});
  CHECK(new_epoch > epoch);
  MESSAGE("health command failing -> new DC labeled after "
          << Millis(change->seen - failed) << " ms; the app's long-poll answered "
          << Millis(answered - change->seen) << " ms after the label");
  std::filesystem::remove(dir + "/" + dc + ".unhealthy");

  // Demote before promote: the old DC's ensure-passive at the new epoch finished before
  // the new DC's ensure-active began; each pod's epochs never go back.
  std::vector<RoleLine> roles;
  CHECK(Eventually([&] {
    roles = ReadRoles(dir + "/roles");
    bool demoted = false;
    bool promoted = false;
    for (const auto& line : roles) {
      demoted = demoted || (line.pod == dc && line.role == "pc" && line.epoch == new_epoch);
      promoted = promoted || (line.pod == pc && line.role == "dc" && line.epoch == new_epoch);
    }
    return demoted && promoted;
  }));
  long long demoted_at = 0;
  long long promoted_at = 0;
  std::map<std::string, int64_t> last_epoch;
  for (const auto& line : roles) {
    if (line.pod == dc && line.role == "pc" && line.epoch == new_epoch && demoted_at == 0) {
      demoted_at = line.nanos;
    }
    if (line.pod == pc && line.role == "dc" && line.epoch == new_epoch && promoted_at == 0) {
      promoted_at = line.nanos;
    }
    CHECK_MESSAGE(line.epoch >= last_epoch[line.pod], line.pod << " went back in epoch");
    last_epoch[line.pod] = line.epoch;
  }
  CHECK(demoted_at > 0);
  CHECK(demoted_at < promoted_at);

  // The sample app took its new role from the agent's role API, and the old DC's app its
  // demotion.
  auto took = [&](const std::string& pod, const std::string& role) {
    std::istringstream log(s.env.PodLog(s.ns, pod));
    for (std::string line; std::getline(log, line);) {
      const Json entry = Json::parse(line, nullptr, false);
      if (entry.is_object() && entry.value("event", "") == "role" &&
          entry.value("source", "") == "agent" && entry.value("role", "") == role &&
          entry.value("epoch", int64_t{-1}) == new_epoch) {
        return true;
      }
    }
    return false;
  };
  CHECK(Eventually([&] { return took(pc, "dc"); }));
  CHECK(Eventually([&] { return took(dc, "pc"); }));
  s.WaitRunning("ag", 2);
  std::filesystem::remove_all(dir);
}

TEST_CASE("agent: the DC's agent crashing is not its application's death: no failover") {
  // Before the fix, the agent's terminated container counted as the DC's death (the fast
  // path) and its restart as a new incarnation: a second DC was promoted while the first
  // application still ran and believed it was DC.
  Scenario s;
  const std::string dir = TestEnv::Dir() + "/agent-e2e-" + s.ns;
  std::filesystem::create_directories(dir);
  Json domain = AgentDomain("ac", dir);
  // Slow enough that the checks the dead agent cannot answer do not reach the threshold
  // while it restarts (that slow path is the designed answer to an agent that stays down).
  domain["spec"]["health"]["periodSeconds"] = 5;
  domain["spec"]["health"]["failureThreshold"] = 3;
  s.Create(domain);
  const std::string dc = s.WaitRunning("ac", 2);
  const int64_t epoch = s.Domain("ac").value("/status/epoch"_json_pointer, int64_t{0});
  const auto agent_restarts = [&] {
    for (const auto& c : s.Pod(dc).value("/status/containerStatuses"_json_pointer, Json())) {
      if (c.value("name", "") == "dpcm-agent") return c.value("restartCount", 0);
    }
    return -1;
  };
  REQUIRE(agent_restarts() == 0);
  REQUIRE(s.env.nodes().KillPodProcess(s.ns, dc, "dpcm-agent").ok());
  // The kubelet restarts the agent; its pod is Ready again.
  REQUIRE(Eventually([&] { return agent_restarts() == 1; }, 30s));
  const std::string dc_ip = s.Pod(dc).value("/status/podIP"_json_pointer, "");
  REQUIRE(Eventually([&] {
    const Json pod = s.Pod(dc);
    for (const auto& c : pod.value("/status/conditions"_json_pointer, Json::array())) {
      if (c.value("type", "") == "Ready") return c.value("status", "") == "True";
    }
    return false;
  }));
  // The restarted agent is told the role again (it starts without one) and the domain
  // stays on the same DC at the same epoch: no failover, no Promoted Event.
  CHECK(Eventually([&] {
    const Json role = testing::RoleApiGet(dc_ip, "/role", 2);
    return role.is_object() && role.value("role", "") == "dc" && role.value("epoch", -1) == epoch;
  }));
  const Json after = s.Domain("ac");
  CHECK(after.value("/status/activePod"_json_pointer, "") == dc);
  CHECK(after.value("/status/epoch"_json_pointer, int64_t{0}) == epoch);
  CHECK(after.value("/status/failovers"_json_pointer, -1) == 0);
  CHECK(s.watcher.CurrentDc("ac") == dc);
  CHECK(s.Events("ac", "FailingOver").empty());
  std::filesystem::remove_all(dir);
}

TEST_CASE("agent: the new DC's application learns its role through GET /role within ms") {
  // Figures, not a timed test: label change (seen by the watcher) -> long-poll answer.
  Scenario s;
  const std::string dir = TestEnv::Dir() + "/agent-e2e-" + s.ns;
  std::filesystem::create_directories(dir);
  s.Create(AgentDomain("al", dir));
  std::vector<long long> latencies;
  for (int trial = 0; trial < 5; ++trial) {
    const std::string dc = s.WaitRunning("al", 2);
    const std::string pc = dc == "al-0" ? "al-1" : "al-0";
    const std::string pc_ip = s.Pod(pc).value("/status/podIP"_json_pointer, "");
    Json before;
    REQUIRE(Eventually([&] {
      before = testing::RoleApiGet(pc_ip, "/role", 2);
      return before.is_object() && before.value("role", "") == "pc";
    }));
    auto long_poll = std::async(std::launch::async, [&] {
      Json role = testing::RoleApiGet(
          pc_ip, "/role?after=" + std::to_string(before.value("version", 0)) + "&wait=30s", 30);
      return std::make_pair(role, WallClock::now());
    });
    REQUIRE(s.env.KillPodProcess(s.ns, dc).ok());  // the application, not its agent
    auto change = s.watcher.WaitForNewDc("al", dc, 30s);
    REQUIRE(change.has_value());
    const auto [role, answered] = long_poll.get();
    REQUIRE(role.is_object());
    CHECK(role.value("role", "") == "dc");
    latencies.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(answered - change->seen).count());
  }
  std::sort(latencies.begin(), latencies.end());
  MESSAGE("label -> GET /role long-poll answer over "
          << latencies.size() << " failovers: p50 " << latencies[latencies.size() / 2] / 1000.0
          << " ms, max " << latencies.back() / 1000.0 << " ms");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dpcm
