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
#include <map>
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

// One way to render the chart: a name and the helm arguments that select it.
struct RenderingMode {
  std::string name;
  std::vector<std::string> args;
};

// Every rendering mode of the chart. `watched` are the namespaces of the namespaced-RBAC
// mode (which must exist for a server-side dry run of its Roles).
std::vector<RenderingMode> RenderingModes(const std::vector<std::string>& watched) {
  std::string list;
  for (const auto& ns : watched) list += (list.empty() ? "" : ",") + ns;
  std::vector<RenderingMode> modes = {
      {"default (2 replicas, PDB, spread, ClusterRole)", {}},
      {"one replica without leader election (no PDB, no spread)",
       {"--set", "replicaCount=1,leaderElection.enabled=false"}},
      {"HA: 3 replicas, maxUnavailable, own spread and affinity",
       {"--set", "replicaCount=3,podDisruptionBudget.maxUnavailable=1",  //
        "--set-json",
        R"(topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"topology.kubernetes.io/zone",)"
        R"("whenUnsatisfiable":"DoNotSchedule"}])",
        "--set-json",
        R"(affinity={"podAntiAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":[)"
        R"({"topologyKey":"kubernetes.io/hostname","labelSelector":{"matchLabels":)"
        R"({"app.kubernetes.io/name":"dpcm-operator"}}}]}})",
        "--set-json", R"(tolerations=[{"key":"dedicated","operator":"Exists"}])", "--set",
        "nodeSelector.kubernetes\\.io/os=linux"}},
      {"namespaced RBAC (watchNamespaces)", {"--set", "watchNamespaces={" + list + "}"}},
      {"PrometheusRule",
       {"--set", "prometheusRule.enabled=true,prometheusRule.labels.role=alerts"}},
      {"ServiceMonitor",
       {"--set", "metrics.serviceMonitor.enabled=true,metrics.serviceMonitor.scrapeTimeout=10s"}},
      {"no RBAC, no metrics, own ServiceAccount",
       {"--set",
        "rbac.create=false,serviceAccount.create=false,serviceAccount.name=ops,"
        "metrics.enabled=false,podDisruptionBudget.enabled=false,defaultTopologySpread=false"}},
  };
  // The Grafana dashboard ConfigMap, once the chart has it.
  if (ReadFile(Chart() + "/values.yaml").find("\ngrafanaDashboard:") != std::string::npos) {
    modes.push_back({"Grafana dashboard", {"--set", "grafanaDashboard.enabled=true"}});
  }
  return modes;
}

std::vector<std::string> Concat(std::vector<std::string> head,
                                const std::vector<std::string>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

std::vector<Json> All(const std::vector<Json>& objects, const std::string& kind) {
  std::vector<Json> found;
  for (const auto& object : objects) {
    if (object.value("kind", "") == kind) found.push_back(object);
  }
  return found;
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
  // Every rendering mode lints clean (the server-side dry run is the next test).
  for (const auto& mode : RenderingModes({"team-a", "team-b"})) {
    CAPTURE(mode.name);
    auto lint = Helm(Concat({"lint", "--strict", Chart()}, mode.args));
    CHECK_MESSAGE(lint.ok(), lint.status().ToString());
  }
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
  // Two replicas: spread over nodes as manifests/ does, and a PDB keeping one up.
  CHECK(chart_deployment.at(pod)["topologySpreadConstraints"] ==
        manifest_deployment.at(pod)["topologySpreadConstraints"]);
  const Json manifest_pdb =
      Objects(ReadFile(SourcePath("manifests/policy/pod_disruption_budget.yaml"))).at(0);
  const Json chart_pdb = Find(chart, "PodDisruptionBudget", kRelease);
  CHECK(chart_pdb["spec"] == manifest_pdb["spec"]);
  CHECK(chart_deployment.at(pod)["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"] ==
        chart_pdb["spec"]["selector"]["matchLabels"]);
  // One replica: no PDB (minAvailable 1 would block every drain) and no spread.
  const std::vector<Json> single = RenderChart({"--set", "replicaCount=1"});
  CHECK(All(single, "PodDisruptionBudget").empty());
  CHECK_FALSE(Find(single, "Deployment", kRelease).at(pod).contains("topologySpreadConstraints"));

  // watchNamespaces: the same rules as a Role and RoleBinding in each watched namespace,
  // and nothing cluster-wide for the operator (only the users' aggregated roles).
  const std::vector<Json> namespaced = RenderChart({"--set", "watchNamespaces={team-a,team-b}"});
  std::vector<std::string> role_namespaces;
  for (const auto& role : All(namespaced, "Role")) {
    if (role.value("/metadata/name"_json_pointer, "") != kRelease) continue;
    role_namespaces.push_back(role.value("/metadata/namespace"_json_pointer, ""));
    CHECK(role["rules"] == cluster_role);
  }
  CHECK(role_namespaces == std::vector<std::string>{"team-a", "team-b"});
  std::vector<std::string> binding_namespaces;
  for (const auto& binding : All(namespaced, "RoleBinding")) {
    if (binding.value("/metadata/name"_json_pointer, "") != kRelease) continue;
    binding_namespaces.push_back(binding.value("/metadata/namespace"_json_pointer, ""));
    CHECK(binding["subjects"] == Find(chart, "ClusterRoleBinding", kRelease)["subjects"]);
    CHECK(binding.value("/roleRef/kind"_json_pointer, "") == "Role");
  }
  CHECK(binding_namespaces == std::vector<std::string>{"team-a", "team-b"});
  CHECK(All(namespaced, "ClusterRoleBinding").empty());
  for (const auto& role : All(namespaced, "ClusterRole")) {
    CHECK(role.value("/metadata/name"_json_pointer, "") != kRelease);
  }
  const Json namespaced_args = Find(namespaced, "Deployment", kRelease).at(container)["args"];
  for (const char* arg : {"--namespace=team-a", "--namespace=team-b"}) {
    CHECK_MESSAGE(
        std::find(namespaced_args.begin(), namespaced_args.end(), arg) != namespaced_args.end(),
        arg);
  }
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

  // manifests/policy/ is policy/v1 (Kubernetes 1.21+); on an older server its spec is
  // dry-run as policy/v1beta1, which has the same fields.
  testing::TempDir dir;
  std::string pdb = ReadFile(manifests + "/policy/pod_disruption_budget.yaml");
  auto served = Kubectl({"api-versions"});
  REQUIRE_MESSAGE(served.ok(), served.status().ToString());
  if (served->find("policy/v1\n") == std::string::npos) {
    const std::string v1 = "apiVersion: policy/v1\n";
    pdb.replace(pdb.find(v1), v1.size(), "apiVersion: policy/v1beta1\n");
  }
  auto policy = Kubectl({"apply", "--dry-run=server", "-f", dir.Write("pdb.yaml", pdb)});
  CHECK_MESSAGE(policy.ok(), policy.status().ToString());

  // Every rendering mode of the chart, rendered with the API versions this server serves
  // (helm template --dry-run=server asks it) and dry-run on it. The monitoring kinds need
  // their CRDs: stand-ins here (tests/e2e/testdata/monitoring-crds.yaml says how close).
  auto monitoring = Kubectl({"apply", "-f", SourcePath("tests/e2e/testdata/monitoring-crds.yaml")});
  REQUIRE_MESSAGE(monitoring.ok(), monitoring.status().ToString());
  auto established = Kubectl({"wait", "--for=condition=Established", "--timeout=30s",
                              "crd/prometheusrules.monitoring.coreos.com",
                              "crd/servicemonitors.monitoring.coreos.com"});
  REQUIRE_MESSAGE(established.ok(), established.status().ToString());
  const std::vector<std::string> watched = {TestEnv::CreateNamespace(*api, "dry-a"),
                                            TestEnv::CreateNamespace(*api, "dry-b")};
  // What each mode must have produced, as kubectl names it ("" for none).
  const std::map<std::string, std::vector<std::string>> expected = {
      {"default",
       {"poddisruptionbudget.policy/dpcm-operator ",
        "clusterrole.rbac.authorization.k8s.io/dpcm-operator "}},
      {"HA", {"poddisruptionbudget.policy/dpcm-operator "}},
      {"namespaced", {"role.rbac.authorization.k8s.io/dpcm-operator "}},
      {"PrometheusRule", {"prometheusrule.monitoring.coreos.com/dpcm-operator "}},
      {"ServiceMonitor", {"servicemonitor.monitoring.coreos.com/dpcm-operator "}},
  };
  for (const auto& mode : RenderingModes(watched)) {
    CAPTURE(mode.name);
    auto rendered = Helm(Concat(
        {"template", kRelease, Chart(), "-n", kOperatorNamespace, "--dry-run=server"}, mode.args));
    REQUIRE_MESSAGE(rendered.ok(), rendered.status().ToString());
    auto applied =
        Kubectl({"apply", "--dry-run=server", "-f", dir.Write("rendered.yaml", *rendered)});
    CHECK_MESSAGE(applied.ok(), applied.status().ToString());
    if (!applied.ok()) continue;
    for (const auto& [prefix, objects] : expected) {
      if (mode.name.rfind(prefix, 0) != 0) continue;
      for (const auto& object : objects)
        CHECK_MESSAGE(applied->find(object) != std::string::npos, object);
    }
    if (mode.name.rfind("namespaced", 0) == 0) {
      CHECK(applied->find("clusterrole.rbac.authorization.k8s.io/dpcm-operator ") ==
            std::string::npos);
      CHECK(applied->find("clusterrolebinding") == std::string::npos);
      // kubectl names the object, not its namespace: one Role per watched namespace.
      size_t roles = 0;
      for (size_t at = 0; (at = applied->find("role.rbac.authorization.k8s.io/dpcm-operator ",
                                              at)) != std::string::npos;
           ++at) {
        if (at == 0 || (*applied)[at - 1] == '\n') ++roles;
      }
      CHECK(roles == watched.size());
    }
  }
}

// The release installed with real helm, plus the pod simulator (as admin: it plays the
// kubelet) and the operator as the release's ServiceAccount. Uninstalls on the way out.
class ChartInstall {
 public:
  // `values`: helm arguments such as {"--set", "watchNamespaces={a}"}.
  explicit ChartInstall(const std::vector<std::string>& values = {}) {
    log_dir_ = TestEnv::Dir() + "/e2e-logs/" + std::to_string(getpid());
    std::filesystem::create_directories(log_dir_ + "/podsim");
    // A release left over by an interrupted run would make `helm install` fail.
    if (Helm({"status", kRelease, "-n", kOperatorNamespace}).ok()) Uninstall();
    auto installed = Helm(Concat(
        {"install", kRelease, Chart(), "-n", kOperatorNamespace, "--create-namespace"}, values));
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

  // The operator with the ServiceAccount's kubeconfig, watching `namespaces`; its
  // servers on `bind_host` ("" = every interface, as the chart's ":8080" binds them).
  void StartOperator(const std::vector<std::string>& namespaces, bool leader_elect,
                     const std::string& bind_host = "127.0.0.1") {
    metrics_port_ = FreePort();
    health_port_ = FreePort();
    std::vector<std::string> argv = {std::string(kBinDir) + "/dpcm-operator",
                                     "--kubeconfig",
                                     TestEnv::Kubeconfig("kubeconfig-operator"),
                                     "--metrics-bind-address",
                                     bind_host + ":" + std::to_string(metrics_port_),
                                     "--health-probe-bind-address",
                                     bind_host + ":" + std::to_string(health_port_),
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

  // GET on the operator's health or metrics endpoint through `host`; "" unless 200.
  std::string Get(int port, const std::string& path, const std::string& host = "127.0.0.1") {
    httplib::Client http(host, port);
    http.set_connection_timeout(1);
    auto response = http.Get(path);
    return response && response->status == 200 ? response->body : "";
  }
  std::string Metrics() { return Get(metrics_port_, "/metrics"); }
  bool Ready() { return !Get(health_port_, "/readyz").empty(); }
  std::string Healthz(const std::string& host) { return Get(health_port_, "/healthz", host); }
  std::string Metrics(const std::string& host) { return Get(metrics_port_, "/metrics", host); }
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

// kubectl auth can-i as the operator's ServiceAccount; "no" exits 1.
// `ns` empty: in every namespace.
bool OperatorCan(const std::string& verb, const std::string& resource, const std::string& ns,
                 const std::string& subresource = "") {
  std::vector<std::string> args = {
      "auth", "can-i", verb, resource,
      "--as=system:serviceaccount:" + std::string(kOperatorNamespace) + ":" + kRelease};
  if (!subresource.empty()) args.push_back("--subresource=" + subresource);
  if (ns.empty()) {
    args.emplace_back("--all-namespaces");
  } else {
    args.insert(args.end(), {"-n", ns});
  }
  return Kubectl(args).ok();
}

TEST_CASE("watchNamespaces: the operator runs on a Role per namespace and leaves others alone") {
  auto api = TestEnv::Client();
  const std::string ns = TestEnv::CreateNamespace(*api, "deploy-watched");
  const std::string unwatched = TestEnv::CreateNamespace(*api, "deploy-unwatched");
  ChartInstall release({"--set", "watchNamespaces={" + ns + "}"});

  {  // the release's RBAC: a Role in the watched namespace, nothing cluster-wide
    auto cluster_wide = Kubectl(
        {"get", "clusterrole,clusterrolebinding", kRelease, "--ignore-not-found", "-o", "name"});
    REQUIRE(cluster_wide.ok());
    CHECK(cluster_wide->empty());
    CHECK(OperatorCan("create", "pods", ns));
    CHECK(OperatorCan("update", "processdomains.dpcm.io", ns, "status"));
    CHECK(OperatorCan("watch", "leases.coordination.k8s.io", ns));
    CHECK_FALSE(OperatorCan("create", "pods", unwatched));
    CHECK_FALSE(OperatorCan("list", "pods", unwatched));
    CHECK_FALSE(OperatorCan("list", "processdomains.dpcm.io", unwatched));
    CHECK_FALSE(OperatorCan("list", "pods", ""));  // not cluster-wide either
    CHECK_FALSE(OperatorCan("list", "nodes", ""));
  }

  (void)api->Delete(client::resources::Leases(), kOperatorNamespace, kRelease);
  release.StartPodSimulator();
  // Its servers as the chart binds them (":PORT"): IPv6 and IPv4 alike.
  release.StartOperator({ns}, /*leader_elect=*/true, /*bind_host=*/"");
  REQUIRE_MESSAGE(Eventually([&] { return release.Ready() || !release.OperatorRunning(); }),
                  "operator not ready; " << release.Diagnosis());
  REQUIRE_MESSAGE(release.OperatorRunning(), "operator exited; " << release.Diagnosis());
  CHECK(release.Healthz("127.0.0.1") == "ok");
  CHECK(release.Healthz("::1") == "ok");
  CHECK(release.Metrics("::1").find("rest_client_requests_total") != std::string::npos);
  CHECK(release.Metrics("127.0.0.1").find("rest_client_requests_total") != std::string::npos);

  // A domain in the unwatched namespace, created first: it must stay untouched.
  const std::string name = "scoped";
  auto ignored = api->Create(client::resources::ProcessDomains(), unwatched,
                             testing::OperatorEnv::SampleDomain(name, 2));
  REQUIRE_MESSAGE(ignored.ok(), ignored.status().ToString());

  auto watcher_client = TestEnv::Client();
  DcWatcher watcher(*watcher_client, ns);
  auto created = api->Create(client::resources::ProcessDomains(), ns,
                             testing::OperatorEnv::SampleDomain(name, 3));
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  auto elected = watcher.WaitForNewDc(name, "", 60s);
  REQUIRE_MESSAGE(elected.has_value(), "no DC elected; " << release.Diagnosis());
  REQUIRE(release.KillPodProcess(ns, elected->dc).ok());
  auto moved = watcher.WaitForNewDc(name, elected->dc, 30s);
  REQUIRE_MESSAGE(moved.has_value(), "no failover; " << release.Diagnosis());
  CHECK(Eventually([&] {
    auto domain = api->Get(client::resources::ProcessDomains(), ns, name);
    return domain.ok() && domain->value("/status/activePod"_json_pointer, "") == moved->dc &&
           domain->value("/status/failovers"_json_pointer, 0) >= 1;
  }));
  CHECK_MESSAGE(Eventually([&] { return HasEvent(*api, ns, name, "Promoted"); }),
                release.Diagnosis());

  // By now the operator has long seen everything it watches: the other namespace's
  // domain has no status, no pods, no Lease, no Service and no Event from it.
  auto untouched = api->Get(client::resources::ProcessDomains(), unwatched, name);
  REQUIRE(untouched.ok());
  CHECK_FALSE(untouched->contains("status"));
  client::ListOptions members;
  members.label_selector = "dpcm.io/domain=" + name;
  auto pods = api->List(client::resources::Pods(), unwatched, members);
  REQUIRE(pods.ok());
  CHECK((*pods)["items"].empty());
  CHECK(api->Get(client::resources::Leases(), unwatched, name).status().IsNotFound());
  CHECK(api->Get(client::resources::Services(), unwatched, name + "-dc").status().IsNotFound());
  auto events = api->List(client::resources::Events(), unwatched, client::ListOptions{});
  REQUIRE(events.ok());
  CHECK((*events)["items"].empty());

  for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
  // Only namespaced requests, all allowed: no 403 counted, no Forbidden logged.
  CHECK_MESSAGE(release.Metrics().find("code=\"403\"") == std::string::npos, release.Diagnosis());
  CHECK_MESSAGE(ReadFile(release.OperatorLog()).find("orbidden") == std::string::npos,
                release.Diagnosis());
  release.Uninstall();
  auto roles = Kubectl({"get", "role", kRelease, "-n", ns, "--ignore-not-found", "-o", "name"});
  REQUIRE(roles.ok());
  CHECK(roles->empty());
}

// What a user sees when the chart's Roles do not cover a namespace the operator is told
// to watch: an error naming the resource, the namespace and RBAC, and no readiness.
TEST_CASE("the operator says which list RBAC refused when a watched namespace has no Role") {
  auto api = TestEnv::Client();
  const std::string ns = TestEnv::CreateNamespace(*api, "deploy-granted");
  const std::string forgotten = TestEnv::CreateNamespace(*api, "deploy-forgotten");
  ChartInstall release({"--set", "watchNamespaces={" + ns + "}"});
  release.StartOperator({ns, forgotten}, /*leader_elect=*/false);
  const std::string expected = "list pods in " + forgotten + ": forbidden";
  CHECK_MESSAGE(Eventually([&] {
                  return ReadFile(release.OperatorLog()).find(expected) != std::string::npos;
                }),
                "operator log: " << release.OperatorLog());
  CHECK(ReadFile(release.OperatorLog()).find("grant it by RBAC") != std::string::npos);
  CHECK(release.OperatorRunning());  // it keeps retrying: a Role granted later is picked up
  CHECK_FALSE(release.Ready());
}

}  // namespace
}  // namespace dpcm
