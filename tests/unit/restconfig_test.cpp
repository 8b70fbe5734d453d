// Kubeconfig and in-cluster loading: what each field becomes, merging, and clear failures.
#include <doctest/doctest.h>

#include <filesystem>
#include <string>

#include "pkg/base64/base64.h"
#include "pkg/restconfig/rest_config.h"
#include "tests/support/scoped_env.h"
#include "tests/support/temp_dir.h"
#include "tests/support/test_pki.h"

namespace dpcm::restconfig {
namespace {

using testing::ScopedEnv;
using testing::TempDir;

std::string Base64(std::string_view in) { return base64::Encode(in); }

// A one-cluster, one-user, one-context kubeconfig with `user_body` as the user's fields
// (YAML indented by 4) and `cluster_extra` added to the cluster.
std::string Kubeconfig(const std::string& user_body, const std::string& cluster_extra = "",
                       const std::string& context_extra = "") {
  return "apiVersion: v1\n"
         "kind: Config\n"
         "clusters:\n"
         "- name: dev\n"
         "  cluster:\n"
         "    server: https://10.0.0.1:6443\n" +
         cluster_extra +
         "users:\n"
         "- name: alice\n"
         "  user:\n" +
         user_body +
         "contexts:\n"
         "- name: dev\n"
         "  context:\n"
         "    cluster: dev\n"
         "    user: alice\n" +
         context_extra + "current-context: dev\n";
}

// Loads `yaml` from a temp file; expects a kConfig failure whose message has `needle`.
void ExpectConfigError(const std::string& yaml, const std::string& needle) {
  TempDir dir;
  const std::string path = dir.Write("config", yaml);
  const auto config = LoadKubeconfig(path);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
  CAPTURE(config.status().message());
  CHECK(config.status().message().find(needle) != std::string::npos);
  // Every message names the file, so a user with several kubeconfigs knows where to look.
  CHECK(config.status().message().find(path) != std::string::npos);
}

TEST_CASE("kubeconfig: a token user gives server, bearer token and default namespace") {
  TempDir dir;
  const auto path = dir.Write("config", Kubeconfig("    token: \"  secret-token \\n\"\n"));
  const auto config = LoadKubeconfig(path);
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->server == "https://10.0.0.1:6443");
  REQUIRE(config->token != nullptr);
  CHECK(config->token->Token() == "secret-token");  // trimmed
  CHECK(config->namespace_name == "default");
  CHECK(config->ca_pem.empty());
  CHECK_FALSE(config->insecure_skip_tls_verify);
  CHECK(config->client_cert_pem.empty());
}

TEST_CASE("kubeconfig: a relative tokenFile is resolved against the kubeconfig's directory") {
  TempDir dir;
  dir.Write("kube/tokens/alice", "file-token\n");
  const auto path = dir.Write("kube/config", Kubeconfig("    tokenFile: tokens/alice\n"));
  // The working directory (the build tree) has no tokens/alice, so only resolving the
  // path against the kubeconfig's directory can find it.
  const auto config = LoadKubeconfig(path);
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  REQUIRE(config->token != nullptr);
  CHECK(config->token->Token() == "file-token");
}

TEST_CASE("kubeconfig: a missing tokenFile is a config error naming the field") {
  ExpectConfigError(Kubeconfig("    tokenFile: /nonexistent/dpcm/token\n"), "tokenFile");
}

TEST_CASE("kubeconfig: client certificate and key as files and as base64 data") {
  TempDir dir;
  const std::string cert(testing::kTestCertPem);
  const std::string key(testing::kTestKeyPem);
  SUBCASE("files, relative to the kubeconfig") {
    dir.Write("pki/alice.crt", cert);
    dir.Write("pki/alice.key", key);
    dir.Write("pki/ca.crt", cert);
    const auto path = dir.Write("config", Kubeconfig("    client-certificate: pki/alice.crt\n"
                                                     "    client-key: pki/alice.key\n",
                                                     "    certificate-authority: pki/ca.crt\n"));
    const auto config = LoadKubeconfig(path);
    REQUIRE_MESSAGE(config.ok(), config.status().ToString());
    CHECK(config->client_cert_pem == cert);
    CHECK(config->client_key_pem == key);
    CHECK(config->ca_pem == cert);
    CHECK(config->token == nullptr);
  }
  SUBCASE("-data fields") {
    const auto path =
        dir.Write("config", Kubeconfig("    client-certificate-data: " + Base64(cert) + "\n" +
                                           "    client-key-data: " + Base64(key) + "\n",
                                       "    certificate-authority-data: " + Base64(cert) + "\n"));
    const auto config = LoadKubeconfig(path);
    REQUIRE_MESSAGE(config.ok(), config.status().ToString());
    CHECK(config->client_cert_pem == cert);
    CHECK(config->client_key_pem == key);
    CHECK(config->ca_pem == cert);
  }
}

TEST_CASE("kubeconfig: a missing certificate-authority file is a config error naming it") {
  ExpectConfigError(
      Kubeconfig("    token: t\n", "    certificate-authority: /nonexistent/ca.crt\n"),
      "certificate-authority");
}

TEST_CASE("kubeconfig: insecure-skip-tls-verify is honoured") {
  TempDir dir;
  const auto path =
      dir.Write("config", Kubeconfig("    token: t\n", "    insecure-skip-tls-verify: true\n"));
  const auto config = LoadKubeconfig(path);
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->insecure_skip_tls_verify);
}

TEST_CASE("kubeconfig: insecure-skip-tls-verify that is not a boolean is a config error") {
  TempDir dir;
  const auto path =
      dir.Write("config", Kubeconfig("    token: t\n", "    insecure-skip-tls-verify: maybe\n"));
  const auto config = LoadKubeconfig(path);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
}

TEST_CASE("kubeconfig: the context's namespace becomes the default namespace") {
  TempDir dir;
  const auto path =
      dir.Write("config", Kubeconfig("    token: t\n", "", "    namespace: team-a\n"));
  const auto config = LoadKubeconfig(path);
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->namespace_name == "team-a");
}

TEST_CASE("kubeconfig: current-context is used unless a context is named explicitly") {
  TempDir dir;
  const auto path = dir.Write("config",
                              "clusters:\n"
                              "- name: a\n"
                              "  cluster: {server: 'https://a.example:6443'}\n"
                              "- name: b\n"
                              "  cluster: {server: 'https://b.example:6443'}\n"
                              "users:\n"
                              "- name: ua\n"
                              "  user: {token: token-a}\n"
                              "- name: ub\n"
                              "  user: {token: token-b}\n"
                              "contexts:\n"
                              "- name: ctx-a\n"
                              "  context: {cluster: a, user: ua, namespace: na}\n"
                              "- name: ctx-b\n"
                              "  context: {cluster: b, user: ub, namespace: nb}\n"
                              "current-context: ctx-a\n");
  const auto current = LoadKubeconfig(path);
  REQUIRE_MESSAGE(current.ok(), current.status().ToString());
  CHECK(current->server == "https://a.example:6443");
  CHECK(current->token->Token() == "token-a");
  CHECK(current->namespace_name == "na");

  const auto explicit_b = LoadKubeconfig(path, "ctx-b");
  REQUIRE_MESSAGE(explicit_b.ok(), explicit_b.status().ToString());
  CHECK(explicit_b->server == "https://b.example:6443");
  CHECK(explicit_b->token->Token() == "token-b");
  CHECK(explicit_b->namespace_name == "nb");

  const auto missing = LoadKubeconfig(path, "ctx-c");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kConfig);
  CHECK(missing.status().message().find("ctx-c") != std::string::npos);
}

TEST_CASE("kubeconfig: a KUBECONFIG list merges files and the first to define a name wins") {
  TempDir dir;
  const auto first = dir.Write("first",
                               "clusters:\n"
                               "- name: shared\n"
                               "  cluster: {server: 'https://first.example'}\n"
                               "users:\n"
                               "- name: shared-user\n"
                               "  user: {token: first-token}\n"
                               "current-context: from-second\n");
  const auto second = dir.Write("second",
                                "clusters:\n"
                                "- name: shared\n"
                                "  cluster: {server: 'https://second.example'}\n"
                                "users:\n"
                                "- name: shared-user\n"
                                "  user: {token: second-token}\n"
                                "contexts:\n"
                                "- name: from-second\n"
                                "  context: {cluster: shared, user: shared-user}\n"
                                "current-context: ignored-because-first-set-it\n");
  const std::string missing = (dir.path() / "does-not-exist").string();
  const auto config = LoadKubeconfig(missing + ":" + first + ":" + second);
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->server == "https://first.example");
  CHECK(config->token->Token() == "first-token");
}

TEST_CASE("kubeconfig: a KUBECONFIG list where no file exists is a config error") {
  TempDir dir;
  const auto a = (dir.path() / "a").string();
  const auto b = (dir.path() / "b").string();
  const auto config = LoadKubeconfig(a + ":" + b);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
}

TEST_CASE("kubeconfig: a single missing file is a config error naming it") {
  TempDir dir;
  const auto path = (dir.path() / "nope").string();
  const auto config = LoadKubeconfig(path);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
  CHECK(config.status().message().find(path) != std::string::npos);
  CHECK(LoadKubeconfig("").status().code() == StatusCode::kConfig);
}

TEST_CASE("kubeconfig: malformed files fail with a kConfig status that says why") {
  SUBCASE("not YAML") { ExpectConfigError("clusters: [unclosed\n  - {a: \n", "not valid YAML"); }
  SUBCASE("a YAML list at the top") { ExpectConfigError("- a\n- b\n", "must be a YAML map"); }
  SUBCASE("an empty file") { ExpectConfigError("", "no current-context"); }
  SUBCASE("no current-context") {
    std::string yaml = Kubeconfig("    token: t\n");
    yaml = yaml.substr(0, yaml.find("current-context:"));
    ExpectConfigError(yaml, "no current-context");
  }
  SUBCASE("a context naming a missing cluster") {
    ExpectConfigError(
        "clusters: []\nusers: []\ncontexts:\n- name: c\n  context: {cluster: ghost}\n"
        "current-context: c\n",
        "cluster \"ghost\"");
  }
  SUBCASE("a context naming a missing user") {
    ExpectConfigError(
        "clusters:\n- name: k\n  cluster: {server: 'https://k'}\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: ghost}\ncurrent-context: c\n",
        "user \"ghost\"");
  }
  SUBCASE("a cluster without a server") {
    ExpectConfigError(
        "clusters:\n- name: k\n  cluster: {insecure-skip-tls-verify: true}\n"
        "contexts:\n- name: c\n  context: {cluster: k}\ncurrent-context: c\n",
        "has no server");
  }
  SUBCASE("a server without a scheme") {
    ExpectConfigError(
        "clusters:\n- name: k\n  cluster: {server: '10.0.0.1:6443'}\n"
        "contexts:\n- name: c\n  context: {cluster: k}\ncurrent-context: c\n",
        "https://");
  }
  SUBCASE("bad base64") {
    ExpectConfigError(
        Kubeconfig("    token: t\n", "    certificate-authority-data: '%%%not*base64'\n"),
        "not valid base64");
  }
  SUBCASE("a client certificate without a key") {
    ExpectConfigError(Kubeconfig("    client-certificate-data: " +
                                 Base64(std::string(testing::kTestCertPem)) + "\n"),
                      "needs both a client certificate and a client key");
  }
  SUBCASE("an exec user") {
    ExpectConfigError(Kubeconfig("    exec:\n"
                                 "      apiVersion: client.authentication.k8s.io/v1\n"
                                 "      command: aws\n"
                                 "      args: [eks, get-token]\n"),
                      "exec or auth-provider");
  }
  SUBCASE("an auth-provider user") {
    ExpectConfigError(Kubeconfig("    auth-provider:\n      name: oidc\n"),
                      "exec or auth-provider");
  }
  SUBCASE("a users entry that is a string") {
    ExpectConfigError(
        "clusters:\n- name: k\n  cluster: {server: 'https://k'}\n"
        "users:\n- alice\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: alice}\ncurrent-context: c\n",
        "needs a name");
  }
  SUBCASE("a user body that is a string") {
    ExpectConfigError(
        "clusters:\n- name: k\n  cluster: {server: 'https://k'}\n"
        "users:\n- name: alice\n  user: just-a-token\n"
        "contexts:\n- name: c\n  context: {cluster: k, user: alice}\ncurrent-context: c\n",
        "must be a map");
  }
  SUBCASE("users that is not a list") {
    ExpectConfigError("users: {alice: {token: t}}\n", "users must be a list");
  }
  SUBCASE("a current-context that is a map") {
    std::string yaml = Kubeconfig("    token: t\n");
    yaml = yaml.substr(0, yaml.find("current-context:")) + "current-context: {a: b}\n";
    ExpectConfigError(yaml, "line ");
  }
}

// --- In-cluster configuration ---

struct InClusterEnv {
  InClusterEnv(const std::string& host, const std::string& port) {
    env.Set("KUBERNETES_SERVICE_HOST", host);
    env.Set("KUBERNETES_SERVICE_PORT", port);
  }
  ScopedEnv env;
  TempDir dir;
};

TEST_CASE("in-cluster: server from the environment, token, CA and namespace from the files") {
  InClusterEnv in_cluster("10.96.0.1", "443");
  in_cluster.dir.Write("token", "sa-token\n");
  in_cluster.dir.Write("ca.crt", std::string(testing::kTestCertPem));
  in_cluster.dir.Write("namespace", "dpcm-system\n");
  const auto config = LoadInCluster(in_cluster.dir.path().string());
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->server == "https://10.96.0.1:443");
  REQUIRE(config->token != nullptr);
  CHECK(config->token->Token() == "sa-token");
  CHECK(config->ca_pem == testing::kTestCertPem);
  CHECK(config->namespace_name == "dpcm-system");
}

TEST_CASE("in-cluster: an IPv6 service host is bracketed") {
  InClusterEnv in_cluster("::1", "443");
  in_cluster.dir.Write("token", "t");
  in_cluster.dir.Write("ca.crt", std::string(testing::kTestCertPem));
  const auto config = LoadInCluster(in_cluster.dir.path().string());
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->server == "https://[::1]:443");
  // No namespace file: the default namespace.
  CHECK(config->namespace_name == "default");
}

TEST_CASE("in-cluster: a missing token file is a config error") {
  InClusterEnv in_cluster("10.96.0.1", "443");
  in_cluster.dir.Write("ca.crt", std::string(testing::kTestCertPem));
  const auto config = LoadInCluster(in_cluster.dir.path().string());
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
  CHECK(config.status().message().find("token") != std::string::npos);
}

TEST_CASE("in-cluster: a missing CA file is a config error") {
  InClusterEnv in_cluster("10.96.0.1", "443");
  in_cluster.dir.Write("token", "t");
  const auto config = LoadInCluster(in_cluster.dir.path().string());
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
  CHECK(config.status().message().find("CA") != std::string::npos);
}

TEST_CASE("in-cluster: without KUBERNETES_SERVICE_HOST it is a config error") {
  ScopedEnv env;
  env.Unset("KUBERNETES_SERVICE_HOST");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  TempDir dir;
  dir.Write("token", "t");
  const auto config = LoadInCluster(dir.path().string());
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kConfig);
  CHECK(config.status().message().find("KUBERNETES_SERVICE_HOST") != std::string::npos);
}

TEST_CASE("LoadDefault prefers an explicit path over KUBECONFIG and in-cluster") {
  TempDir dir;
  const auto flag_path = dir.Write("flag", Kubeconfig("    token: from-flag\n"));
  const auto env_path = dir.Write("env", Kubeconfig("    token: from-env\n"));
  ScopedEnv env;
  env.Set("KUBECONFIG", env_path);
  env.Set("KUBERNETES_SERVICE_HOST", "10.96.0.1");
  env.Set("KUBERNETES_SERVICE_PORT", "443");
  const auto from_flag = LoadDefault(flag_path);
  REQUIRE_MESSAGE(from_flag.ok(), from_flag.status().ToString());
  CHECK(from_flag->token->Token() == "from-flag");
  const auto from_env = LoadDefault();
  REQUIRE_MESSAGE(from_env.ok(), from_env.status().ToString());
  CHECK(from_env->token->Token() == "from-env");
}

// --- TokenSource ---

TEST_CASE("TokenSource re-reads a rotated token file and keeps the last good token") {
  TempDir dir;
  const auto path = dir.Write("token", "first\n");
  auto source = TokenSource::FromFile(path, std::chrono::seconds(0));
  REQUIRE_MESSAGE(source.ok(), source.status().ToString());
  CHECK((*source)->Token() == "first");

  dir.Write("token", "second\n");
  CHECK((*source)->Token() == "second");

  dir.Write("token", "");  // kubelet mid-rotation: an empty file must not blank the token
  CHECK((*source)->Token() == "second");

  dir.Write("token", "   \n");
  CHECK((*source)->Token() == "second");

  std::filesystem::remove(path);  // unreadable
  CHECK((*source)->Token() == "second");

  dir.Write("token", "third");
  CHECK((*source)->Token() == "third");
}

TEST_CASE("TokenSource with the default refresh does not re-read on every call") {
  TempDir dir;
  const auto path = dir.Write("token", "cached\n");
  auto source = TokenSource::FromFile(path);
  REQUIRE(source.ok());
  CHECK((*source)->Token() == "cached");
  dir.Write("token", "rotated\n");
  CHECK((*source)->Token() == "cached");
}

TEST_CASE("TokenSource::FromFile fails on a missing file and a fixed token never changes") {
  TempDir dir;
  const auto missing = TokenSource::FromFile((dir.path() / "none").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kConfig);
  TokenSource fixed("abc");
  CHECK(fixed.Token() == "abc");
}

}  // namespace
}  // namespace dpcm::restconfig
