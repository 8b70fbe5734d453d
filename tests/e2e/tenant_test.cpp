// A user who may only write ProcessDomains in one namespace cannot make the operator run a
// program or read anything of the operator back (the escalation of issue 11, tried for real).
#include <doctest/doctest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/e2e_scenario.h"
#include "tests/support/temp_dir.h"

namespace dpcm {
namespace {

using client::Json;
using testing::OperatorEnv;
using testing::TempDir;
using testing::TestEnv;
using testing::e2e::Eventually;
using testing::e2e::LabelSelector;
using testing::e2e::Scenario;

// The static identity behind TestEnv's "kubeconfig-restricted": no rights until bound.
constexpr const char* kTenant = "system:serviceaccount:default:restricted";

const client::ResourceRef kRoles{"rbac.authorization.k8s.io", "v1", "roles"};
const client::ResourceRef kRoleBindings{"rbac.authorization.k8s.io", "v1", "rolebindings"};

// Lets the tenant manage ProcessDomains (and read their Events) in `ns`, nothing else.
void GrantDomainWriter(client::ApiClient& api, const std::string& ns) {
  const Json role = {
      {"apiVersion", "rbac.authorization.k8s.io/v1"},
      {"kind", "Role"},
      {"metadata", {{"name", "domain-writer"}}},
      {"rules",
       Json::array(
           {{{"apiGroups", {"dpcm.io"}},
             {"resources", {"processdomains"}},
             {"verbs", {"get", "list", "watch", "create", "update", "delete"}}},
            {{"apiGroups", {""}}, {"resources", {"events"}}, {"verbs", {"get", "list"}}}})}};
  const Json binding = {
      {"apiVersion", "rbac.authorization.k8s.io/v1"},
      {"kind", "RoleBinding"},
      {"metadata", {{"name", "domain-writer"}}},
      {"roleRef",
       {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "domain-writer"}}},
      {"subjects", Json::array({{{"kind", "User"}, {"name", kTenant}}})}};
  auto created_role = api.Create(kRoles, ns, role);
  REQUIRE_MESSAGE(created_role.ok(), created_role.status().ToString());
  auto created_binding = api.Create(kRoleBindings, ns, binding);
  REQUIRE_MESSAGE(created_binding.ok(), created_binding.status().ToString());
}

// A domain whose `field` ("health" or "roleHooks") is a command that would leave `marker`
// behind and print the identity it ran as.
Json CommandDomain(const std::string& name, const std::string& field, const std::string& marker) {
  Json domain = OperatorEnv::SampleDomain(name, 2);
  const Json command = {
      {"command", Json::array({"/bin/sh", "-c", "touch " + marker + "; id; echo pwned"})},
      {"env", Json::array({{{"name", "LD_PRELOAD"}, {"value", marker + ".so"}}})}};
  domain["spec"][field] = {{"command", command}};
  return domain;
}

TEST_CASE("a namespace user's command plugins and hooks are refused, nothing runs, nothing leaks") {
  Scenario s;
  GrantDomainWriter(s.api, s.ns);
  auto tenant = TestEnv::Client("kubeconfig-restricted");
  // The identity really is namespace-scoped: it may not even list pods here.
  auto pods = tenant->List(client::resources::Pods(), s.ns, client::ListOptions{});
  REQUIRE_FALSE(pods.ok());
  CHECK(pods.status().message().find("forbidden") != std::string::npos);

  TempDir dir;
  const std::string health_marker = (dir.path() / "health-ran").string();
  const std::string hook_marker = (dir.path() / "hook-ran").string();
  struct Attempt {
    std::string domain;
    std::string field;
    std::string marker;
  };
  const std::vector<Attempt> attempts = {{"evil-check", "health", health_marker},
                                         {"evil-hook", "roleHooks", hook_marker}};
  for (const auto& a : attempts) {
    auto created = tenant->Create(client::resources::ProcessDomains(), s.ns,
                                  CommandDomain(a.domain, a.field, a.marker));
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  }
  // A domain of the same tenant without commands works as usual beside them.
  auto fine = tenant->Create(client::resources::ProcessDomains(), s.ns,
                             OperatorEnv::SampleDomain("fine", 2));
  REQUIRE_MESSAGE(fine.ok(), fine.status().ToString());

  for (const auto& a : attempts) {
    CAPTURE(a.domain);
    const std::string field = "spec." + a.field + ".command";
    // The tenant reads the refusal in the status, naming the field...
    REQUIRE(Eventually([&] {
      const Json degraded = s.Condition(a.domain, "Degraded");
      return degraded.is_object() && degraded.value("status", "") == "True" &&
             degraded.value("reason", "") == "InvalidSpec" &&
             degraded.value("message", "").find(field) != std::string::npos;
    }));
    // ...and in an Event it may read.
    client::ListOptions options;
    options.field_selector = "involvedObject.name=" + a.domain + ",reason=InvalidSpec";
    REQUIRE(Eventually([&] {
      auto events = tenant->List(client::resources::Events(), s.ns, options);
      return events.ok() && !(*events)["items"].empty();
    }));
    // The domain got no members: nothing was started for a spec that was refused.
    auto members = s.api.List(client::resources::Pods(), s.ns,
                              LabelSelector(std::string("dpcm.io/domain=") + a.domain));
    REQUIRE(members.ok());
    CHECK((*members)["items"].empty());
  }
  // The good domain elected its DC: the operator went on working after the refusals.
  s.WaitRunning("fine", 2);

  // Nothing ran, and nothing of the operator reached what the tenant can read.
  CHECK_FALSE(std::filesystem::exists(health_marker));
  CHECK_FALSE(std::filesystem::exists(hook_marker));
  for (const auto& a : attempts) {
    const std::string status = s.Domain(a.domain).value("status", Json::object()).dump();
    CHECK(status.find("uid=") == std::string::npos);
    CHECK(status.find("pwned") == std::string::npos);
    for (const auto& event : s.Events(a.domain, "InvalidSpec")) {
      CHECK(event.value("message", "").find("uid=") == std::string::npos);
    }
  }
}

}  // namespace
}  // namespace dpcm
