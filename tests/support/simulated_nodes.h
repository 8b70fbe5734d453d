// SimulatedNodes runs the test world's nodes: one dpcm-podsim (a kubelet stand-in) per Node, each
// in its own network namespace when the control plane has a node network.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/status/status.h"
#include "tests/support/process.h"

namespace dpcm::testing {

struct SimulatedNodesOptions {
  std::string name_prefix;  // node i is "<name_prefix>-<i>"
  int count = 3;
  std::string state_dir;  // the --state-dir every node shares (<ns>/<pod>.pid and .log)
  std::string log_dir;    // each node's log: <log_dir>/podsim-<node>.log
  // Single-network mode: node i's pods get 127.<first_octet + i>.0.x (wrapping within
  // 2..251).
  int first_octet = 2;
  std::vector<std::string> extra_args;  // more dpcm-podsim flags for every node
  // Each node in its own network namespace (hack/netns.sh add-node: its pods on its /24 of
  // the bridge network) when the control plane has a node network; otherwise, or when
  // false, every node shares the host's loopback network, and Start says so on stderr.
  bool network_namespaces = true;
};

// Starts `count` dpcm-podsim processes, each registering its own Node (status Ready,
// Lease in kube-node-lease renewed every 2 s, status checked every 2 s), and running the
// pods the real scheduler binds to it. The real scheduler spreads pods over them.
// Each node is listed in $DPCM_TESTENV_DIR/nodes/<node> (kubelet_pid=, state_dir=, and
// netns= in its own namespace) for hack/chaos.sh. On destruction it stops every node (pod
// processes are killed), deletes the Nodes, their listings and their namespaces, so that
// no later test's pods are scheduled onto a node nobody runs. Not thread-safe.
class SimulatedNodes {
 public:
  // Starts the nodes and waits until every Node is Ready on the server.
  static Result<std::unique_ptr<SimulatedNodes>> Start(client::ApiClient& api,
                                                       SimulatedNodesOptions options);
  ~SimulatedNodes();
  SimulatedNodes(const SimulatedNodes&) = delete;
  SimulatedNodes& operator=(const SimulatedNodes&) = delete;

  const std::vector<std::string>& names() const { return names_; }
  // Whether each node lives in its own network namespace (else all share loopback).
  bool networked() const { return networked_; }
  // The network namespace of `node` ("" in single-network mode or for an unknown node).
  std::string Netns(const std::string& node) const;
  // The node the pod is bound to ("" if unbound or unknown).
  std::string NodeOf(const std::string& ns, const std::string& pod);
  // The pid of a running container process of the pod, read from the shared state dir:
  // `container` names one other than the first ("" = the first).
  Result<pid_t> PodPid(const std::string& ns, const std::string& pod,
                       const std::string& container = "") const;
  // SIGKILLs a container process of a pod (`container` as for PodPid).
  Status KillPodProcess(const std::string& ns, const std::string& pod,
                        const std::string& container = "") const;
  // The pod's container output as the simulator recorded it (every run of the pod name).
  std::string PodLog(const std::string& ns, const std::string& pod) const;
  // A node crash: SIGKILLs the node's kubelet and every pod process it ran. Heartbeats
  // stop; the pods' statuses stay as last written (Running, Ready).
  Status Crash(const std::string& node);
  // Starts the kubelet of a crashed node again (it re-registers the same Node; in its own
  // namespace again, with the same addresses).
  Status Restart(const std::string& node);

 private:
  SimulatedNodes(client::ApiClient& api, SimulatedNodesOptions options);
  Status StartNode(size_t index);
  // Writes $DPCM_TESTENV_DIR/nodes/<node> for hack/chaos.sh.
  void WriteRegistry(size_t index) const;
  Status WaitReady(std::chrono::milliseconds timeout);

  client::ApiClient& api_;
  SimulatedNodesOptions options_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<ManagedProcess>> kubelets_;
  bool networked_ = false;
  std::vector<std::string> netns_;  // node i's namespace ("" in single-network mode)
};

}  // namespace dpcm::testing
