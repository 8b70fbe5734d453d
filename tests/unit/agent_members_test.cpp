// The agent's members API: status.members read, joins/leaves/changes diffed, the board's
// version, change log and long-poll, and the RBAC the operator generates for the agents.
#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "pkg/agent/agent.h"
#include "pkg/agent/member_board.h"
#include "pkg/domain/agent_access.h"
#include "pkg/domain/owned_objects.h"
#include "pkg/domain/spec.h"

namespace dpcm::agent {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

MemberInfo M(std::string name, std::string role = "pc", bool ready = true, bool healthy = true) {
  return {std::move(name), std::move(role), ready, healthy};
}

TEST_CASE("members: read from status.members, sorted, bad entries skipped") {
  const json domain = {{"status",
                        {{"members", json::array({{{"name", "d-1"},
                                                   {"role", "dc"},
                                                   {"ready", true},
                                                   {"healthy", true},
                                                   {"restarts", 2}},
                                                  {{"name", "d-0"}, {"ready", false}},
                                                  {{"role", "pc"}},      // no name
                                                  "garbage",             // not an object
                                                  {{"name", ""}}})}}}};  // empty name
  const auto members = MembersFromDomain(domain);
  REQUIRE(members.size() == 2);
  CHECK(members[0] == M("d-0", "pc", false, false));
  CHECK(members[1] == M("d-1", "dc", true, true));
  CHECK(MembersFromDomain(json::object()).empty());
  CHECK(MembersFromDomain(json{{"status", {{"members", "x"}}}}).empty());
  CHECK(MembersFromDomain(json()).empty());
}

TEST_CASE("members: the diff names who joined, who left and whose role or health changed") {
  const std::vector<MemberInfo> before = {M("a", "dc"), M("b"), M("c")};
  const std::vector<MemberInfo> after = {M("a", "pc"), M("c"), M("d", "pc", false, true)};
  const auto changes = DiffMembers(before, after);
  REQUIRE(changes.size() == 3);
  CHECK(changes[0].kind == ChangeKind::kChanged);
  CHECK(changes[0].member == M("a", "pc"));
  CHECK(changes[1].kind == ChangeKind::kLeft);
  CHECK(changes[1].member.name == "b");
  CHECK(changes[2].kind == ChangeKind::kJoined);
  CHECK(changes[2].member == M("d", "pc", false, true));

  CHECK(DiffMembers(before, before).empty());
  CHECK(DiffMembers({}, {}).empty());
  const auto all_joined = DiffMembers({}, before);
  REQUIRE(all_joined.size() == 3);
  for (const auto& change : all_joined) CHECK(change.kind == ChangeKind::kJoined);
  const auto all_left = DiffMembers(before, {});
  REQUIRE(all_left.size() == 3);
  for (const auto& change : all_left) CHECK(change.kind == ChangeKind::kLeft);
  // Health alone is a change (what an application routing to healthy peers needs).
  const auto unhealthy = DiffMembers({M("a")}, {M("a", "pc", true, false)});
  REQUIRE(unhealthy.size() == 1);
  CHECK(unhealthy[0].kind == ChangeKind::kChanged);
  CHECK(std::string(ChangeKindName(ChangeKind::kLeft)) == "left");
}

TEST_CASE(
    "members: the board counts versions, keeps the changes after a version, and says why "
    "it is not in sync") {
  MemberBoard board("d", /*max_changes=*/3);
  MembersView view = board.Current();
  CHECK(view.version == 0);
  CHECK_FALSE(view.sync.synced);

  board.Apply({M("d-0", "dc"), M("d-1")}, "d-0", 1);
  view = board.Current();
  CHECK(view.version == 1);
  CHECK(view.sync.synced);
  CHECK(view.active_pod == "d-0");
  CHECK(view.epoch == 1);
  REQUIRE(view.changes.size() == 2);
  CHECK(view.changes[0].version == 1);

  board.Apply({M("d-0", "dc"), M("d-1")}, "d-0", 1);  // nothing new: no version
  CHECK(board.Current().version == 1);

  board.Apply({M("d-0", "dc"), M("d-1"), M("d-2", "pc", false, false)}, "d-0", 1);  // scale up
  view = board.Current(1);
  CHECK(view.version == 2);
  REQUIRE(view.changes.size() == 1);
  CHECK(view.changes[0].kind == ChangeKind::kJoined);
  CHECK(view.changes[0].member.name == "d-2");
  CHECK(view.changes_complete);

  board.Apply({M("d-0", "dc"), M("d-1")}, "d-0", 1);  // scale down
  view = board.Current(2);
  REQUIRE(view.changes.size() == 1);
  CHECK(view.changes[0].kind == ChangeKind::kLeft);
  CHECK(view.changes[0].version == 3);
  // Only three changes are kept: a caller at version 0 missed some and is told to re-read.
  CHECK_FALSE(board.Current(0).changes_complete);
  CHECK(board.Current(1).changes_complete);

  board.SetError("cannot follow processdomain ns/d: Forbidden: no");
  view = board.Current(3);
  CHECK(view.version == 4);
  CHECK_FALSE(view.sync.synced);
  CHECK(view.sync.error.find("Forbidden") != std::string::npos);
  CHECK(view.members.size() == 2);  // the last seen, marked not in sync
  board.SetError("cannot follow processdomain ns/d: Forbidden: no");  // same reason: no version
  CHECK(board.Current().version == 4);
  board.Resume();  // the watch reopened, nothing changed meanwhile: in sync, a new version
  CHECK(board.Current().version == 5);
  CHECK(board.Current().sync.synced);
  board.Resume();  // already in sync: nothing
  CHECK(board.Current().version == 5);

  board.Clear("processdomain ns/d was deleted");
  view = board.Current(5);
  CHECK(view.members.empty());
  CHECK(view.changes.size() == 2);
  CHECK_FALSE(view.sync.synced);
  board.Resume();  // the domain is gone: reconnecting does not make it in sync
  CHECK_FALSE(board.Current().sync.synced);
  const json body = ToJson(view);
  CHECK(body["domain"] == "d");
  CHECK(body["changes"][0]["change"] == "left");
  CHECK(body["error"] == "processdomain ns/d was deleted");
}

TEST_CASE("members: a long-poll returns at the next change, or after its wait") {
  MemberBoard board("d");
  const auto start = std::chrono::steady_clock::now();
  CHECK(board.Wait(0, 30ms).version == 0);
  CHECK(std::chrono::steady_clock::now() - start >= 30ms);

  std::thread writer([&] {
    std::this_thread::sleep_for(20ms);
    board.Apply({M("d-0")}, "", -1);
  });
  const MembersView view = board.Wait(0, 10s);
  writer.join();
  CHECK(view.version == 1);
  REQUIRE(view.changes.size() == 1);
  CHECK(view.changes[0].kind == ChangeKind::kJoined);
}

TEST_CASE("members: GET /members parameters are checked as GET /role's are") {
  CHECK_FALSE(ParseLongPoll(std::nullopt, std::nullopt)->has_value());
  const auto poll = ParseLongPoll("7", "500ms");
  REQUIRE(poll.ok());
  REQUIRE(poll->has_value());
  CHECK((*poll)->after == 7);
  CHECK((*poll)->timeout == 500ms);
  CHECK((*ParseLongPoll("1", "10m"))->timeout == kMaxRoleWait);
  CHECK(ParseLongPoll("-1", std::nullopt).status().message().find("after") != std::string::npos);
  CHECK(ParseLongPoll("1", "soon").status().message().find("wait") != std::string::npos);

  AgentConfig config;
  config.ns = "ns";
  config.domain = "d";
  config.pod = "d-0";
  Agent agent(config, nullptr, nullptr, [] { return std::string("now"); });
  agent.members().SetError("no API identity: not running in a cluster");
  const Reply reply = agent.GetMembers(std::nullopt, std::nullopt);
  CHECK(reply.status == 200);
  const json body = json::parse(reply.body);
  CHECK(body["synced"] == false);
  CHECK(body["error"] == "no API identity: not running in a cluster");
  CHECK(agent.GetMembers("x", std::nullopt).status == 400);
}

}  // namespace
}  // namespace dpcm::agent

namespace dpcm::domain {
namespace {

using nlohmann::json;

json AgentDomain() {
  return {{"apiVersion", "dpcm.io/v1alpha1"},
          {"kind", "ProcessDomain"},
          {"metadata", {{"name", "web"}, {"namespace", "shop"}, {"uid", "uid-web"}}},
          {"spec",
           {{"replicas", 1},
            {"agent", {{"enabled", true}}},
            {"template",
             {{"spec", {{"containers", json::array({{{"name", "app"}, {"image", "app:1"}}})}}}}}}}};
}

TEST_CASE("agent RBAC: one domain's Role reads only that domain and its Lease") {
  const json domain = AgentDomain();
  const json role = BuildAgentRole(domain);
  CHECK(role["kind"] == "Role");
  CHECK(role["metadata"]["name"] == "web-dpcm-agent");
  CHECK(role["metadata"]["ownerReferences"][0]["uid"] == "uid-web");
  REQUIRE(role["rules"].size() == 2);
  for (const json& rule : role["rules"]) {
    CHECK(rule["resourceNames"] == json::array({"web"}));  // nothing of other domains
    for (const json& verb : rule["verbs"]) {
      CHECK(verb != "create");
      CHECK(verb != "delete");
      CHECK(verb != "patch");
      CHECK(verb != "*");
    }
  }
  CHECK(role["rules"][0]["resources"] == json::array({"processdomains"}));
  CHECK(role["rules"][0]["verbs"] == json::array({"get", "list", "watch"}));
  CHECK(role["rules"][1]["resources"] == json::array({"leases"}));
  CHECK(role["rules"][1]["verbs"] == json::array({"get", "list", "watch", "update"}));

  const json binding = BuildAgentRoleBinding(domain, "");
  CHECK(binding["roleRef"]["name"] == "web-dpcm-agent");
  REQUIRE(binding["subjects"].size() == 1);
  CHECK(binding["subjects"][0]["name"] == "web-dpcm-agent");
  CHECK(binding["subjects"][0]["namespace"] == "shop");
  // A template with its own account: the agent runs as it, so it is bound too.
  CHECK(BuildAgentRoleBinding(domain, "app-sa")["subjects"].size() == 2);
  CHECK(BuildAgentServiceAccount(domain)["metadata"]["name"] == "web-dpcm-agent");
}

TEST_CASE("agent RBAC: member pods run as the domain's agent account, or the template's own") {
  json domain = AgentDomain();
  auto spec = ParseSpec(domain, nullptr);
  REQUIRE(spec.ok());
  CHECK(BuildPod(domain, *spec, 0, {})["spec"]["serviceAccountName"] == "web-dpcm-agent");
  domain["spec"]["template"]["spec"]["serviceAccountName"] = "app-sa";
  spec = ParseSpec(domain, nullptr);
  REQUIRE(spec.ok());
  CHECK(BuildPod(domain, *spec, 0, {})["spec"]["serviceAccountName"] == "app-sa");
  // Without the agent, the pod keeps whatever the template says (nothing is added).
  domain["spec"].erase("agent");
  domain["spec"]["template"]["spec"].erase("serviceAccountName");
  spec = ParseSpec(domain, nullptr);
  REQUIRE(spec.ok());
  CHECK_FALSE(BuildPod(domain, *spec, 0, {})["spec"].contains("serviceAccountName"));
}

}  // namespace
}  // namespace dpcm::domain
