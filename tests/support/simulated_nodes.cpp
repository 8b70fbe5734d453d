#include "tests/support/simulated_nodes.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "tests/support/eventually.h"
#include "tests/support/testenv.h"

namespace dpcm::testing {
namespace {

using client::Json;

bool NodeReady(const Json& node) {
  for (const auto& condition : node.value("/status/conditions"_json_pointer, Json::array())) {
    if (condition.value("type", "") == "Ready") return condition.value("status", "") == "True";
  }
  return false;
}

// The key=value lines `hack/netns.sh add-node` prints.
std::map<std::string, std::string> ParseFields(const std::string& text) {
  std::map<std::string, std::string> fields;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return fields;
}

}  // namespace

SimulatedNodes::SimulatedNodes(client::ApiClient& api, SimulatedNodesOptions options)
    : api_(api), options_(std::move(options)) {
  for (int i = 0; i < options_.count; ++i) {
    names_.push_back(options_.name_prefix + "-" + std::to_string(i));
  }
  kubelets_.resize(names_.size());
  netns_.resize(names_.size());
}

Result<std::unique_ptr<SimulatedNodes>> SimulatedNodes::Start(client::ApiClient& api,
                                                              SimulatedNodesOptions options) {
  std::error_code error;
  std::filesystem::create_directories(options.state_dir, error);
  std::filesystem::create_directories(options.log_dir, error);
  std::unique_ptr<SimulatedNodes> nodes(new SimulatedNodes(api, std::move(options)));
  nodes->networked_ = nodes->options_.network_namespaces && TestEnv::HasNodeNetwork();
  if (nodes->networked_) {
    std::cerr << "[SimulatedNodes] " << nodes->names_.size()
              << " nodes, each in its own network namespace (hack/netns.sh)\n";
  } else {
    std::cerr << "[SimulatedNodes] single-network mode: every node shares the host's loopback "
              << "network ("
              << (nodes->options_.network_namespaces
                      ? "the control plane has no node network; hack/testenv.sh up said why"
                      : "network namespaces not asked for")
              << ")\n";
  }
  for (size_t i = 0; i < nodes->names_.size(); ++i) {
    if (Status s = nodes->StartNode(i); !s.ok()) return s;
  }
  if (Status s = nodes->WaitReady(std::chrono::seconds(30)); !s.ok()) return s;
  return nodes;
}

Status SimulatedNodes::StartNode(size_t index) {
  const int octet = 2 + (options_.first_octet - 2 + static_cast<int>(index)) % 250;
  std::vector<std::string> argv;
  std::vector<std::string> network = {"--kubeconfig", TestEnv::Kubeconfig(), "--ip-base",
                                      "127." + std::to_string(octet) + ".0.0"};
  if (networked_) {
    auto added = TestEnv::Netns({"add-node", names_[index]});
    if (!added.ok()) return added.status().WithContext("namespace of " + names_[index]);
    auto fields = ParseFields(*added);
    netns_[index] = fields["netns"];
    argv = {"ip", "netns", "exec", netns_[index]};
    network = {"--kubeconfig", TestEnv::Kubeconfig("kubeconfig-node"),
               "--host-ip",    fields["host_ip"],
               "--ip-base",    fields["pod_ip_base"],
               "--ip-count",   fields["pod_ip_count"]};
  }
  argv.insert(argv.end(),
              {TestEnv::BinDir() + "/dpcm-podsim", "--state-dir", options_.state_dir, "--node-name",
               names_[index], "--lease-renew-ms", "2000", "--node-status-update-ms", "2000"});
  argv.insert(argv.end(), network.begin(), network.end());
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  auto started = ManagedProcess::Start(argv, options_.log_dir + "/podsim-" + names_[index] + ".log",
                                       {TestEnv::PathWithBinDir()});
  if (!started.ok()) return started.status();
  kubelets_[index] = std::move(*started);
  WriteRegistry(index);
  return Status::Ok();
}

void SimulatedNodes::WriteRegistry(size_t index) const {
  const std::string dir = TestEnv::Dir() + "/nodes";
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  std::ofstream out(dir + "/" + names_[index], std::ios::trunc);
  out << "kubelet_pid=" << kubelets_[index]->pid() << "\n"
      << "state_dir=" << std::filesystem::absolute(options_.state_dir).string() << "\n";
  if (!netns_[index].empty()) out << "netns=" << netns_[index] << "\n";
}

Status SimulatedNodes::WaitReady(std::chrono::milliseconds timeout) {
  std::string missing;
  const bool ready = Eventually(
      [&] {
        for (const auto& name : names_) {
          auto node = api_.Get(client::resources::Nodes(), "", name);
          if (!node.ok() || !NodeReady(*node)) {
            missing = name;
            return false;
          }
        }
        return true;
      },
      timeout, std::chrono::milliseconds(50));
  return ready ? Status::Ok() : Status::Internal("node " + missing + " not Ready");
}

SimulatedNodes::~SimulatedNodes() {
  for (auto& kubelet : kubelets_) {
    if (kubelet) kubelet->Stop();
  }
  for (const auto& name : names_) {
    (void)api_.Delete(client::resources::Nodes(), "", name);
    std::error_code error;
    std::filesystem::remove(TestEnv::Dir() + "/nodes/" + name, error);
    if (networked_) (void)TestEnv::Netns({"del-node", name});
  }
}

std::string SimulatedNodes::Netns(const std::string& node) const {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == node) return netns_[i];
  }
  return "";
}

std::string SimulatedNodes::NodeOf(const std::string& ns, const std::string& pod) {
  auto object = api_.Get(client::resources::Pods(), ns, pod);
  return object.ok() ? object->value("/spec/nodeName"_json_pointer, "") : "";
}

Result<pid_t> SimulatedNodes::PodPid(const std::string& ns, const std::string& pod,
                                     const std::string& container) const {
  const std::string infix = container.empty() ? "" : "." + container;
  std::ifstream in(options_.state_dir + "/" + ns + "/" + pod + infix + ".pid");
  pid_t pid = 0;
  if (!(in >> pid) || pid <= 1) return Status::NotFound("no pid recorded for " + pod);
  return pid;
}

Status SimulatedNodes::KillPodProcess(const std::string& ns, const std::string& pod,
                                      const std::string& container) const {
  auto pid = PodPid(ns, pod, container);
  if (!pid.ok()) return pid.status();
  if (kill(*pid, SIGKILL) != 0) return Status::Internal("kill " + std::to_string(*pid) + " failed");
  return Status::Ok();
}

std::string SimulatedNodes::PodLog(const std::string& ns, const std::string& pod) const {
  std::ifstream in(options_.state_dir + "/" + ns + "/" + pod + ".log");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

Status SimulatedNodes::Crash(const std::string& node) {
  size_t index = 0;
  while (index < names_.size() && names_[index] != node) ++index;
  if (index == names_.size()) return Status::NotFound("no node " + node);
  if (kubelets_[index]) kubelets_[index]->Kill();
  client::ListOptions on_node;
  on_node.field_selector = "spec.nodeName=" + node;
  auto pods = api_.List(client::resources::Pods(), "", on_node);
  if (!pods.ok()) return pods.status().WithContext("pods on " + node);
  for (const auto& pod : (*pods)["items"]) {
    const std::string ns = pod.value("/metadata/namespace"_json_pointer, "");
    const std::string name = pod.value("/metadata/name"_json_pointer, "");
    auto containers = pod.value("/spec/containers"_json_pointer, nlohmann::json::array());
    for (size_t i = 0; i < containers.size(); ++i) {
      auto pid = PodPid(ns, name, i == 0 ? "" : containers[i].value("name", ""));
      if (pid.ok()) kill(-*pid, SIGKILL);  // each container runs in its own process group
    }
  }
  return Status::Ok();
}

Status SimulatedNodes::Restart(const std::string& node) {
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] != node) continue;
    if (kubelets_[i] && kubelets_[i]->Running()) return Status::Invalid(node + " is running");
    return StartNode(i);
  }
  return Status::NotFound("no node " + node);
}

}  // namespace dpcm::testing
