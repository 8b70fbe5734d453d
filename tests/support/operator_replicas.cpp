#include "tests/support/operator_replicas.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "pkg/election/lease_record.h"
#include "tests/support/testenv.h"

namespace dpcm::testing {
namespace {

const std::string kBinDir = TestEnv::BinDir();

// The metric name of an exposition line ("name{...} value" or "name value").
std::string NameOf(const std::string& line) { return line.substr(0, line.find_first_of("{ ")); }

}  // namespace

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

Result<std::string> HttpGet(int port, const std::string& path) {
  httplib::Client http("127.0.0.1", port);
  http.set_connection_timeout(1);
  http.set_read_timeout(5);
  auto response = http.Get(path);
  if (!response) return Status::Transport("GET " + path + " on port " + std::to_string(port));
  if (response->status != 200) {
    return Status::FromHttp(response->status, "", "GET " + path + ": " + response->body);
  }
  return response->body;
}

std::optional<double> SampleValue(const std::string& exposition, const std::string& series) {
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  }
  return std::nullopt;
}

double SumOfSamples(const std::string& exposition, const std::string& name,
                    const std::string& label) {
  std::istringstream lines(exposition);
  double sum = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#' || NameOf(line) != name) continue;
    if (!label.empty() && line.substr(0, line.find('}')).find(label) == std::string::npos) {
      continue;
    }
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

OperatorReplicas::OperatorReplicas(const std::string& prefix, ReplicaTimings timings)
    : timings_(timings), api_(TestEnv::Client()) {
  static int instances = 0;
  ns_ = TestEnv::CreateNamespace(*api_, prefix);
  log_dir_ = TestEnv::Dir() + "/e2e-logs/" + std::to_string(getpid()) + "-" + ns_;
  sim_state_dir_ = log_dir_ + "/podsim";
  std::filesystem::create_directories(sim_state_dir_);
  if (Status s = TestEnv::InstallCrd(); !s.ok()) throw std::runtime_error(s.ToString());
  // Three nodes of their own (pods of this namespace may land on any Ready node, so the
  // nodes run every pod bound to them, whatever its namespace).
  const int first_octet = TestEnv::FirstPodOctet(100 + 3 * instances++);
  auto nodes = SimulatedNodes::Start(
      *api_,
      {.name_prefix = "dpcm-" + ns_,
       .count = 3,
       .state_dir = sim_state_dir_,
       .log_dir = log_dir_,
       .first_octet = first_octet,
       .extra_args = {"--restart-delay-ms", std::to_string(timings_.container_restart_delay_ms),
                      "--max-restart-delay-ms",
                      std::to_string(2 * timings_.container_restart_delay_ms)}});
  if (!nodes.ok()) throw std::runtime_error(nodes.status().ToString());
  nodes_ = std::move(*nodes);
}

OperatorReplicas::~OperatorReplicas() {
  for (auto& replica : replicas_) {
    if (replica.process) replica.process->Stop();
  }
  nodes_.reset();
  // Its domains must not become work for operators of later tests that watch every
  // namespace: the namespace controller removes them with the namespace.
  (void)api_->Delete(client::resources::Namespaces(), "", ns_);
}

Status OperatorReplicas::Start(int index) {
  if (index < 0) return Status::Invalid("negative replica index");
  if (static_cast<size_t>(index) >= replicas_.size()) replicas_.resize(index + 1);
  Replica& replica = replicas_[index];
  if (replica.process && replica.process->Running()) {
    return Status::Invalid("replica " + std::to_string(index) + " is running");
  }
  replica.metrics_port = FreePort();
  replica.health_port = FreePort();
  auto started =
      ManagedProcess::Start({kBinDir + "/dpcm-operator",
                             "--kubeconfig",
                             TestEnv::Kubeconfig(),
                             "--namespace",
                             ns_,
                             "--leader-elect",
                             "--leader-election-namespace",
                             ns_,
                             "--leader-election-id",
                             kLeaseName,
                             "--leader-election-lease-duration",
                             std::to_string(timings_.lease_duration),
                             "--leader-election-renew-deadline",
                             std::to_string(timings_.renew_deadline),
                             "--leader-election-retry-period",
                             std::to_string(timings_.retry_period),
                             "--metrics-bind-address",
                             "127.0.0.1:" + std::to_string(replica.metrics_port),
                             "--health-probe-bind-address",
                             "127.0.0.1:" + std::to_string(replica.health_port),
                             "--log-level",
                             "debug"},
                            log_dir_ + "/operator-" + std::to_string(index) + ".log", {});
  if (!started.ok()) return started.status();
  replica.process = std::move(*started);
  return Status::Ok();
}

int OperatorReplicas::Leader() {
  for (size_t i = 0; i < replicas_.size(); ++i) {
    if (!replicas_[i].process || !replicas_[i].process->Running()) continue;
    auto metrics = HttpGet(replicas_[i].metrics_port, "/metrics");
    if (!metrics.ok()) continue;
    if (SampleValue(*metrics, "leader_election_master_status{name=\"" + std::string(kLeaseName) +
                                  "\"}") == 1.0) {
      return static_cast<int>(i);
    }
  }
  return -1;
}

std::string OperatorReplicas::LeaseHolder() {
  auto lease = api_->Get(client::resources::Leases(), ns_, kLeaseName);
  if (!lease.ok()) return "<absent>";
  return lease->value("/spec/holderIdentity"_json_pointer, "");
}

std::optional<std::chrono::system_clock::time_point> OperatorReplicas::LeaseAcquireTime() {
  auto lease = api_->Get(client::resources::Leases(), ns_, kLeaseName);
  if (!lease.ok()) return std::nullopt;
  return election::ParseTime(lease->value("/spec/acquireTime"_json_pointer, ""));
}

double OperatorReplicas::ReconcileCount(int index) {
  auto metrics = HttpGet(replicas_.at(index).metrics_port, "/metrics");
  if (!metrics.ok()) return -1;
  return SumOfSamples(*metrics, "controller_runtime_reconcile_total");
}

Status OperatorReplicas::KillPodProcess(const std::string& pod) {
  return nodes_->KillPodProcess(ns_, pod);
}

std::string OperatorReplicas::PodLog(const std::string& pod) const {
  return nodes_->PodLog(ns_, pod);
}

}  // namespace dpcm::testing
