// The images hack/image.sh builds, run with podman (crun) against the real control plane:
// the operator from its image fails the shipped sample domain over, and dpcm-agent from the
// same image serves the sample app from its own image as a sidecar.
#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
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
using testing::TempDir;
using testing::TestEnv;

constexpr const char* kSourceDir = DPCM_SOURCE_DIR;

std::string SourcePath(const std::string& relative) {
  return std::string(kSourceDir) + "/" + relative;
}
std::string ImageScript() { return SourcePath("hack/image.sh"); }

template <typename Condition>
bool Eventually(Condition condition, std::chrono::milliseconds timeout) {
  return testing::Eventually(condition, timeout, 50ms);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The images `hack/image.sh build` made (the names manifests/ and the chart use).
struct Images {
  std::string operator_image;
  std::string sample_app;
};
Images ImageNames() {
  auto names = testing::RunCommand({ImageScript(), "names"});
  REQUIRE_MESSAGE(names.ok(), names.status().ToString());
  std::istringstream lines(*names);
  Images images;
  std::getline(lines, images.operator_image);
  std::getline(lines, images.sample_app);
  REQUIRE(!images.sample_app.empty());
  return images;
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

// `hack/image.sh run PODMAN-OPTIONS... IMAGE ARGS...` as a child (its pid is podman's, which
// passes SIGTERM on to the container), output in `log`.
std::unique_ptr<ManagedProcess> RunImage(const std::vector<std::string>& args,
                                         const std::string& log) {
  std::vector<std::string> argv = {ImageScript(), "run"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::filesystem::remove(log);
  auto started = ManagedProcess::Start(argv, log, {});
  REQUIRE_MESSAGE(started.ok(), started.status().ToString());
  return std::move(*started);
}

// GET http://127.0.0.1:port/path; the status (0 when nothing answered) and body.
std::pair<int, std::string> Get(int port, const std::string& path) {
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(1);
  auto response = http.Get(path);
  return response ? std::pair{response->status, response->body} : std::pair{0, std::string()};
}

std::string LogDir() {
  std::string dir = TestEnv::Dir() + "/e2e-logs/" + std::to_string(getpid());
  std::filesystem::create_directories(dir + "/podsim");
  return dir;
}

TEST_CASE("the operator from its image fails the sample domain of manifests/samples over") {
  const Images images = ImageNames();
  auto api = TestEnv::Client();
  REQUIRE(TestEnv::InstallCrd().ok());
  const std::string ns = TestEnv::CreateNamespace(*api, "image");
  const std::string log_dir = LogDir();

  // The samples as a user applies them: accepted by the API server as they are.
  auto dry_run = TestEnv::Kubectl(
      {"apply", "--dry-run=server", "-n", ns, "-f", SourcePath("manifests/samples")});
  REQUIRE_MESSAGE(dry_run.ok(), dry_run.status().ToString());
  const std::string sample = ReadFile(SourcePath("manifests/samples/processdomain-sample.yaml"));
  CHECK_MESSAGE(
      sample.find("image: " + images.sample_app) != std::string::npos,
      "the sample domain must name the image hack/image.sh builds: " << images.sample_app);

  // In-cluster credentials as a pod gets them: the token, the CA and the namespace in the
  // service-account directory, the API server in KUBERNETES_SERVICE_HOST/PORT. Readable by
  // the image's user 65532.
  TempDir account;
  account.Write("token", ReadFile(TestEnv::Dir() + "/admin.token"));
  account.Write("ca.crt", ReadFile(TestEnv::Dir() + "/pki/ca.crt"));
  account.Write("namespace", ns);
  std::string api_port = ReadFile(TestEnv::Dir() + "/apiserver.port");
  api_port.erase(api_port.find_last_not_of(" \n") + 1);

  auto nodes = SimulatedNodes::Start(*api, {.name_prefix = "dpcm-image-" + std::to_string(getpid()),
                                            .count = 3,
                                            .state_dir = log_dir + "/podsim",
                                            .log_dir = log_dir,
                                            .first_octet = TestEnv::FirstPodOctet(0),
                                            .extra_args = {}});
  REQUIRE_MESSAGE(nodes.ok(), nodes.status().ToString());
  const std::unique_ptr<SimulatedNodes> world = std::move(*nodes);

  const int health_port = FreePort();
  const int metrics_port = FreePort();
  const auto started = std::chrono::steady_clock::now();
  auto operator_process =
      RunImage({"-v", account.path().string() + ":/var/run/secrets/kubernetes.io/serviceaccount:ro",
                "-e", "KUBERNETES_SERVICE_HOST=127.0.0.1", "-e",
                "KUBERNETES_SERVICE_PORT=" + api_port, images.operator_image, "--namespace", ns,
                "--health-probe-bind-address", "127.0.0.1:" + std::to_string(health_port),
                "--metrics-bind-address", "127.0.0.1:" + std::to_string(metrics_port)},
               log_dir + "/operator-image.log");
  REQUIRE_MESSAGE(
      Eventually(
          [&] { return Get(health_port, "/readyz").first == 200 || !operator_process->Running(); },
          60s),
      "operator from the image not ready; log: " << operator_process->log_path());
  REQUIRE_MESSAGE(operator_process->Running(),
                  "operator from the image exited; log: " << operator_process->log_path());
  MESSAGE("operator container ready after "
          << testing::Millis(std::chrono::steady_clock::now() - started) << " ms");

  DcWatcher watcher(*api, ns);
  auto applied = TestEnv::Kubectl(
      {"apply", "-n", ns, "-f", SourcePath("manifests/samples/processdomain-sample.yaml")});
  REQUIRE_MESSAGE(applied.ok(), applied.status().ToString());
  auto first = watcher.WaitForNewDc("sample", "", 60s);
  REQUIRE_MESSAGE(first.has_value(), "no DC; operator log: " << operator_process->log_path());
  const std::string dc = first->dc;
  auto epoch = [&] {
    auto domain = api->Get(client::resources::ProcessDomains(), ns, "sample");
    return domain.ok() ? domain->value("/status/epoch"_json_pointer, int64_t{0}) : int64_t{0};
  };
  REQUIRE(Eventually([&] { return epoch() >= 1; }, 30s));
  const int64_t epoch_before = epoch();
  // The role hook reached the app at its pod IP (the address it took from the downward
  // API's POD_IP and bound).
  CHECK_MESSAGE(
      Eventually([&] { return world->PodLog(ns, dc).find(R"("role":"dc")") != std::string::npos; },
                 30s),
      "the DC's app never heard its role: " << world->PodLog(ns, dc));

  REQUIRE(world->KillPodProcess(ns, dc).ok());
  auto next = watcher.WaitForNewDc("sample", dc, 30s);
  REQUIRE_MESSAGE(next.has_value(), "no new DC after the DC's process was killed; operator log: "
                                        << operator_process->log_path());
  CHECK(next->dc != dc);
  CHECK(Eventually([&] { return epoch() > epoch_before; }, 30s));
  const auto violations = watcher.Violations();
  CHECK_MESSAGE(violations.empty(), (violations.empty() ? "" : violations.front()));
  MESSAGE("failover from the image: " << dc << " -> " << next->dc << ", epoch " << epoch_before
                                      << " -> " << epoch());

  // SIGTERM reaches the operator through podman: it exits cleanly, and so does podman.
  CHECK(operator_process->Stop(10000) == 0);
  (void)api->Delete(client::resources::Namespaces(), "", ns);
}

TEST_CASE("dpcm-agent from the operator image is the sidecar of the sample app from its image") {
  const Images images = ImageNames();
  const std::string log_dir = LogDir();
  const int app_port = FreePort();
  const int agent_port = FreePort();
  const int role_port = FreePort();
  const std::string role_api = "127.0.0.1:" + std::to_string(role_port);
  // A pod's two containers share its network: here both share the host's.
  auto app = RunImage({images.sample_app, "--port=" + std::to_string(app_port), "--bind=127.0.0.1",
                       "--name=smoke-0", "--role-api", role_api},
                      log_dir + "/sample-app-image.log");
  auto agent = RunImage(
      {"--entrypoint", "/usr/local/bin/dpcm-agent", images.operator_image, "--domain", "smoke",
       "--pod", "smoke-0", "--namespace", "default", "--pod-ip", "127.0.0.1", "--bind-address",
       "127.0.0.1", "--port", std::to_string(agent_port), "--role-bind-address", role_api,
       "--health-command", R"({"command":["/bin/sh","-c","test \"$DPCM_POD\" = smoke-0"]})"},
      log_dir + "/agent-image.log");

  // The agent runs the health command inside its image (Debian's /bin/sh).
  CHECK_MESSAGE(Eventually([&] { return Get(agent_port, "/healthz").first == 200; }, 60s),
                "agent from the image not healthy; log: " << agent->log_path());
  REQUIRE_MESSAGE(Eventually([&] { return Get(app_port, "/healthz").first == 200; }, 60s),
                  "sample app from the image not healthy; log: " << app->log_path());

  // The operator's role hook, as it POSTs it to the agent.
  httplib::Client agent_http("127.0.0.1", agent_port);
  agent_http.set_read_timeout(10);
  const Json order = {{"domain", "smoke"}, {"pod", "smoke-0"}, {"role", "dc"}, {"epoch", 3}};
  auto told = agent_http.Post("/dpcm/role", order.dump(), "application/json");
  REQUIRE(told);
  CHECK_MESSAGE(told->status == 200, told->body);
  // The app (long-polling the agent's role API) takes the role.
  CHECK_MESSAGE(Eventually(
                    [&] {
                      auto [code, body] = Get(app_port, "/role");
                      if (code != 200) return false;
                      const Json role = Json::parse(body, nullptr, false);
                      return role.is_object() && role.value("role", "") == "dc" &&
                             role.value("epoch", 0) == 3;
                    },
                    10s),
                "the app never took the agent's role; log: " << app->log_path());

  // SIGTERM through podman stops the app with exit code 0, and the agent too: a role
  // long-poll still waiting in it is answered at the stop, not held for its 30 s wait (it
  // was, before the fix, past a pod's default grace period).
  CHECK(app->Stop(10000) == 0);
  const auto stopping = std::chrono::steady_clock::now();
  const int agent_exit = agent->Stop(10000);
  CHECK_MESSAGE(agent_exit == 0, "dpcm-agent did not exit within 10 s of SIGTERM (exit "
                                     << agent_exit << " after "
                                     << testing::Millis(std::chrono::steady_clock::now() - stopping)
                                     << " ms): a role long-poll holds its shutdown");
}

}  // namespace
}  // namespace dpcm
