// dpcm-agent's decisions: the role board, role hook ordering and idempotence, health replies,
// the role long-poll and the flags.
#include "pkg/agent/agent.h"

#include <doctest/doctest.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <thread>

#include "cmd/dpcm-agent/options.h"
#include "pkg/agent/role_board.h"

namespace dpcm::agent {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;

class FakeChecker final : public health::Checker {
 public:
  explicit FakeChecker(health::CheckResult result) : result_(std::move(result)) {}
  health::CheckResult Check(const health::ProbeSpec& /*spec*/,
                            const health::Target& target) const override {
    last_pod = target.pod;
    return result_;
  }
  mutable std::string last_pod;

 private:
  health::CheckResult result_;
};

AgentConfig Config(bool hook) {
  AgentConfig config;
  config.ns = "ns";
  config.domain = "d";
  config.pod = "d-0";
  config.pod_ip = "10.0.0.1";
  if (hook) {
    rolehook::HookSpec spec;
    spec.kind = rolehook::HookKind::kCommand;
    spec.argv = {"/hook"};
    config.role_hook = spec;
  }
  return config;
}

std::string Body(const std::string& role, int64_t epoch, const std::string& pod = "d-0") {
  return Json{{"domain", "d"}, {"pod", pod}, {"role", role}, {"epoch", epoch}}.dump();
}

TEST_CASE("agent: Judge takes newer epochs and refuses older ones") {
  RoleRecord current;
  CHECK(Judge(current, "pc", 0) == Verdict::kChanged);
  current.role = "dc";
  current.epoch = 4;
  CHECK(Judge(current, "dc", 4) == Verdict::kUnchanged);
  CHECK(Judge(current, "pc", 4) == Verdict::kChanged);  // a demotion is never refused
  CHECK(Judge(current, "pc", 5) == Verdict::kChanged);
  CHECK(Judge(current, "dc", 3) == Verdict::kStale);
  CHECK(Judge(current, "pc", 3) == Verdict::kStale);
  CHECK(Judge(current, "leader", 9) == Verdict::kInvalid);
  CHECK(Judge(current, "dc", -1) == Verdict::kInvalid);
}

TEST_CASE("agent: a long-poll returns within milliseconds of a change, else at its timeout") {
  RoleBoard board("d", "d-0");
  CHECK(ToJson(board.Current())["role"] == "unknown");
  std::atomic<bool> done{false};
  RoleRecord seen;
  std::thread waiter([&] {
    seen = board.Wait(0, 10s);
    done = true;
  });
  const auto started = std::chrono::steady_clock::now();
  CHECK(board.Apply("dc", 2, "t1") == Verdict::kChanged);
  waiter.join();
  CHECK(std::chrono::steady_clock::now() - started < 2s);
  CHECK(seen.role == "dc");
  CHECK(seen.epoch == 2);
  CHECK(seen.version == 1);
  CHECK(board.Wait(1, 10ms).version == 1);  // nothing newer: the timeout, current record
  // A client that holds a version from an earlier run of the agent (it restarted and
  // counts from 0 again) is answered at once, not after its whole wait.
  const auto asked = std::chrono::steady_clock::now();
  CHECK(board.Wait(7, 10s).version == 1);
  CHECK(std::chrono::steady_clock::now() - asked < 2s);
  // Stopping: a waiting long-poll answers now, a later one at once (SIGTERM must not wait
  // for the longest long-poll).
  const auto closing = std::chrono::steady_clock::now();
  std::thread waiting([&] { CHECK(board.Wait(1, 30s).role == "dc"); });
  board.Close();
  waiting.join();
  CHECK(board.Wait(1, 30s).version == 1);
  CHECK(std::chrono::steady_clock::now() - closing < 2s);
  CHECK(board.Apply("dc", 2, "t2") == Verdict::kUnchanged);
  CHECK(board.Current().since == "t1");
}

TEST_CASE("agent: role hooks run the command, demote at once, promote after success") {
  std::vector<std::string> ran;
  bool fail = false;
  Agent* self = nullptr;
  std::string role_seen_during_hook;
  Agent agent(
      Config(true), nullptr,
      [&](const rolehook::HookSpec& spec, const rolehook::Assignment& a) {
        CHECK(spec.argv == std::vector<std::string>{"/hook"});
        CHECK(a.pod_ip == "10.0.0.1");
        ran.push_back(a.role + "@" + std::to_string(a.epoch));
        role_seen_during_hook = self->board().Current().role;
        return fail ? Status::Transport("exit status 1: boom") : Status::Ok();
      },
      [] { return std::string("now"); });
  self = &agent;

  fail = true;
  Reply reply = agent.RoleHook(Body("dc", 1));
  CHECK(reply.status == 503);
  CHECK(reply.body.find("boom") != std::string::npos);
  CHECK(role_seen_during_hook == "");           // not dc before ensure-active succeeded
  CHECK(agent.board().Current().role.empty());  // still not dc

  fail = false;
  CHECK(agent.RoleHook(Body("dc", 1)).status == 200);
  CHECK(agent.board().Current().role == "dc");
  CHECK(agent.RoleHook(Body("dc", 1)).status == 200);  // acknowledged: not run again
  CHECK(ran == std::vector<std::string>{"dc@1", "dc@1"});

  CHECK(agent.RoleHook(Body("pc", 2)).status == 200);
  CHECK(role_seen_during_hook == "pc");  // the application heard "pc" before the command ran
  CHECK(agent.board().Current().epoch == 2);

  reply = agent.RoleHook(Body("dc", 1));
  CHECK(reply.status == 409);
  CHECK(ran.size() == 3);  // a stale promotion runs nothing
  CHECK(agent.RoleHook(Body("dc", 3, "d-1")).status == 400);
  CHECK(agent.RoleHook("{").status == 400);
  CHECK(agent.RoleHook(Body("boss", 3)).status == 400);
  CHECK(ran.size() == 3);
}

TEST_CASE("agent: without a hook command roles are only recorded") {
  Agent agent(
      Config(false), nullptr,
      [](const rolehook::HookSpec&, const rolehook::Assignment&) {
        FAIL("nothing may run");
        return Status::Ok();
      },
      [] { return std::string("now"); });
  CHECK(agent.RoleHook(Body("pc", 0)).status == 200);
  const Reply role = agent.GetRole(std::nullopt, std::nullopt);
  CHECK(role.content_type == "application/json");
  const Json record = Json::parse(role.body);
  CHECK(record["role"] == "pc");
  CHECK(record["epoch"] == 0);
  CHECK(record["domain"] == "d");
  CHECK(record["pod"] == "d-0");
  CHECK(record["since"] == "now");
  CHECK(agent.GetRole("1", "5ms").status == 200);
  CHECK(agent.GetRole("x", std::nullopt).status == 400);
  CHECK(agent.GetRole("0", "soon").status == 400);
}

TEST_CASE("agent: /healthz answers 200 or 503 with the check's reason") {
  AgentConfig config = Config(false);
  health::ProbeSpec spec;
  spec.kind = health::ProbeKind::kCommand;
  spec.command.argv = {"/check"};
  config.health = spec;
  auto failing = std::make_unique<FakeChecker>(
      health::CheckResult{health::Outcome::kFailure, "exit status 1: disk full"});
  FakeChecker* checker = failing.get();
  Agent agent(config, std::move(failing), nullptr, [] { return std::string(); });
  Reply reply = agent.Healthz();
  CHECK(reply.status == 503);
  CHECK(reply.body == "failure: exit status 1: disk full\n");
  CHECK(checker->last_pod == "d-0");

  Agent healthy(config,
                std::make_unique<FakeChecker>(health::CheckResult{health::Outcome::kSuccess, ""}),
                nullptr, [] { return std::string(); });
  CHECK(healthy.Healthz().status == 200);
  Agent unconfigured(Config(false), nullptr, nullptr, [] { return std::string(); });
  CHECK(unconfigured.Healthz().status == 200);
}

TEST_CASE("agent: commands and waits parse, anything else is refused") {
  auto command =
      ParseCommandJson(R"({"command":["/bin/check","-v"],"env":[{"name":"A","value":"1"}]})");
  REQUIRE(command.ok());
  CHECK(command->argv == std::vector<std::string>{"/bin/check", "-v"});
  CHECK(command->env.size() == 1);
  CHECK_FALSE(ParseCommandJson(R"({"command":[]})").ok());
  CHECK_FALSE(ParseCommandJson(R"({"command":[1]})").ok());
  CHECK_FALSE(ParseCommandJson(R"({"command":["x"],"env":[{"name":"A=B"}]})").ok());
  CHECK_FALSE(ParseCommandJson("not json").ok());
  CHECK(ParseWait("30s") == 30s);
  CHECK(ParseWait("250ms") == 250ms);
  CHECK(ParseWait("2m") == 120s);
  CHECK(ParseWait("7") == 7s);
  CHECK_FALSE(ParseWait("-1s").has_value());
  CHECK_FALSE(ParseWait("s").has_value());
}

TEST_CASE("agent: flags, with defaults from the pod's environment") {
  const std::map<std::string, std::string> env = {
      {"POD_NAME", "d-0"},
      {"POD_NAMESPACE", "ns"},
      {"POD_IP", "10.0.0.1"},
      {"DPCM_DOMAIN", "d"},
      {"DPCM_AGENT_HEALTH_COMMAND", R"({"command":["/check"]})"}};
  auto getenv = [&](const std::string& name) -> std::optional<std::string> {
    const auto it = env.find(name);
    return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
  };
  const char* argv[] = {"dpcm-agent", "--port=9000", "--role-hook-command",
                        R"({"command":["/hook"]})", "--role-hook-timeout-ms=500"};
  auto options = agent_main::ParseOptions(5, argv, getenv);
  REQUIRE_MESSAGE(options.ok(), options.status().ToString());
  CHECK(options->port == 9000);
  CHECK(options->bind_address == "10.0.0.1");
  CHECK(options->role_host == "127.0.0.1");
  CHECK(options->role_port == 8720);
  CHECK(options->config.pod == "d-0");
  REQUIRE(options->config.health.has_value());
  CHECK(options->config.health->command.argv == std::vector<std::string>{"/check"});
  REQUIRE(options->config.role_hook.has_value());
  CHECK(options->config.role_hook->timeout == 500ms);

  const char* bad_port[] = {"dpcm-agent", "--port=0"};
  CHECK_FALSE(agent_main::ParseOptions(2, bad_port, getenv).ok());
  const char* bad_command[] = {"dpcm-agent", "--health-command={}"};
  CHECK_FALSE(agent_main::ParseOptions(2, bad_command, getenv).ok());
  const char* no_role_api[] = {"dpcm-agent", "--role-bind-address=0"};
  CHECK(agent_main::ParseOptions(2, no_role_api, getenv)->role_host.empty());
  // IPv6: brackets are dropped; without a pod IP the operator-facing server takes every
  // interface of both families ("", which listen::Bind makes a dual-stack [::]).
  const char* v6[] = {"dpcm-agent", "--bind-address=[fd00::5]", "--role-bind-address=[::1]:8720"};
  auto v6_options = agent_main::ParseOptions(3, v6, getenv);
  REQUIRE(v6_options.ok());
  CHECK(v6_options->bind_address == "fd00::5");
  CHECK(v6_options->role_host == "::1");
  CHECK(v6_options->role_port == 8720);
  auto no_pod_ip = [&](const std::string& name) {
    return name == "POD_IP" ? std::nullopt : getenv(name);
  };
  const char* plain[] = {"dpcm-agent"};
  CHECK(agent_main::ParseOptions(1, plain, no_pod_ip)->bind_address.empty());
  const char* none[] = {"dpcm-agent"};
  CHECK_FALSE(agent_main::ParseOptions(1, none, [](const std::string&) {
                return std::optional<std::string>();
              }).ok());  // no domain, no pod
}

}  // namespace
}  // namespace dpcm::agent
