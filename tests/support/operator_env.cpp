#include "tests/support/operator_env.h"

#include <httplib.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
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
  auto podsim = ManagedProcess::Start(
      {kBinDir + "/dpcm-podsim", "--kubeconfig", TestEnv::Kubeconfig(), "--state-dir",
       sim_state_dir_, "--node-name", "dpcm-e2e-" + std::to_string(getpid()), "--ip-base",
       "127." + std::to_string(2 + getpid() % 200) + ".0.0"},
      log_dir_ + "/podsim.log", {TestEnv::PathWithBinDir()});
  if (!podsim.ok()) throw std::runtime_error(podsim.status().ToString());
  podsim_ = std::move(*podsim);
  if (Status s = StartOperator(); !s.ok()) throw std::runtime_error(s.ToString());
}

OperatorEnv::~OperatorEnv() {
  if (operator_) operator_->Stop();
  if (podsim_) podsim_->Stop();
}

Status OperatorEnv::StartOperator() {
  auto started = ManagedProcess::Start(
      {kBinDir + "/dpcm-operator", "--kubeconfig", TestEnv::Kubeconfig(), "--metrics-bind-address",
       "0", "--health-probe-bind-address", "0", "--log-level", "debug"},
      log_dir_ + "/operator.log", {});
  if (!started.ok()) return started.status();
  operator_ = std::move(*started);
  return Status::Ok();
}

Status OperatorEnv::RestartOperator() {
  operator_->Stop();
  return StartOperator();
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
  std::ifstream in(sim_state_dir_ + "/" + ns + "/" + pod + ".log");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
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
  std::ifstream in(sim_state_dir_ + "/" + ns + "/" + pod + ".pid");
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 1) return Status::NotFound("no pid recorded for " + pod);
  if (kill(pid, SIGKILL) != 0) return Status::Internal("kill " + std::to_string(pid) + " failed");
  return Status::Ok();
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
