// kubectl dpcm against the real API server and operator: status, why, check, pause and resume on a
// live domain, through a failover, and on a domain broken by hand.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/e2e_scenario.h"
#include "tests/support/temp_dir.h"

extern char** environ;  // NOLINT(readability-redundant-declaration): for posix_spawnp

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::OperatorEnv;
using testing::TestEnv;
using testing::e2e::Eventually;
using testing::e2e::Scenario;

struct PluginRun {
  int exit = -1;
  std::string out;
  std::string err;
};

std::string ReadAll(int fd) {
  std::string text;
  std::array<char, 4096> buffer{};
  for (ssize_t n; (n = read(fd, buffer.data(), buffer.size())) > 0;) {
    text.append(buffer.data(), static_cast<size_t>(n));
  }
  return text;
}

// Runs the built kubectl-dpcm with `args` (no shell); returns its exit code and output.
PluginRun Plugin(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {TestEnv::BinDir() + "/kubectl-dpcm"};
  argv.insert(argv.end(), args.begin(), args.end());
  std::array<int, 2> out_pipe{};
  std::array<int, 2> err_pipe{};
  REQUIRE(pipe2(out_pipe.data(), O_CLOEXEC) == 0);
  REQUIRE(pipe2(err_pipe.data(), O_CLOEXEC) == 0);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> raw;
  raw.reserve(argv.size() + 1);
  for (auto& arg : argv) raw.push_back(arg.data());
  raw.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, raw[0], &actions, nullptr, raw.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  PluginRun run;
  if (rc == 0) {
    run.out = ReadAll(out_pipe[0]);
    run.err = ReadAll(err_pipe[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    run.exit = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  close(out_pipe[0]);
  close(err_pipe[0]);
  REQUIRE_MESSAGE(rc == 0, "cannot run " << argv[0]);
  return run;
}

// The plugin as the test world's admin, in namespace `ns`.
PluginRun Admin(const std::string& ns, std::vector<std::string> args) {
  args.insert(args.end(), {"--kubeconfig", TestEnv::Kubeconfig(), "-n", ns});
  return Plugin(args);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("kubectl dpcm: status, why and check on a live domain, through a failover and a pause") {
  Scenario s;
  s.CreateDomain("web", 3);
  const std::string dc = s.WaitRunning("web", 3);
  s.CheckLeaseMatches("web", dc);

  PluginRun status = Admin(s.ns, {"status"});
  REQUIRE_MESSAGE(status.exit == 0, status.err);
  CHECK(Contains(status.out, "Running"));
  for (const char* member : {"web-0", "web-1", "web-2"}) CHECK(Contains(status.out, member));
  // The check waits for the endpoint controller to point web-dc at the DC.
  PluginRun check;
  CHECK_MESSAGE(Eventually([&] { return (check = Admin(s.ns, {"check"})).exit == 0; }),
                check.out << check.err);
  CHECK(Contains(check.out, "No findings in 1 domain(s)."));

  // A failover: the old DC's process is killed.
  REQUIRE(s.env.KillPodProcess(s.ns, dc).ok());
  auto change = s.watcher.WaitForNewDc("web", dc, 30s);
  REQUIRE(change.has_value());
  const std::string new_dc = change->dc;
  REQUIRE(Eventually([&] {
    const Json d = s.Domain("web");
    return d.value("/status/phase"_json_pointer, "") == "Running" &&
           d.value("/status/ready"_json_pointer, "") == "3/3" &&
           d.value("/status/activePod"_json_pointer, "") == new_dc &&
           s.Events("web", "Promoted").size() == 1;
  }));
  status = Admin(s.ns, {"status", "web"});
  REQUIRE_MESSAGE(status.exit == 0, status.err);
  MESSAGE("kubectl dpcm status web:\n" << status.out);
  CHECK(Contains(status.out, new_dc));
  // kubectl itself finds the plugin in PATH, as installed by the README's steps.
  auto via_kubectl =
      testing::RunCommand({"env", TestEnv::PathWithBinDir(), "kubectl", "dpcm", "status", "web",
                           "-n", s.ns, "--kubeconfig", TestEnv::Kubeconfig()});
  REQUIRE_MESSAGE(via_kubectl.ok(), via_kubectl.status().ToString());
  CHECK(via_kubectl->rfind("DOMAIN   PHASE", 0) == 0);  // same screen (ages may tick)
  CHECK(Contains(*via_kubectl, "web      web-2"));
  PluginRun json = Admin(s.ns, {"status", "web", "-o", "json"});
  REQUIRE(json.exit == 0);
  const Json parsed = Json::parse(json.out);
  CHECK(parsed["domains"][0]["dc"] == new_dc);
  CHECK(parsed["domains"][0]["failovers"] == 1);
  CHECK(parsed["domains"][0]["members"].size() == 3);

  PluginRun why = Admin(s.ns, {"why", "web"});
  REQUIRE_MESSAGE(why.exit == 0, why.err);
  MESSAGE("kubectl dpcm why web:\n" << why.out);
  CHECK(Contains(why.out, "FailingOver"));
  CHECK(Contains(why.out, new_dc + " is DC at epoch"));
  const Json why_json = Json::parse(Admin(s.ns, {"why", "web", "-o", "json"}).out);
  REQUIRE(why_json["events"].size() >= 2);
  CHECK(why_json["events"][0]["reason"] == "Promoted");  // newest first
  CHECK(why_json["dc"] == new_dc);
  if (!why_json["lastFailover"].is_null()) {  // the flight recorder, where the operator has it
    CHECK(why_json["lastFailover"]["to"] == new_dc);
    CHECK(why_json["lastFailover"]["from"] == dc);
    CHECK(Contains(why.out, "labeled"));
  }
  CHECK_MESSAGE(Eventually([&] { return (check = Admin(s.ns, {"check"})).exit == 0; }),
                check.out << check.err);

  // pause and resume write spec.paused; the operator reports the pause.
  PluginRun paused = Admin(s.ns, {"pause", "web"});
  REQUIRE_MESSAGE(paused.exit == 0, paused.err);
  CHECK(paused.out == "processdomain.dpcm.io/web paused\n");
  CHECK(s.Domain("web").value("/spec/paused"_json_pointer, false));
  CHECK(Eventually(
      [&] { return s.Domain("web").value("/status/phase"_json_pointer, "") == "Paused"; }));
  CHECK(Contains(Admin(s.ns, {"status"}).out, "Paused"));
  PluginRun resumed = Admin(s.ns, {"resume", "web", "-o", "json"});
  REQUIRE_MESSAGE(resumed.exit == 0, resumed.err);
  CHECK(Json::parse(resumed.out)["paused"] == false);
  CHECK(Eventually(
      [&] { return s.Domain("web").value("/status/phase"_json_pointer, "") == "Running"; }));
  CHECK(Admin(s.ns, {"check"}).exit == 0);
}

TEST_CASE("kubectl dpcm check: a second pod labeled dc by hand is named, exit code 1") {
  OperatorEnv& env = OperatorEnv::Get();
  client::ApiClient& api = env.api();
  // Its own namespace, away from any DC watcher: two DCs are what this test makes.
  const std::string ns = TestEnv::CreateNamespace(api, "e2e-broken");
  Json domain = OperatorEnv::SampleDomain("broken", 2);
  REQUIRE(api.Create(client::resources::ProcessDomains(), ns, domain).ok());
  std::string dc;
  REQUIRE(Eventually(
      [&] {
        auto d = api.Get(client::resources::ProcessDomains(), ns, "broken");
        if (!d.ok() || d->value("/status/phase"_json_pointer, "") != "Running") return false;
        dc = d->value("/status/activePod"_json_pointer, "");
        return d->value("/status/ready"_json_pointer, "") == "2/2";
      },
      60s));
  PluginRun check;
  CHECK_MESSAGE(Eventually([&] { return (check = Admin(ns, {"check"})).exit == 0; }),
                check.out << check.err);
  const std::string other = dc == "broken-0" ? "broken-1" : "broken-0";
  // Paused, the operator leaves the labels alone (else it would fence the second DC).
  REQUIRE(Admin(ns, {"pause", "broken"}).exit == 0);
  REQUIRE(Eventually([&] {
    auto d = api.Get(client::resources::ProcessDomains(), ns, "broken");
    return d.ok() && d->value("/status/phase"_json_pointer, "") == "Paused";
  }));
  REQUIRE(
      TestEnv::Kubectl({"label", "pod", other, "-n", ns, "dpcm.io/role=dc", "--overwrite"}).ok());
  CHECK(Eventually([&] { return (check = Admin(ns, {"check"})).exit == 1; }));
  MESSAGE("kubectl dpcm check on the broken domain:\n" << check.out);
  CHECK(Contains(check.out, "one-dc"));
  CHECK(Contains(check.out, "2 pods labeled dpcm.io/role=dc"));
  CHECK(Contains(check.out, other + " is labeled dc but the Lease holder is " + dc));
  // The Service follows the labels: its endpoints name the second pod too.
  CHECK(Eventually([&] { return Contains(Admin(ns, {"check"}).out, "routes to"); }));
  const Json findings = Json::parse(Admin(ns, {"check", "-o", "json"}).out);
  CHECK(findings["domainsChecked"] == 1);
  CHECK(findings["findings"][0]["rule"] == "one-dc");
  // -A sees it too, among every namespace's domains.
  CHECK(Plugin({"check", "-A", "--kubeconfig", TestEnv::Kubeconfig()}).exit == 1);

  // Put right by hand and resumed: clean again.
  REQUIRE(
      TestEnv::Kubectl({"label", "pod", other, "-n", ns, "dpcm.io/role=pc", "--overwrite"}).ok());
  REQUIRE(Admin(ns, {"resume", "broken"}).exit == 0);
  CHECK_MESSAGE(Eventually([&] { return (check = Admin(ns, {"check"})).exit == 0; }),
                check.out << check.err);
  (void)api.Delete(client::resources::ProcessDomains(), ns, "broken");
}

TEST_CASE("kubectl dpcm: clear errors and non-zero exits, and --help for each verb") {
  OperatorEnv::Get();  // the CRD is installed
  const std::string ns = TestEnv::CreateNamespace(OperatorEnv::Get().api(), "e2e-errors");
  PluginRun missing = Admin(ns, {"why", "nosuch"});
  CHECK(missing.exit == 2);
  CHECK(missing.err == "error: ProcessDomain \"nosuch\" in namespace \"" + ns + "\" not found\n");
  CHECK(Admin(ns, {"pause", "nosuch"}).exit == 2);
  CHECK(Admin(ns, {"status"}).out == "No ProcessDomains found.\n");

  PluginRun forbidden =
      Plugin({"status", "--kubeconfig", TestEnv::Kubeconfig("kubeconfig-restricted"), "-n", ns});
  CHECK(forbidden.exit == 2);
  CHECK(Contains(forbidden.err, "error: forbidden: "));
  CHECK(Contains(forbidden.err, "cannot list resource \"processdomains\""));

  // A kubeconfig naming a port nobody listens on.
  testing::TempDir dir;
  const std::string kubeconfig = dir.Write("kubeconfig", R"(apiVersion: v1
kind: Config
clusters: [{name: gone, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: gone, context: {cluster: gone, user: u}}]
current-context: gone
)");
  PluginRun unreachable = Plugin({"check", "--kubeconfig", kubeconfig});
  CHECK(unreachable.exit == 2);
  CHECK(Contains(unreachable.err, "error: cannot reach the API server at https://127.0.0.1:9"));
  PluginRun bad_context = Plugin({"status", "--kubeconfig", kubeconfig, "--context", "nope"});
  CHECK(bad_context.exit == 2);
  CHECK(Contains(bad_context.err, "context \"nope\" not found"));

  for (const char* verb : {"status", "why", "check", "pause", "resume"}) {
    PluginRun help = Plugin({verb, "--help"});
    CHECK(help.exit == 0);
    CHECK(Contains(help.out, std::string("Usage: kubectl dpcm ") + verb));
  }
  CHECK(Plugin({"--help"}).exit == 0);
  PluginRun unknown = Plugin({"switchover", "web"});
  CHECK(unknown.exit == 2);
  CHECK(Contains(unknown.err, "unknown command \"switchover\""));
}

}  // namespace
}  // namespace dpcm
