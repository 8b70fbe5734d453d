// dpcm-bench-rss: the resident memory of the shipped binaries (issues 11 and 12).
//
// Prints VmRSS, RssAnon, RssFile and threads from /proc/PID/status for
//   - dpcm-operator idle: caches synced, no ProcessDomains (target <= 12 MiB);
//   - dpcm-agent --members=false after 50 health checks, one role hook and 5 waiting
//     long-polls (<= 5 MiB): the agent that never talks to the API server;
//   - dpcm-agent as the operator runs it, following its ProcessDomain through the API server
//     over TLS (list, then a watch left open), under the same load (<= 5 MiB).
// Each figure is taken once the RSS stayed within 50 KiB for 3 s. Needs the local control
// plane (hack/bench-rss.sh starts it). Not a test: figures only.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/client/resource.h"
#include "tests/support/operator_env.h"
#include "tests/support/process.h"
#include "tests/support/testenv.h"

namespace {

using dpcm::testing::ManagedProcess;
using dpcm::testing::TestEnv;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Ends the run: thrown, so that the processes started so far are stopped on the way out
// (std::exit would skip their destructors and leave an operator running).
[[noreturn]] void Fail(const std::string& message) { throw std::runtime_error(message); }

struct ProcStat {
  double rss_mib = NAN;
  double anon_mib = NAN;
  double file_mib = NAN;
  int threads = 0;
  bool shared_libc = false;  // a dynamically linked process maps libc.so
};

ProcStat ReadProc(pid_t pid) {
  ProcStat out;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    std::istringstream fields(line);
    std::string key;
    double kib = 0;
    fields >> key >> kib;
    if (key == "VmRSS:") out.rss_mib = kib / 1024;
    if (key == "RssAnon:") out.anon_mib = kib / 1024;
    if (key == "RssFile:") out.file_mib = kib / 1024;
    if (key == "Threads:") out.threads = static_cast<int>(kib);
  }
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/libc.so") != std::string::npos) out.shared_libc = true;
  }
  return out;
}

// Waits until the RSS stayed within 50 KiB for 3 s (at most 30 s) and returns it.
ProcStat StableRss(pid_t pid) {
  const auto deadline = Clock::now() + 30s;
  auto stable_since = Clock::now();
  ProcStat last = ReadProc(pid);
  while (Clock::now() < deadline && Clock::now() - stable_since < 3s) {
    std::this_thread::sleep_for(250ms);
    const ProcStat now = ReadProc(pid);
    if (std::abs(now.rss_mib - last.rss_mib) > 0.05) stable_since = Clock::now();
    last = now;
  }
  return last;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Fail("no free port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

// Polls GET path on 127.0.0.1:port until it answers `status` (at most 60 s).
void AwaitHttp(int port, const std::string& path, int status, ManagedProcess& process) {
  const auto deadline = Clock::now() + 60s;
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(1);
  while (Clock::now() < deadline) {
    if (!process.Running()) Fail("exited early; log: " + process.log_path());
    auto response = client.Get(path);
    if (response && response->status == status) return;
    std::this_thread::sleep_for(100ms);
  }
  Fail(path + " never answered " + std::to_string(status) + "; log: " + process.log_path());
}

// Waits until GET /members on the agent says synced: the API server answered its list of
// the ProcessDomain, over TLS (at most 60 s).
void AwaitMembersFollowed(int port, ManagedProcess& agent) {
  const auto deadline = Clock::now() + 60s;
  httplib::Client client("127.0.0.1", port);
  while (Clock::now() < deadline) {
    if (!agent.Running()) Fail("the agent exited early; log: " + agent.log_path());
    auto response = client.Get("/members");
    if (response && response->status == 200 &&
        nlohmann::json::parse(response->body, nullptr, false).value("synced", false)) {
      return;
    }
    std::this_thread::sleep_for(100ms);
  }
  Fail("the agent never followed its domain; log: " + agent.log_path());
}

std::unique_ptr<ManagedProcess> Start(const std::vector<std::string>& argv,
                                      const std::string& log) {
  auto process = ManagedProcess::Start(argv, TestEnv::Dir() + "/" + log, {});
  if (!process.ok()) Fail(argv[0] + ": " + process.status().ToString());
  return std::move(*process);
}

// The agent's load: 50 health checks, one role hook, then 5 long-polls left waiting while
// the RSS is read.
ProcStat UnderAgentLoad(ManagedProcess& agent, int port, int role_port) {
  AwaitHttp(port, "/healthz", 200, agent);
  httplib::Client client("127.0.0.1", port);
  for (int i = 0; i < 50; ++i) {
    auto r = client.Get("/healthz");
    if (!r || r->status != 200) Fail("health check failed; log: " + agent.log_path());
  }
  auto hook =
      client.Post("/dpcm/role", R"({"domain":"bench","pod":"bench-0","role":"dc","epoch":1})",
                  "application/json");
  if (!hook || hook->status != 200) Fail("role hook failed; log: " + agent.log_path());
  std::vector<std::thread> polls;
  for (int i = 0; i < 5; ++i) {
    polls.emplace_back([role_port] {
      httplib::Client poll("127.0.0.1", role_port);
      poll.set_read_timeout(120);
      poll.Get("/role?after=1000&wait=60s");  // ends when the agent stops
    });
  }
  std::this_thread::sleep_for(500ms);  // the long-polls are waiting in the agent
  const ProcStat stat = StableRss(agent.pid());
  agent.Stop();
  for (auto& t : polls) t.join();
  return stat;
}

void Print(const std::string& name, const std::string& target, const ProcStat& s) {
  std::printf("%-52s %-7s %7.2f %7.2f %7.2f %7d %8s\n", name.c_str(),
              s.shared_libc ? "shared" : "static", s.rss_mib, s.anon_mib, s.file_mib, s.threads,
              target.c_str());
  std::fflush(stdout);
}

}  // namespace

int Run() {
  signal(SIGPIPE, SIG_IGN);
  if (!TestEnv::Ready()) Fail("the control plane is not up (hack/bench-rss.sh starts it)");
  // The operator waits for its ProcessDomain cache, the agent follows its ProcessDomain.
  if (dpcm::Status crd = TestEnv::InstallCrd(); !crd.ok()) Fail(crd.ToString());
  const std::string bin = TestEnv::BinDir();
  const std::string kubeconfig = TestEnv::Kubeconfig();
  std::printf("%-52s %-7s %7s %7s %7s %7s %8s\n", "process (MiB)", "link", "RSS", "anon", "file",
              "threads", "target");

  {
    const int metrics = FreePort();
    const int health = FreePort();
    auto op = Start({bin + "/dpcm-operator", "--kubeconfig", kubeconfig, "--metrics-bind-address",
                     "127.0.0.1:" + std::to_string(metrics), "--health-probe-bind-address",
                     "127.0.0.1:" + std::to_string(health)},
                    "bench-rss-operator.log");
    AwaitHttp(health, "/readyz", 200, *op);
    Print("dpcm-operator idle (caches synced)", "<= 12", StableRss(op->pid()));
  }
  // The agent's load-bearing flags, as the operator injects them (cmd/dpcm-agent).
  const auto agent_argv = [&](int port, int role_port) {
    return std::vector<std::string>{bin + "/dpcm-agent",
                                    "--domain",
                                    "bench",
                                    "--pod",
                                    "bench-0",
                                    "--namespace",
                                    "default",
                                    "--bind-address",
                                    "127.0.0.1",
                                    "--port",
                                    std::to_string(port),
                                    "--role-bind-address",
                                    "127.0.0.1:" + std::to_string(role_port),
                                    "--health-command",
                                    R"({"command":["true"]})",
                                    "--role-hook-command",
                                    R"({"command":["true"]})"};
  };
  {
    const int port = FreePort();
    const int role_port = FreePort();
    auto argv = agent_argv(port, role_port);
    argv.emplace_back("--members=false");
    auto agent = Start(argv, "bench-rss-agent.log");
    Print("dpcm-agent --members=false (50 checks, 1 hook, 5 polls)", "<= 5",
          UnderAgentLoad(*agent, port, role_port));
  }
  {
    const int port = FreePort();
    const int role_port = FreePort();
    // The domain it follows (no operator runs now: it stays as created, without pods).
    auto admin = TestEnv::Client();
    auto created = admin->Create(dpcm::client::resources::ProcessDomains(), "default",
                                 dpcm::testing::OperatorEnv::SampleDomain("bench", 1));
    if (!created.ok() && !created.status().IsAlreadyExists()) Fail(created.status().ToString());
    auto argv = agent_argv(port, role_port);
    argv.insert(argv.end(), {"--kubeconfig", kubeconfig});
    auto agent = Start(argv, "bench-rss-agent-tls.log");
    AwaitMembersFollowed(port, *agent);
    Print("dpcm-agent following its domain over TLS, same load", "<= 5",
          UnderAgentLoad(*agent, port, role_port));
    (void)admin->Delete(dpcm::client::resources::ProcessDomains(), "default", "bench");
  }
  return 0;
}

int main() {
  try {
    return Run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "dpcm-bench-rss: %s\n", e.what());
    return 1;
  }
}
