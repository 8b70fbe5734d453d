#include "tests/support/operator_env.h"

#include <httplib.h>

#include <filesystem>
#include <stdexcept>
#include <thread>

#include "tests/support/testenv.h"

namespace dpcm::testing {
namespace {

const std::string kBinDir = TestEnv::BinDir();

}  // namespace

OperatorEnv& OperatorEnv::Get() {
  static OperatorEnv env;
  return env;
}

OperatorEnv::OperatorEnv() {
  api_ = TestEnv::Client();
  log_dir_ = TestEnv::Dir() + "/e2e-logs/" + std::to_string(getpid());
  sim_state_dir_ = log_dir_ + "/podsim";
  std::filesystem::create_directories(sim_state_dir_);
  if (Status s = TestEnv::InstallCrd(); !s.ok()) throw std::runtime_error(s.ToString());
  auto nodes = SimulatedNodes::Start(*api_, {.name_prefix = "dpcm-e2e-" + std::to_string(getpid()),
                                             .count = 3,
                                             .state_dir = sim_state_dir_,
                                             .log_dir = log_dir_,
                                             .first_octet = TestEnv::FirstPodOctet(0),
                                             .extra_args = {}});
  if (!nodes.ok()) throw std::runtime_error(nodes.status().ToString());
  nodes_ = std::move(*nodes);
  {
    std::lock_guard lock(mutex_);
    if (Status s = StartOperator(); !s.ok()) throw std::runtime_error(s.ToString());
  }
  supervisor_ = std::jthread([this](const std::stop_token& stop) { Supervise(stop); });
}

OperatorEnv::~OperatorEnv() {
  supervisor_.request_stop();
  if (supervisor_.joinable()) supervisor_.join();
  if (operator_) operator_->Stop();
  std::error_code error;
  std::filesystem::remove(RegistryPath(), error);
  nodes_.reset();
}

std::string OperatorEnv::RegistryPath() const {
  return TestEnv::Dir() + "/operators/" + std::to_string(getpid());
}

Status OperatorEnv::StartOperator() {
  auto started = ManagedProcess::Start(
      {kBinDir + "/dpcm-operator", "--kubeconfig", TestEnv::Kubeconfig(), "--metrics-bind-address",
       "0", "--health-probe-bind-address", "0", "--log-level", "debug",
       // Pods of a node share its loopback here: each agent's role API is on its pod's IP.
       "--agent-image", "dpcm/dpcm-operator:test", "--agent-role-bind-address", "$(POD_IP):8720"},
      log_dir_ + "/operator.log", {});
  if (!started.ok()) return started.status();
  operator_ = std::move(*started);
  std::error_code error;
  std::filesystem::create_directories(TestEnv::Dir() + "/operators", error);
  std::ofstream(RegistryPath(), std::ios::trunc) << "pid=" << operator_->pid() << "\n"
                                                 << "log=" << operator_->log_path() << "\n";
  return Status::Ok();
}

void OperatorEnv::Supervise(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  // A child's exit cannot be awaited beside a stop request: look every 100 ms.
  while (!stop.stop_requested()) {
    stopped_.wait_for(lock, stop, std::chrono::milliseconds(100), [] { return false; });
    if (!stop.stop_requested() && operator_ && !operator_->Running()) (void)StartOperator();
  }
}

Status OperatorEnv::RestartOperator() {
  std::lock_guard lock(mutex_);
  operator_->Stop();
  return StartOperator();
}

pid_t OperatorEnv::OperatorPid() {
  std::lock_guard lock(mutex_);
  return operator_->pid();
}

Result<std::string> OperatorEnv::Kubectl(const std::vector<std::string>& args) {
  return TestEnv::Kubectl(args);
}

nlohmann::json OperatorEnv::SampleContainer() {
  using nlohmann::json;
  return {{"name", "app"},
          {"image", "dpcm/sample-app:latest"},
          {"command", json::array({"dpcm-sample-app"})},
          {"args", json::array({"--port=8080"})}};
}

std::string OperatorEnv::PodLog(const std::string& ns, const std::string& pod) const {
  return nodes_->PodLog(ns, pod);
}

nlohmann::json OperatorEnv::SampleDomain(const std::string& name, int replicas) {
  using nlohmann::json;
  json container = SampleContainer();
  container["readinessProbe"] = {{"httpGet", {{"path", "/healthz"}, {"port", 8080}}},
                                 {"periodSeconds", 1},
                                 {"failureThreshold", 1},
                                 {"timeoutSeconds", 1}};
  return {{"apiVersion", "dpcm.io/v1alpha1"},
          {"kind", "ProcessDomain"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", replicas},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec", {{"containers", json::array({container})}}}}},
            {"service", {{"ports", json::array({{{"name", "app"}, {"port", 8080}}})}}}}}};
}

Status OperatorEnv::KillPodProcess(const std::string& ns, const std::string& pod) {
  return nodes_->KillPodProcess(ns, pod);
}

Status OperatorEnv::PostToApp(const std::string& ns, const std::string& pod,
                              const std::string& path) {
  auto object = api_->Get(client::resources::Pods(), ns, pod);
  if (!object.ok()) return object.status();
  const std::string ip = object->value("/status/podIP"_json_pointer, "");
  if (ip.empty()) return Status::NotFound(pod + " has no IP");
  httplib::Client app(ip, 8080);
  app.set_connection_timeout(2);
  auto response = app.Post(path);
  if (!response || response->status != 200) {
    return Status::Transport("POST " + path + " to " + pod + " failed");
  }
  return Status::Ok();
}

}  // namespace dpcm::testing
