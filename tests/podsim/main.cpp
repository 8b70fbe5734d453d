// dpcm-podsim: plays the kubelet for the local control plane (no kubelet runs there).
//
// Keeps a Node alive (status and node Lease), runs each pod the scheduler bound to it as
// a local process on its own IP (loopback, or in its node's network namespace), and
// reports the pod's status the way a kubelet would. One process is one node; run several
// for several nodes. See pod_simulator.h for what it does and tests/podsim/README.md for
// the flags.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/restconfig/rest_config.h"
#include "tests/podsim/pod_simulator.h"

extern char** environ;

namespace {

constexpr const char* kUsage = R"(Usage: dpcm-podsim [flags]

Plays the kubelet of one node for a control plane without one: registers a Ready
Node, renews its Lease in kube-node-lease and keeps its status Ready; runs every
container of each pod the scheduler bound to it as a local process (command + args, no
shell), all on the pod's own IP, probes them, restarts them, and writes pod status.

Flags:
  --kubeconfig PATH          kubeconfig (default $KUBECONFIG, then in-cluster, ~/.kube/config)
  --namespace NS             watch this namespace; repeatable (default: all namespaces)
  --node-name NAME           the Node to register and run pods of (default dpcm-sim)
  --host-ip A.B.C.D          the Node's InternalIP and the pods' hostIP (default 127.0.0.1)
  --node-status-update-ms N  check the Node's status this often and rewrite it when it is
                             not Ready (default 10000, the kubelet's nodeStatusUpdateFrequency)
  --node-status-report-ms N  rewrite it at least this often (default 300000, the kubelet's
                             nodeStatusReportFrequency)
  --lease-renew-ms N         renew kube-node-lease/<node> this often (default 10000)
  --lease-duration-s N       the node Lease's leaseDurationSeconds (default 40)
  --state-dir DIR            writes <namespace>/<pod>.pid and .log (default $TMPDIR/dpcm-podsim)
  --restart-delay-ms N       first restart delay of an exited container (default 1000);
                             doubles on quick repeated failures up to --max-restart-delay-ms
  --max-restart-delay-ms N   (default 10000)
  --ip-base A.B.C.D          pods get base+1, base+2, ... (default 127.1.0.0)
  --ip-count N               at most base+N (default 65534)
  --max-probe-period-ms N    probes run at least this often (default 1000)
  --max-grace-ms N           cap on a deleted pod's grace period before SIGKILL (default 5000)
  --workers N                reconcile workers (default 4)
  --probe-threads N          probe threads (default 4)
  --kube-api-qps Q           client-side rate limit (default 100; <= 0 disables)
  --kube-api-burst N         (default 200)
  --log-level LEVEL          trace|debug|info|warn|error (default info)
)";

bool ParseInt(const std::string& text, long long& out) {
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), out);
  return error == std::errc() && end == text.data() + text.size();
}

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "dpcm-podsim: " << message << "\n";
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  using dpcm::podsim::SimulatorOptions;
  SimulatorOptions options;
  const char* tmpdir = std::getenv("TMPDIR");
  options.state_dir = std::filesystem::path(tmpdir && *tmpdir ? tmpdir : "/tmp") / "dpcm-podsim";
  std::string kubeconfig;
  std::string log_level = "info";
  double qps = 100;
  long long burst = 200;

  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    }
    if (arg.rfind("--", 0) != 0) Fail("unexpected argument " + arg + "\n" + kUsage);
    std::string value;
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Fail(arg + " needs a value");
    }
    long long number = 0;
    auto integer = [&](long long min) {
      if (!ParseInt(value, number) || number < min) Fail(arg + ": not a valid number: " + value);
      return number;
    };
    if (arg == "--kubeconfig") {
      kubeconfig = value;
    } else if (arg == "--namespace") {
      if (!value.empty()) options.namespaces.push_back(value);
    } else if (arg == "--node-name") {
      options.node.name = value;
    } else if (arg == "--host-ip") {
      options.node.host_ip = value;
    } else if (arg == "--node-status-update-ms") {
      options.node.status_update = std::chrono::milliseconds(integer(100));
    } else if (arg == "--node-status-report-ms") {
      options.node.status_report = std::chrono::milliseconds(integer(100));
    } else if (arg == "--lease-renew-ms") {
      options.node.lease_renew = std::chrono::milliseconds(integer(100));
    } else if (arg == "--lease-duration-s") {
      options.node.lease_duration_seconds = static_cast<int>(integer(1));
    } else if (arg == "--state-dir") {
      options.state_dir = value;
    } else if (arg == "--restart-delay-ms") {
      options.restart_delay = std::chrono::milliseconds(integer(0));
    } else if (arg == "--max-restart-delay-ms") {
      options.max_restart_delay = std::chrono::milliseconds(integer(0));
    } else if (arg == "--ip-base") {
      options.ip_base = value;
    } else if (arg == "--ip-count") {
      options.ip_count = static_cast<uint32_t>(integer(1));
    } else if (arg == "--max-probe-period-ms") {
      options.max_probe_period = std::chrono::milliseconds(integer(10));
    } else if (arg == "--max-grace-ms") {
      options.max_termination_grace = std::chrono::milliseconds(integer(0));
    } else if (arg == "--workers") {
      options.workers = static_cast<int>(integer(1));
    } else if (arg == "--probe-threads") {
      options.probe_threads = static_cast<int>(integer(1));
    } else if (arg == "--kube-api-qps") {
      char* end = nullptr;
      qps = std::strtod(value.c_str(), &end);
      if (end == value.c_str() || *end != '\0') Fail("--kube-api-qps: not a number: " + value);
    } else if (arg == "--kube-api-burst") {
      burst = integer(1);
    } else if (arg == "--log-level") {
      log_level = value;
    } else {
      Fail("unknown flag " + arg + "\n" + kUsage);
    }
  }
  options.max_restart_delay = std::max(options.max_restart_delay, options.restart_delay);

  auto logger = spdlog::stderr_color_mt("podsim");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%L%$ podsim %v");
  spdlog::set_level(spdlog::level::from_str(log_level));
  spdlog::flush_on(spdlog::level::trace);

  // SIGTERM and SIGINT are taken by sigwait() below: block them in every thread (all
  // threads start after this). Children get an empty mask back (SpawnProcess).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  for (char** e = environ; *e != nullptr; ++e) options.base_env.emplace_back(*e);

  auto config = dpcm::restconfig::LoadDefault(kubeconfig);
  if (!config.ok()) Fail("kubeconfig: " + config.status().ToString());
  dpcm::client::ClientOptions client_options;
  client_options.qps = qps;
  client_options.burst = static_cast<int>(burst);
  client_options.request_timeout = std::chrono::seconds(10);
  auto client = dpcm::client::ApiClient::Create(std::move(*config), client_options);
  if (!client.ok()) Fail("client: " + client.status().ToString());
  auto simulator = dpcm::podsim::PodSimulator::Create(**client, options);
  if (!simulator.ok()) Fail(simulator.status().ToString());

  std::stop_source stop;
  std::jthread signal_waiter([&stop, signals] {
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("received {}, stopping", sigabbrev_np(received));
    stop.request_stop();
  });

  const dpcm::Status started = (*simulator)->Start(stop.get_token());
  if (started.ok()) {
    std::mutex mutex;
    std::condition_variable_any stopped;
    std::unique_lock lock(mutex);
    stopped.wait(lock, stop.get_token(), [] { return false; });
  }
  (*simulator)->Shutdown();
  simulator->reset();
  return 0;
}
