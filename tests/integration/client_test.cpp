// The REST client against the real kube-apiserver: verbs, errors, pagination, auth.
#include <doctest/doctest.h>

#include "pkg/client/api_client.h"
#include "tests/support/scoped_env.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_pki.h"
#include "tests/support/testenv.h"

namespace dpcm {
namespace {

using client::Json;
using testing::TestEnv;

Json ConfigMap(const std::string& name, const Json& labels = Json::object()) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata", {{"name", name}, {"labels", labels}}},
          {"data", {{"key", "value"}}}};
}

TEST_CASE("configmap create, get, update, patch and delete with preconditions") {
  auto api = TestEnv::Client();
  const auto ns = TestEnv::CreateNamespace(*api, "it-crud");
  const auto cms = client::resources::ConfigMaps();

  auto created = api->Create(cms, ns, ConfigMap("alpha"));
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  const std::string uid = (*created)["metadata"]["uid"];
  const std::string rv1 = (*created)["metadata"]["resourceVersion"];

  auto again = api->Create(cms, ns, ConfigMap("alpha"));
  CHECK(again.status().IsAlreadyExists());
  CHECK(again.status().http_status() == 409);

  auto fetched = api->Get(cms, ns, "alpha");
  REQUIRE(fetched.ok());
  CHECK((*fetched)["data"]["key"] == "value");

  Json changed = *fetched;
  changed["data"]["key"] = "second";
  auto updated = api->Update(cms, ns, changed);
  REQUIRE_MESSAGE(updated.ok(), updated.status().ToString());
  CHECK((*updated)["metadata"]["resourceVersion"] != rv1);

  SUBCASE("an update with a stale resourceVersion is a Conflict") {
    Json stale = *fetched;  // still carries rv1
    stale["data"]["key"] = "lost";
    auto conflict = api->Update(cms, ns, stale);
    CHECK(conflict.status().IsConflict());
    CHECK(conflict.status().http_status() == 409);
    CHECK((*api->Get(cms, ns, "alpha"))["data"]["key"] == "second");
  }
  SUBCASE("merge patch and JSON patch") {
    auto merged = api->Patch(cms, ns, "alpha", client::PatchType::kMerge,
                             {{"metadata", {{"labels", {{"tier", "gold"}}}}}});
    REQUIRE_MESSAGE(merged.ok(), merged.status().ToString());
    CHECK((*merged)["metadata"]["labels"]["tier"] == "gold");
    const std::string rv = (*merged)["metadata"]["resourceVersion"];
    // A JSON patch guarded by a "test" of the resourceVersion: the conditional write
    // the operator relies on.
    auto guarded = api->Patch(
        cms, ns, "alpha", client::PatchType::kJson,
        Json::array({{{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", rv}},
                     {{"op", "replace"}, {"path", "/data/key"}, {"value", "third"}}}));
    REQUIRE_MESSAGE(guarded.ok(), guarded.status().ToString());
    CHECK((*guarded)["data"]["key"] == "third");
    auto stale = api->Patch(
        cms, ns, "alpha", client::PatchType::kJson,
        Json::array({{{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", rv}},
                     {{"op", "replace"}, {"path", "/data/key"}, {"value", "lost"}}}));
    CHECK_FALSE(stale.ok());
    CHECK_FALSE(stale.status().IsTransport());
    CHECK((*api->Get(cms, ns, "alpha"))["data"]["key"] == "third");
  }
  SUBCASE("delete honours uid and resourceVersion preconditions") {
    client::DeleteOptions wrong_uid;
    wrong_uid.precondition_uid = "00000000-0000-0000-0000-000000000000";
    CHECK(api->Delete(cms, ns, "alpha", wrong_uid).status().IsConflict());
    client::DeleteOptions stale_rv;
    stale_rv.precondition_resource_version = rv1;
    CHECK(api->Delete(cms, ns, "alpha", stale_rv).status().IsConflict());
    client::DeleteOptions right;
    right.precondition_uid = uid;
    right.propagation_policy = "Background";
    auto deleted = api->Delete(cms, ns, "alpha", right);
    REQUIRE_MESSAGE(deleted.ok(), deleted.status().ToString());
    auto gone = api->Get(cms, ns, "alpha");
    CHECK(gone.status().IsNotFound());
    CHECK(gone.status().reason() == "NotFound");
  }
}

TEST_CASE("pod create and status subresource") {
  auto api = TestEnv::Client();
  const auto ns = TestEnv::CreateNamespace(*api, "it-pod");
  const auto pods = client::resources::Pods();
  Json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "worker-0"}, {"labels", {{"app", "demo"}}}}},
              // No scheduler of that name runs: the real one leaves the pod (and its
              // status, which this test writes with resourceVersion preconditions) alone.
              {"spec",
               {{"schedulerName", "dpcm-none"},
                {"containers", Json::array({{{"name", "app"}, {"image", "demo"}}})}}}};
  auto created = api->Create(pods, ns, pod);
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());

  Json with_status = *created;
  with_status["status"] = {{"phase", "Running"},
                           {"podIP", "127.0.0.5"},
                           {"conditions", Json::array({{{"type", "Ready"}, {"status", "True"}}})}};
  auto updated = api->UpdateStatus(pods, ns, with_status);
  REQUIRE_MESSAGE(updated.ok(), updated.status().ToString());
  auto fetched = api->Get(pods, ns, "worker-0");
  REQUIRE(fetched.ok());
  CHECK((*fetched)["status"]["phase"] == "Running");
  CHECK((*fetched)["status"]["podIP"] == "127.0.0.5");

  // The status subresource ignores spec changes.
  Json spec_via_status = *fetched;
  spec_via_status["spec"]["activeDeadlineSeconds"] = 30;
  REQUIRE(api->UpdateStatus(pods, ns, spec_via_status).ok());
  CHECK_FALSE((*api->Get(pods, ns, "worker-0"))["spec"].contains("activeDeadlineSeconds"));

  auto bad = api->Create(pods, ns,
                         {{"apiVersion", "v1"},
                          {"kind", "Pod"},
                          {"metadata", {{"name", "Not_A_Valid_Name"}}},
                          {"spec", {{"containers", Json::array()}}}});
  CHECK(bad.status().IsInvalid());
  CHECK(bad.status().http_status() == 422);

  client::DeleteOptions now;
  now.grace_period_seconds = 0;
  REQUIRE(api->Delete(pods, ns, "worker-0", now).ok());
  CHECK(api->Get(pods, ns, "worker-0").status().IsNotFound());
}

TEST_CASE("lease create, renew and stale renew") {
  auto api = TestEnv::Client();
  const auto ns = TestEnv::CreateNamespace(*api, "it-lease");
  const auto leases = client::resources::Leases();
  Json lease = {{"apiVersion", "coordination.k8s.io/v1"},
                {"kind", "Lease"},
                {"metadata", {{"name", "domain-a"}}},
                {"spec",
                 {{"holderIdentity", "pod-0"},
                  {"leaseDurationSeconds", 15},
                  {"leaseTransitions", 0},
                  {"renewTime", "2026-01-01T00:00:00.000000Z"}}}};
  auto created = api->Create(leases, ns, lease);
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());

  Json renewed = *created;
  renewed["spec"]["holderIdentity"] = "pod-1";
  renewed["spec"]["leaseTransitions"] = 1;
  auto taken = api->Update(leases, ns, renewed);
  REQUIRE_MESSAGE(taken.ok(), taken.status().ToString());
  CHECK((*taken)["spec"]["leaseTransitions"] == 1);

  // A second writer that read the old version loses: no blind overwrite.
  Json other = *created;
  other["spec"]["holderIdentity"] = "pod-2";
  CHECK(api->Update(leases, ns, other).status().IsConflict());
  CHECK((*api->Get(leases, ns, "domain-a"))["spec"]["holderIdentity"] == "pod-1");
}

TEST_CASE("label-selector list with limit/continue pagination") {
  auto api = TestEnv::Client();
  const auto ns = TestEnv::CreateNamespace(*api, "it-page");
  const auto cms = client::resources::ConfigMaps();
  for (int i = 0; i < 25; ++i) {
    REQUIRE(api->Create(cms, ns, ConfigMap("member-" + std::to_string(i), {{"group", "a"}})).ok());
  }
  for (int i = 0; i < 5; ++i) {
    REQUIRE(api->Create(cms, ns, ConfigMap("other-" + std::to_string(i), {{"group", "b"}})).ok());
  }
  client::ListOptions options;
  options.label_selector = "group=a";
  options.limit = 10;
  int pages = 0;
  size_t seen = 0;
  do {
    auto page = api->List(cms, ns, options);
    REQUIRE_MESSAGE(page.ok(), page.status().ToString());
    ++pages;
    seen += (*page)["items"].size();
    CHECK((*page)["items"].size() <= 10);
    options.continue_token = page->value("/metadata/continue"_json_pointer, "");
  } while (!options.continue_token.empty());
  CHECK(pages == 3);
  CHECK(seen == 25);

  options.continue_token.clear();
  auto all = api->ListAll(cms, ns, options);
  REQUIRE(all.ok());
  CHECK((*all)["items"].size() == 25);
  CHECK_FALSE((*all)["metadata"]["resourceVersion"].get<std::string>().empty());
  CHECK_FALSE((*all)["metadata"].contains("continue"));

  client::ListOptions set_based;
  set_based.label_selector = "group in (a,b),group!=a";
  auto others = api->ListAll(cms, ns, set_based);
  REQUIRE(others.ok());
  CHECK((*others)["items"].size() == 5);

  client::ListOptions by_field;
  by_field.field_selector = "metadata.name=member-7";
  auto one = api->List(cms, ns, by_field);
  REQUIRE(one.ok());
  REQUIRE((*one)["items"].size() == 1);
  CHECK((*one)["items"][0]["metadata"]["name"] == "member-7");
}

TEST_CASE("authentication and authorization") {
  SUBCASE("a service account without RBAC is Forbidden") {
    auto restricted = TestEnv::Client("kubeconfig-restricted");
    auto pods = restricted->List(client::resources::Pods(), "default", {});
    CHECK(pods.status().IsForbidden());
    CHECK(pods.status().http_status() == 403);
    CHECK(pods.status().message().find("system:serviceaccount:default:restricted") !=
          std::string::npos);
  }
  SUBCASE("a client certificate authenticates") {
    auto by_cert = TestEnv::Client("kubeconfig-cert");
    auto namespaces = by_cert->List(client::resources::Namespaces(), "", {});
    CHECK_MESSAGE(namespaces.ok(), namespaces.status().ToString());
  }
  SUBCASE("a bad token is Unauthorized") {
    auto config = restconfig::LoadKubeconfig(TestEnv::Kubeconfig());
    REQUIRE(config.ok());
    config->token = std::make_shared<restconfig::TokenSource>("not-a-token");
    auto api = client::ApiClient::Create(*config);
    REQUIRE(api.ok());
    CHECK((*api)->List(client::resources::Pods(), "default", {}).status().code() ==
          StatusCode::kUnauthorized);
  }
  SUBCASE("TLS verification is on: a server certificate from another CA is refused") {
    auto config = restconfig::LoadKubeconfig(TestEnv::Kubeconfig());
    REQUIRE(config.ok());
    config->ca_pem.clear();  // fall back to the system roots, which do not know our CA
    auto api = client::ApiClient::Create(*config);
    REQUIRE(api.ok());
    auto refused = (*api)->List(client::resources::Pods(), "default", {});
    CHECK(refused.status().IsTransport());
  }
  SUBCASE("with a CA in the kubeconfig, that CA alone is trusted, not the system roots too") {
    auto config = restconfig::LoadKubeconfig(TestEnv::Kubeconfig());
    REQUIRE(config.ok());
    // The system trust store (OpenSSL's default file) knows the API server's CA...
    testing::TempDir dir;
    testing::ScopedEnv env;
    env.Set("SSL_CERT_FILE", dir.Write("system-roots.pem", config->ca_pem));
    // ...but the kubeconfig names another one: as with client-go, the server is refused.
    config->ca_pem = std::string(testing::kTestCertPem);
    auto api = client::ApiClient::Create(*config);
    REQUIRE(api.ok());
    auto refused = (*api)->List(client::resources::Pods(), "default", {});
    CHECK_MESSAGE(refused.status().IsTransport(),
                  "a server certificate from a CA outside the kubeconfig was accepted");
  }
}

TEST_CASE("a request to an unreachable server is a transport error, quickly") {
  restconfig::RestConfig config;
  config.server = "https://127.0.0.1:1";
  client::ClientOptions options;
  options.max_retries = 1;
  auto api = client::ApiClient::Create(config, options);
  REQUIRE(api.ok());
  auto result = (*api)->Get(client::resources::Pods(), "default", "x");
  CHECK(result.status().IsTransport());
}

}  // namespace
}  // namespace dpcm
