// The shipped install paths checked with the real tools: helm/dpcm-operator against
// manifests/, both accepted by the API server, and the operator doing its whole job as
// the chart's ServiceAccount, so that any permission missing from the chart's RBAC fails.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
#include "tests/support/operator_env.h"
#include "tests/support/process.h"
#include "tests/support/simulated_nodes.h"
#include "tests/support/temp_dir.h"
#include "tests/support/testenv.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::DcWatcher;
using testing::ManagedProcess;
using testing::SimulatedNodes;
using testing::TestEnv;

constexpr const char* kSourceDir = DPCM_SOURCE_DIR;
constexpr const char* kBinDir = DPCM_BINARY_DIR;
// The identity hack/testenv.sh issues a static token for (kubeconfig-operator):
// system:serviceaccount:dpcm-system:dpcm-operator, i.e. this release in this namespace.
constexpr const char* kRelease = "dpcm-operator";
constexpr const char* kOperatorNamespace = "dpcm-system";

std::string SourcePath(const std::string& relative) {
  return std::string(kSourceDir) + "/" + relative;
}
std::string Chart() { return SourcePath("helm/dpcm-operator"); }
client::ResourceRef ServiceAccounts() { return {"", "v1", "serviceaccounts", true}; }

template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout = 30s) {
  return testing::Eventually(condition, timeout, 50ms);
}

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return value != nullptr && *value != '\0' ? value : fallback;
}

// helm as hack/deps.sh installs it ($DPCM_CACHE/bin/helm), else $DPCM_HELM or PATH's.
std::string HelmBinary() {
  if (std::string helm = EnvOr("DPCM_HELM", ""); !helm.empty()) return helm;
  const std::string cache =
      EnvOr("DPCM_CACHE", EnvOr("XDG_CACHE_HOME", EnvOr("HOME", "/root") + "/.cache") + "/dpcm");
  const std::string cached = cache + "/bin/helm";
  return access(cached.c_str(), X_OK) == 0 ? cached : "helm";
}

Result<std::string> Helm(std::vector<std::string> args) {
  args.insert(args.begin(), {HelmBinary(), "--kubeconfig", TestEnv::Kubeconfig()});
  return testing::RunCommand(args);
}

// kubectl as the admin of the local control plane.
Result<std::string> Kubectl(const std::vector<std::string>& args) { return TestEnv::Kubectl(args); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// YAML as JSON with every scalar a string: enough to compare RBAC rules and names.
Json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return node.as<std::string>();
    case YAML::NodeType::Sequence: {
      Json array = Json::array();
      for (const auto& item : node) array.push_back(ToJson(item));
      return array;
    }
    case YAML::NodeType::Map: {
      Json object = Json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = ToJson(entry.second);
      return object;
    }
    default:
      return nullptr;
  }
}

// The objects of a (multi-document) YAML stream; empty documents are skipped.
std::vector<Json> Objects(const std::string& yaml) {
  std::vector<Json> objects;
  for (const auto& document : YAML::LoadAll(yaml)) {
    if (document.IsMap()) objects.push_back(ToJson(document));
  }
  return objects;
}

Json Find(const std::vector<Json>& objects, const std::string& kind, const std::string& name) {
  for (const auto& object : objects) {
    if (object.value("kind", "") == kind &&
        object.value("/metadata/name"_json_pointer, "") == name) {
      return object;
    }
  }
  FAIL("no " << kind << " " << name << " among the rendered objects");
  return nullptr;
}

// What `helm template` renders for the default release (name, namespace, values).
std::vector<Json> RenderChart(const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"template", kRelease, Chart(), "-n", kOperatorNamespace};
  args.insert(args.end(), extra.begin(), extra.end());
  auto rendered = Helm(args);
  REQUIRE_MESSAGE(rendered.ok(), rendered.status().ToString());
  return Objects(*rendered);
}

// A TCP port on 127.0.0.1 that nothing listens on right now.
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast)
  auto* generic = reinterpret_cast<sockaddr*>(&address);
  const bool bound = bind(fd, generic, length) == 0 && getsockname(fd, generic, &length) == 0;
  close(fd);
  REQUIRE(bound);
  return ntohs(address.sin_port);
}

// Until the operator's own leader election lands, this build refuses --leader-elect at
// start (and says so); once it is there, the test runs the operator with it, as the
// chart does, which also exercises the leader-election Role.
TEST_CASE("the chart lints clean and ships manifests/'s CRD and RBAC rules") {
  auto lint = Helm({"lint", "--strict", Chart()});
  CHECK_MESSAGE(lint.ok(), lint.status().ToString());
  // The optional parts render and lint too.
  const std::string variant_values =
      "metrics.serviceMonitor.enabled=true,watchNamespaces={a,b},"
      "leaderElection.enabled=false,replicaCount=1,rbac.create=false";
  auto variant = Helm({"lint", "--strict", Chart(), "--set", variant_values});
  CHECK_MESSAGE(variant.ok(), variant.status().ToString());
  // values.schema.json: a typo or a bad value is refused with the field named, not
  // rendered into a Deployment that crash-loops.
  for (const auto& [bad, field] :
       std::vector<std::pair<std::string, std::string>>{{"logLevel=verbose", "/logLevel"},
                                                        {"replicas=3", "replicas"},
                                                        {"workers=0", "/workers"},
                                                        {"metrics.port=70000", "/metrics/port"}}) {
    CAPTURE(bad);
    auto refused = Helm({"template", "x", Chart(), "--set", bad});
    CHECK_FALSE(refused.ok());
    CHECK(refused.status().message().find(field) != std::string::npos);
  }

  CHECK_MESSAGE(ReadFile(Chart() + "/crds/dpcm.io_processdomains.yaml") ==
                    ReadFile(SourcePath("manifests/crd/dpcm.io_processdomains.yaml")),
                "helm/dpcm-operator/crds/ differs from manifests/crd/: copy it over");

  const std::vector<Json> chart = RenderChart();
  const Json cluster_role =
      Objects(ReadFile(SourcePath("manifests/rbac/role.yaml"))).at(0)["rules"];
  const Json election_role =
      Objects(ReadFile(SourcePath("manifests/rbac/leader_election_role.yaml"))).at(0)["rules"];
  CHECK(Find(chart, "ClusterRole", kRelease)["rules"] == cluster_role);
  CHECK(Find(chart, "Role", std::string(kRelease) + "-leader-election")["rules"] == election_role);
  const std::vector<Json> aggregated =
      Objects(ReadFile(SourcePath("manifests/rbac/aggregate_roles.yaml")));
  REQUIRE(aggregated.size() == 2);
  CHECK(Find(chart, "ClusterRole", std::string(kRelease) + "-processdomains-view")["rules"] ==
        aggregated[0]["rules"]);
  CHECK(Find(chart, "ClusterRole", std::string(kRelease) + "-processdomains-edit")["rules"] ==
        aggregated[1]["rules"]);
  // Same identity and bindings as manifests/, so either install path works with the same
  // ServiceAccount.
  CHECK(Find(chart, "ServiceAccount", kRelease).value("/metadata/namespace"_json_pointer, "") ==
        kOperatorNamespace);
  CHECK(Find(chart, "ClusterRoleBinding", kRelease)["subjects"] ==
        Objects(ReadFile(SourcePath("manifests/rbac/role_binding.yaml"))).at(0)["subjects"]);

  // The Deployment runs as manifests/ does: leader election, probes, locked down.
  const Json manifest_deployment =
      Objects(ReadFile(SourcePath("manifests/operator/deployment.yaml"))).at(0);
  const Json chart_deployment = Find(chart, "Deployment", kRelease);
  const auto pod = "/spec/template/spec"_json_pointer;
  const auto container = "/spec/template/spec/containers/0"_json_pointer;
  CHECK(chart_deployment.at(pod)["securityContext"] ==
        manifest_deployment.at(pod)["securityContext"]);
  for (const char* field : {"securityContext", "livenessProbe", "readinessProbe", "env", "image"}) {
    CHECK_MESSAGE(chart_deployment.at(container)[field] == manifest_deployment.at(container)[field],
                  field);
  }
  const Json args = chart_deployment.at(container)["args"];
  for (const auto& arg : manifest_deployment.at(container)["args"]) {
    CHECK_MESSAGE(std::find(args.begin(), args.end(), arg) != args.end(), arg.get<std::string>());
  }
  CHECK(chart_deployment.value("/spec/replicas"_json_pointer, "") == "2");
}

TEST_CASE("manifests/ (-k and -f) and the rendered chart are accepted by the API server") {
  // Namespaced objects need their namespace to exist even for a dry run.
  auto api = TestEnv::Client();
  auto created = api->Create(
      client::resources::Namespaces(), "",
      {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", kOperatorNamespace}}}});
  REQUIRE_MESSAGE((created.ok() || created.status().IsAlreadyExists()),
                  created.status().ToString());
  // The samples' kind must be known too: install the CRD for real (as the other e2e
  // tests do; applying it again changes nothing).
  const Status crd = TestEnv::InstallCrd();
  REQUIRE_MESSAGE(crd.ok(), crd.ToString());

  auto kustomized = Kubectl({"apply", "--dry-run=server", "-k", SourcePath("manifests")});
  CHECK_MESSAGE(kustomized.ok(), kustomized.status().ToString());
  if (kustomized.ok()) {
    for (const char* object :
         {"customresourcedefinition.apiextensions.k8s.io/processdomains.dpcm.io",
          "serviceaccount/dpcm-operator", "clusterrole.rbac.authorization.k8s.io/dpcm-operator",
          "role.rbac.authorization.k8s.io/dpcm-operator-leader-election",
          "deployment.apps/dpcm-operator", "service/dpcm-operator-metrics"}) {
      CHECK_MESSAGE(kustomized->find(object) != std::string::npos, object);
    }
  }
  const std::string manifests = SourcePath("manifests");
  auto plain =
      Kubectl({"apply", "--dry-run=server", "-f", manifests + "/namespace.yaml", "-f",
               manifests + "/crd", "-f", manifests + "/rbac", "-f", manifests + "/operator"});
  CHECK_MESSAGE(plain.ok(), plain.status().ToString());
  auto samples = Kubectl(
      {"apply", "--dry-run=server", "-n", kOperatorNamespace, "-f", manifests + "/samples"});
  CHECK_MESSAGE(samples.ok(), samples.status().ToString());

  auto rendered = Helm({"template", kRelease, Chart(), "-n", kOperatorNamespace});
  REQUIRE_MESSAGE(rendered.ok(), rendered.status().ToString());
  testing::TempDir dir;
  auto applied =
      Kubectl({"apply", "--dry-run=server", "-f", dir.Write("rendered.yaml", *rendered)});
  CHECK_MESSAGE(applied.ok(), applied.status().ToString());
}

// The release installed with real helm, plus the pod simulator (as admin: it plays the
// kubelet) and the operator as the release's ServiceAccount. Uninstalls on the way out.
class ChartInstall {
 public:
  ChartInstall() {
    log_dir_ = TestEnv::Dir() + "/e2e-logs/" + std::to_string(getpid());
    std::filesystem::create_directories(log_dir_ + "/podsim");
    // A release left over by an interrupted run would make `helm install` fail.
    if (Helm({"status", kRelease, "-n", kOperatorNamespace}).ok()) Uninstall();
    auto installed =
        Helm({"install", kRelease, Chart(), "-n", kOperatorNamespace, "--create-namespace"});
    REQUIRE_MESSAGE(installed.ok(), installed.status().ToString());
    installed_ = true;
    auto established = Kubectl(
        {"wait", "--for=condition=Established", "--timeout=30s", "crd/processdomains.dpcm.io"});
    REQUIRE_MESSAGE(established.ok(), established.status().ToString());
  }
  ~ChartInstall() {
    if (operator_) operator_->Stop();
    nodes_.reset();
    if (installed_) Uninstall();
  }
  ChartInstall(const ChartInstall&) = delete;
  ChartInstall& operator=(const ChartInstall&) = delete;

  // Three simulated nodes (as admin: they play the kubelets); the scheduler places pods.
  void StartPodSimulator() {
    auto nodes =
        SimulatedNodes::Start(*api_, {.name_prefix = "dpcm-deploy-" + std::to_string(getpid()),
                                      .count = 3,
                                      .state_dir = log_dir_ + "/podsim",
                                      .log_dir = log_dir_,
                                      .first_octet = 2 + (getpid() + 100) % 200,
                                      .extra_args = {}});
    REQUIRE_MESSAGE(nodes.ok(), nodes.status().ToString());
    nodes_ = std::move(*nodes);
  }

  // The operator with the ServiceAccount's kubeconfig, watching `namespaces`.
  void StartOperator(const std::vector<std::string>& namespaces, bool leader_elect) {
    metrics_port_ = FreePort();
    health_port_ = FreePort();
    std::vector<std::string> argv = {std::string(kBinDir) + "/dpcm-operator",
                                     "--kubeconfig",
                                     TestEnv::Kubeconfig("kubeconfig-operator"),
                                     "--metrics-bind-address",
                                     "127.0.0.1:" + std::to_string(metrics_port_),
                                     "--health-probe-bind-address",
                                     "127.0.0.1:" + std::to_string(health_port_),
                                     "--log-level",
                                     "debug"};
    for (const auto& ns : namespaces) argv.insert(argv.end(), {"--namespace", ns});
    if (leader_elect) {
      argv.insert(argv.end(), {"--leader-elect", "--leader-election-id", kRelease,
                               "--leader-election-namespace", kOperatorNamespace});
    }
    std::filesystem::remove(OperatorLog());
    auto started = ManagedProcess::Start(argv, OperatorLog(), {});
    REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    operator_ = std::move(*started);
  }

  // GET on the operator's health or metrics endpoint; "" unless 200.
  std::string Get(int port, const std::string& path) {
    httplib::Client http("127.0.0.1", port);
    http.set_connection_timeout(1);
    auto response = http.Get(path);
    return response && response->status == 200 ? response->body : "";
  }
  std::string Metrics() { return Get(metrics_port_, "/metrics"); }
  bool Ready() { return !Get(health_port_, "/readyz").empty(); }
  bool OperatorRunning() { return operator_ && operator_->Running(); }
  std::string OperatorLog() const { return log_dir_ + "/operator-serviceaccount.log"; }
  // For failure messages: the operator's first refused request, else where its log is.
  std::string Diagnosis() const {
    std::ifstream log(OperatorLog());
    for (std::string line; std::getline(log, line);) {
      if (line.find("orbidden") != std::string::npos) return "refused: " + line;
    }
    return "operator log: " + OperatorLog();
  }

  Status KillPodProcess(const std::string& ns, const std::string& pod) {
    std::ifstream in(log_dir_ + "/podsim/" + ns + "/" + pod + ".pid");
    pid_t pid = 0;
    if (!(in >> pid) || pid <= 1) return Status::NotFound("no pid recorded for " + pod);
    if (kill(pid, SIGKILL) != 0) return Status::Internal("kill failed");
    return Status::Ok();
  }

  void Uninstall() {
    auto removed = Helm({"uninstall", kRelease, "-n", kOperatorNamespace, "--wait"});
    CHECK_MESSAGE(removed.ok(), removed.status().ToString());
    installed_ = false;
  }

 private:
  std::string log_dir_;
  bool installed_ = false;
  int metrics_port_ = 0;
  int health_port_ = 0;
  std::unique_ptr<client::ApiClient> api_ = TestEnv::Client();
  std::unique_ptr<SimulatedNodes> nodes_;
  std::unique_ptr<ManagedProcess> operator_;
};

bool HasEvent(client::ApiClient& api, const std::string& ns, const std::string& domain,
              const std::string& reason) {
  client::ListOptions options;
  options.field_selector = "involvedObject.name=" + domain + ",reason=" + reason;
  auto events = api.List(client::resources::Events(), ns, options);
  return events.ok() && !(*events)["items"].empty();
}

TEST_CASE("helm install, then the operator does its whole job as the chart's ServiceAccount") {
  auto api = TestEnv::Client();
  ChartInstall release;
  auto account = api->Get(ServiceAccounts(), kOperatorNamespace, kRelease);
  REQUIRE_MESSAGE(account.ok(), account.status().ToString());

  // Two namespaces make the operator list and watch cluster-wide (as with the chart's
  // default of all namespaces) while reconciling only this test's domains.
  const std::string ns = TestEnv::CreateNamespace(*api, "deploy");
  const std::string other_ns = TestEnv::CreateNamespace(*api, "deploy-other");
  // The operator runs with --leader-elect, as the chart runs it. A Lease left by an earlier run
  // would only delay this one until it expires.
  (void)api->Delete(client::resources::Leases(), kOperatorNamespace, kRelease);
  release.StartPodSimulator();
  release.StartOperator({ns, other_ns}, /*leader_elect=*/true);
  REQUIRE_MESSAGE(Eventually([&] { return release.Ready() || !release.OperatorRunning(); }),
                  "operator not ready; " << release.Diagnosis());
  REQUIRE_MESSAGE(release.OperatorRunning(), "operator exited; " << release.Diagnosis());
  {  // the chart's leader-election Role lets it take its own Lease
    CHECK(Eventually([&] {
      auto lease = api->Get(client::resources::Leases(), kOperatorNamespace, kRelease);
      return lease.ok() && !lease->value("/spec/holderIdentity"_json_pointer, "").empty();
    }));
  }

  {  // users bound to the default roles: view reads ProcessDomains, edit also writes them
    for (const auto& [user, role] : {std::pair{"viewer", "view"}, std::pair{"editor", "edit"}}) {
      REQUIRE(Kubectl({"create", "rolebinding", std::string(user), "-n", ns,
                       "--clusterrole=" + std::string(role), "--serviceaccount=" + ns + ":" + user})
                  .ok());
    }
    const auto can = [&](const std::string& verb, const std::string& user) {
      return Kubectl({"auth", "can-i", verb, "processdomains.dpcm.io", "-n", ns,
                      "--as=system:serviceaccount:" + ns + ":" + user})
          .ok();  // "no" exits 1
    };
    // The controller-manager aggregates the chart's rules into view and edit.
    CHECK(Eventually([&] { return can("list", "viewer") && can("patch", "editor"); }));
    CHECK_FALSE(can("patch", "viewer"));
    CHECK_FALSE(can("list", "nobody"));
  }

  auto watcher_client = TestEnv::Client();
  DcWatcher watcher(*watcher_client, ns);
  const std::string name = "shipped";
  auto created = api->Create(client::resources::ProcessDomains(), ns,
                             testing::OperatorEnv::SampleDomain(name, 3));
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());

  // Election: pods created, one DC labeled, Lease, Service, status and Events written.
  auto elected = watcher.WaitForNewDc(name, "", 60s);
  REQUIRE_MESSAGE(elected.has_value(), "no DC elected; " << release.Diagnosis());
  const std::string dc = elected->dc;
  auto domain = [&] {
    auto object = api->Get(client::resources::ProcessDomains(), ns, name);
    REQUIRE_MESSAGE(object.ok(), object.status().ToString());
    return *object;
  };
  CHECK(Eventually([&] {
    const Json d = domain();
    return d.value("/status/phase"_json_pointer, "") == "Running" &&
           d.value("/status/ready"_json_pointer, "") == "3/3" &&
           d.value("/status/activePod"_json_pointer, "") == dc;
  }));
  CHECK(Eventually([&] {
    auto lease = api->Get(client::resources::Leases(), ns, name);
    return lease.ok() && lease->value("/spec/holderIdentity"_json_pointer, "") == dc;
  }));
  CHECK_MESSAGE(api->Get(client::resources::Services(), ns, name + "-dc").ok(),
                release.Diagnosis());
  CHECK_MESSAGE(Eventually([&] { return HasEvent(*api, ns, name, "Elected"); }),
                release.Diagnosis());

  // Failover after the DC's process dies.
  const int64_t epoch = domain().value("/status/epoch"_json_pointer, int64_t{0});
  REQUIRE(release.KillPodProcess(ns, dc).ok());
  auto moved = watcher.WaitForNewDc(name, dc, 30s);
  REQUIRE_MESSAGE(moved.has_value(), "no failover; " << release.Diagnosis());
  CHECK(Eventually([&] {
    const Json d = domain();
    return d.value("/status/epoch"_json_pointer, int64_t{0}) > epoch &&
           d.value("/status/failovers"_json_pointer, 0) >= 1 &&
           d.value("/status/activePod"_json_pointer, "") == moved->dc;
  }));
  CHECK_MESSAGE(Eventually([&] { return HasEvent(*api, ns, name, "Promoted"); }),
                release.Diagnosis());

  // Deleting the domain: the operator removes its pods, Lease and Service itself.
  REQUIRE(api->Delete(client::resources::ProcessDomains(), ns, name).ok());
  CHECK(Eventually(
      [&] {
        client::ListOptions selected;
        selected.label_selector = "dpcm.io/domain=" + name;
        auto pods = api->List(client::resources::Pods(), ns, selected);
        return pods.ok() && (*pods)["items"].empty() &&
               api->Get(client::resources::Leases(), ns, name).status().IsNotFound() &&
               api->Get(client::resources::Services(), ns, name + "-dc").status().IsNotFound();
      },
      60s));

  for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
  // Not one request was refused: no 403 counted, no Forbidden logged.
  const std::string metrics = release.Metrics();
  CHECK(metrics.find("rest_client_requests_total") != std::string::npos);
  CHECK_MESSAGE(metrics.find("code=\"403\"") == std::string::npos, release.Diagnosis());
  CHECK_MESSAGE(ReadFile(release.OperatorLog()).find("orbidden") == std::string::npos,
                release.Diagnosis());

  release.Uninstall();
  CHECK(api->Get(ServiceAccounts(), kOperatorNamespace, kRelease).status().IsNotFound());
  auto roles = Kubectl({"get", "clusterrole", kRelease, "--ignore-not-found", "-o", "name"});
  REQUIRE(roles.ok());
  CHECK(roles->empty());
}

}  // namespace
}  // namespace dpcm
