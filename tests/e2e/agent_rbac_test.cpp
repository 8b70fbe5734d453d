// dpcm-agent's identity end to end, with the real API server's RBAC: the operator generates a
// ServiceAccount, Role and RoleBinding per domain; the agent's token reads its own domain and
// Lease and nothing else; the agent follows its domain's members (GET /members); the objects
// go with the domain; and the operator's shipped ClusterRole may grant them (no escalation).
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pkg/cache/store.h"
#include "pkg/domain/agent_access.h"
#include "pkg/domain/children.h"
#include "pkg/domain/spec.h"
#include "pkg/restconfig/rest_config.h"
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

const client::ResourceRef kServiceAccounts = domain::ServiceAccountsResource();
const client::ResourceRef kRoles = domain::RolesResource();
const client::ResourceRef kRoleBindings = domain::RoleBindingsResource();
const client::ResourceRef kClusterRoles{"rbac.authorization.k8s.io", "v1", "clusterroles", false};
const client::ResourceRef kClusterRoleBindings{"rbac.authorization.k8s.io", "v1",
                                               "clusterrolebindings", false};

Json AgentDomain(const std::string& name, int replicas) {
  Json domain = OperatorEnv::SampleDomain(name, replicas);
  domain["spec"]["agent"] = {{"enabled", true}};
  return domain;
}

// A token for ServiceAccount `ns`/`account` from the TokenRequest API (as the admin).
std::string MintToken(client::ApiClient& admin, const std::string& ns, const std::string& account) {
  const Json request = {{"apiVersion", "authentication.k8s.io/v1"},
                        {"kind", "TokenRequest"},
                        {"metadata", {{"name", account}}},
                        {"spec", {{"expirationSeconds", 600}}}};
  auto minted = admin.Create(kServiceAccounts, ns, request, "token");
  REQUIRE_MESSAGE(minted.ok(), minted.status().ToString());
  return minted->value("/status/token"_json_pointer, std::string());
}

// A client that authenticates with `token` only (the admin kubeconfig's server and CA).
std::unique_ptr<client::ApiClient> ClientWithToken(const std::string& token) {
  auto config = restconfig::LoadKubeconfig(TestEnv::Kubeconfig());
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  config->token = std::make_shared<restconfig::TokenSource>(token);
  config->client_cert_pem.clear();
  config->client_key_pem.clear();
  client::ClientOptions options;
  options.max_retries = 0;
  auto client = client::ApiClient::Create(std::move(*config), options);
  REQUIRE_MESSAGE(client.ok(), client.status().ToString());
  return std::move(*client);
}

std::vector<std::string> MemberNames(const Json& members) {
  std::vector<std::string> names;
  for (const auto& member : members.value("members", Json::array())) {
    names.push_back(member.value("name", ""));
  }
  return names;
}

// Long-polls GET /members from `version` until a change `kind` of `member` arrives or
// `timeout` passes; returns when it was answered (or nothing).
std::optional<std::chrono::steady_clock::time_point> AwaitChange(const std::string& ip,
                                                                 uint64_t version,
                                                                 const std::string& kind,
                                                                 const std::string& member,
                                                                 std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const Json view = testing::RoleApiGet(
        ip, "/members?after=" + std::to_string(version) + "&wait=5s", /*timeout_s=*/5);
    if (!view.is_object()) return std::nullopt;
    for (const auto& change : view.value("changes", Json::array())) {
      if (change.value("change", "") == kind && change.value("name", "") == member) {
        return std::chrono::steady_clock::now();
      }
    }
    version = view.value("version", version);
  }
  return std::nullopt;
}

void ExpectForbidden(const Result<Json>& result, const std::string& what) {
  CAPTURE(what);
  CHECK_MESSAGE(result.status().IsForbidden(),
                what << ": " << (result.ok() ? "allowed" : result.status().ToString()));
}

TEST_CASE(
    "agent RBAC: the agent's identity reads its own domain and Lease; the API server "
    "refuses everything else") {
  Scenario s;
  s.Create(AgentDomain("ar", 2));
  // Another domain in the same namespace, whose agent has no token (automount off): its
  // role API still works and its members API says why it has no members.
  Json other = AgentDomain("other", 1);
  other["spec"]["template"]["spec"]["automountServiceAccountToken"] = false;
  s.Create(other);
  const std::string dc = s.WaitRunning("ar", 2);
  s.WaitRunning("other", 1);
  const std::string uid = s.Domain("ar").value("/metadata/uid"_json_pointer, "");

  // The operator made the identity, owned by the domain, and runs the members as it.
  for (const auto& ref : {kServiceAccounts, kRoles, kRoleBindings}) {
    CAPTURE(ref.resource);
    auto object = s.api.Get(ref, s.ns, "ar-dpcm-agent");
    REQUIRE_MESSAGE(object.ok(), object.status().ToString());
    CHECK(object->value("/metadata/ownerReferences/0/uid"_json_pointer, "") == uid);
  }
  CHECK(s.Pod("ar-0").value("/spec/serviceAccountName"_json_pointer, "") == "ar-dpcm-agent");

  auto agent = ClientWithToken(MintToken(s.api, s.ns, "ar-dpcm-agent"));
  const auto domains = client::resources::ProcessDomains();
  const auto leases = client::resources::Leases();

  // Allowed: its own domain (get, and list/watch by fieldSelector metadata.name, which the
  // API server authorizes against the Role's resourceNames) and its own Lease.
  auto own = agent->Get(domains, s.ns, "ar");
  CHECK_MESSAGE(own.ok(), own.status().ToString());
  client::ListOptions by_name;
  by_name.field_selector = "metadata.name=ar";
  auto listed = agent->List(domains, s.ns, by_name);
  REQUIRE_MESSAGE(listed.ok(), listed.status().ToString());
  CHECK((*listed)["items"].size() == 1);
  by_name.timeout_seconds = 1;
  bool opened = false;
  const Status watched = agent->Watch(
      domains, s.ns, by_name,
      [&](std::string_view) {
        opened = true;
        return false;
      },
      std::stop_token());
  CHECK_MESSAGE(watched.ok(), watched.ToString());
  CHECK(opened);
  auto lease = agent->Get(leases, s.ns, "ar");
  REQUIRE_MESSAGE(lease.ok(), lease.status().ToString());
  client::ListOptions lease_by_name;
  lease_by_name.field_selector = "metadata.name=ar";
  CHECK(agent->List(leases, s.ns, lease_by_name).ok());
  // An update of its own Lease as it is (what the self-fencing renewal will do): authorized.
  auto renewed = agent->Update(leases, s.ns, *lease);
  CHECK_MESSAGE((renewed.ok() || renewed.status().IsConflict()), renewed.status().ToString());

  // Refused: other domains, other Leases, anything cluster-wide, pods, secrets, writes to the
  // domain itself.
  ExpectForbidden(agent->Get(domains, s.ns, "other"), "get another ProcessDomain");
  client::ListOptions other_by_name;
  other_by_name.field_selector = "metadata.name=other";
  ExpectForbidden(agent->List(domains, s.ns, other_by_name), "list another ProcessDomain");
  ExpectForbidden(agent->List(domains, s.ns, client::ListOptions{}), "list all ProcessDomains");
  ExpectForbidden(agent->List(domains, "", by_name), "list ProcessDomains cluster-wide");
  auto other_lease = s.api.Get(leases, s.ns, "other");
  REQUIRE_MESSAGE(other_lease.ok(), other_lease.status().ToString());
  ExpectForbidden(agent->Update(leases, s.ns, *other_lease), "update another domain's Lease");
  ExpectForbidden(agent->Get(leases, s.ns, "other"), "get another domain's Lease");
  ExpectForbidden(agent->Delete(leases, s.ns, "ar"), "delete its own Lease");
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "intruder"}}},
              {"spec", {{"containers", Json::array({{{"name", "c"}, {"image", "x"}}})}}}};
  ExpectForbidden(agent->Create(client::resources::Pods(), s.ns, pod), "create a pod");
  ExpectForbidden(agent->Get(client::resources::Pods(), s.ns, dc), "get a pod");
  ExpectForbidden(agent->List(client::ResourceRef{"", "v1", "secrets"}, s.ns, {}), "list secrets");
  ExpectForbidden(
      agent->Patch(domains, s.ns, "ar", client::PatchType::kMerge, {{"spec", {{"replicas", 5}}}}),
      "change its own domain's spec");
  ExpectForbidden(agent->Update(domains, s.ns, *own, "status"), "write its own domain's status");

  // The agent without a token: /role answers, /members says why it has no members.
  const std::string other_ip = s.Pod("other-0").value("/status/podIP"_json_pointer, "");
  Json no_identity;
  CHECK(Eventually([&] {
    no_identity = testing::RoleApiGet(other_ip, "/members");
    return no_identity.is_object() && !no_identity.value("error", "").empty();
  }));
  CHECK(no_identity.value("synced", true) == false);
  CHECK(no_identity.value("error", "").find("no API identity") != std::string::npos);
  const Json role =
      testing::RoleApiGet(other_ip, "/role");  // no role hook: the record, still unknown
  REQUIRE(role.is_object());
  CHECK(role.value("pod", "") == "other-0");
}

TEST_CASE(
    "agent members: a scale-up and a scale-down reach GET /members as join and leave, and "
    "the identity goes with the domain") {
  Scenario s;
  s.Create(AgentDomain("am", 2));
  const std::string dc = s.WaitRunning("am", 2);
  const std::string pc = dc == "am-0" ? "am-1" : "am-0";
  const std::string ip = s.Pod(pc).value("/status/podIP"_json_pointer, "");

  // The PC's agent follows the domain: both members, the DC and the epoch, in sync.
  Json view;
  CHECK(Eventually([&] {
    view = testing::RoleApiGet(ip, "/members");
    return view.is_object() && view.value("synced", false) &&
           MemberNames(view) == std::vector<std::string>{"am-0", "am-1"} &&
           view.value("activePod", "") == dc;
  }));
  INFO("GET /members: " << view.dump());
  CHECK(view.value("epoch", int64_t{-1}) == s.Epoch("am"));
  CHECK(view.value("error", "x").empty());

  // Scale up: am-2 joins.
  const auto domains = client::resources::ProcessDomains();
  auto up_at = std::chrono::steady_clock::now();
  REQUIRE(s.api.Patch(domains, s.ns, "am", client::PatchType::kMerge, {{"spec", {{"replicas", 3}}}})
              .ok());
  auto joined = AwaitChange(ip, view.value("version", uint64_t{0}), "joined", "am-2", 30s);
  REQUIRE_MESSAGE(joined.has_value(), "am-2 never joined in GET /members");
  MESSAGE("scale-up -> \"joined am-2\" in GET /members after " << Millis(*joined - up_at) << " ms");
  s.WaitRunning("am", 3);

  // Scale down: am-2 leaves.
  view = testing::RoleApiGet(ip, "/members");
  REQUIRE(view.is_object());
  const auto down_at = std::chrono::steady_clock::now();
  REQUIRE(s.api.Patch(domains, s.ns, "am", client::PatchType::kMerge, {{"spec", {{"replicas", 2}}}})
              .ok());
  auto left = AwaitChange(ip, view.value("version", uint64_t{0}), "left", "am-2", 30s);
  REQUIRE_MESSAGE(left.has_value(), "am-2 never left in GET /members");
  MESSAGE("scale-down -> \"left am-2\" in GET /members after " << Millis(*left - down_at) << " ms");

  // Deleting the domain removes its ServiceAccount, Role and RoleBinding.
  REQUIRE(s.api.Delete(domains, s.ns, "am").ok());
  for (const auto& ref : {kServiceAccounts, kRoles, kRoleBindings}) {
    CAPTURE(ref.resource);
    CHECK(Eventually([&] { return s.api.Get(ref, s.ns, "am-dpcm-agent").status().IsNotFound(); }));
  }
}

// manifests/rbac/role.yaml as JSON, through kubectl (the file is YAML).
Json ShippedOperatorClusterRole() {
  auto rendered = TestEnv::Kubectl({"create", "--dry-run=client", "-o", "json", "-f",
                                    std::string(DPCM_SOURCE_DIR) + "/manifests/rbac/role.yaml"});
  REQUIRE_MESSAGE(rendered.ok(), rendered.status().ToString());
  const Json role = Json::parse(*rendered, nullptr, false);
  REQUIRE(role.is_object());
  return role;
}

TEST_CASE(
    "agent RBAC: the operator's shipped ClusterRole may create every domain's agent "
    "identity (RBAC escalation rules)") {
  Scenario s;
  // A paused domain: the shared operator creates nothing for it; the writer below does.
  Json paused = AgentDomain("esc", 1);
  paused["spec"]["paused"] = true;
  s.Create(paused);
  const Json domain = s.Domain("esc");

  // An operator identity holding exactly manifests/rbac/role.yaml (renamed for this test).
  const std::string name = "dpcm-operator-e2e-" + s.ns;
  Json role = ShippedOperatorClusterRole();
  role["metadata"] = {{"name", name}};
  REQUIRE(s.api.Create(kClusterRoles, "", role).ok());
  const Json account = {
      {"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", {{"name", "operator"}}}};
  REQUIRE(s.api.Create(kServiceAccounts, s.ns, account).ok());
  const Json binding = {
      {"apiVersion", "rbac.authorization.k8s.io/v1"},
      {"kind", "ClusterRoleBinding"},
      {"metadata", {{"name", name}}},
      {"roleRef",
       {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "ClusterRole"}, {"name", name}}},
      {"subjects",
       Json::array({{{"kind", "ServiceAccount"}, {"name", "operator"}, {"namespace", s.ns}}})}};
  REQUIRE(s.api.Create(kClusterRoleBindings, "", binding).ok());
  auto as_operator = ClientWithToken(MintToken(s.api, s.ns, "operator"));

  cache::Store pods;
  cache::Store leases;
  cache::Store services;
  domain::ChildWriter writer(*as_operator, pods, leases, services);
  auto spec = domain::ParseSpec(domain, nullptr);
  REQUIRE(spec.ok());
  // The RBAC authorizer may take a moment to see the new binding.
  Status ensured;
  CHECK(Eventually([&] {
    ensured = writer.EnsureAgentAccess(domain, *spec);
    return ensured.ok();
  }));
  CHECK_MESSAGE(ensured.ok(), ensured.ToString());
  for (const auto& ref : {kServiceAccounts, kRoles, kRoleBindings}) {
    CAPTURE(ref.resource);
    CHECK(s.api.Get(ref, s.ns, "esc-dpcm-agent").ok());
  }
  // And may remove it again.
  CHECK(writer.CleanUp(s.ns, "esc").ok());
  CHECK(s.api.Get(kRoles, s.ns, "esc-dpcm-agent").status().IsNotFound());

  (void)s.api.Delete(kClusterRoleBindings, "", name);
  (void)s.api.Delete(kClusterRoles, "", name);
}

}  // namespace
}  // namespace dpcm
