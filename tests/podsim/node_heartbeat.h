// NodeHeartbeat keeps the simulator's Node alive as a kubelet does: registration, NodeStatus, node
// Lease.
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>
#include <thread>

#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/status/status.h"

namespace dpcm::podsim {

// The kubelet's node-status settings; the defaults are the kubelet's (v1.20).
struct NodeOptions {
  std::string name = "dpcm-sim";
  std::string host_ip = "127.0.0.1";
  // How often the node's status on the server is checked and, when it is not what
  // this kubelet reports (e.g. the node-lifecycle controller set Ready=Unknown),
  // rewritten (nodeStatusUpdateFrequency).
  std::chrono::milliseconds status_update{10000};
  // How often the status is written even when nothing changed (nodeStatusReportFrequency).
  std::chrono::milliseconds status_report{300000};
  // How often the Lease kube-node-lease/<name> is renewed (0.25 x its duration).
  std::chrono::milliseconds lease_renew{10000};
  // The Lease's leaseDurationSeconds (nodeLeaseDurationSeconds).
  int lease_duration_seconds = 40;
};

// Registers the Node (created, or reused if it exists) with a Ready status (conditions
// with lastHeartbeatTime, capacity and allocatable including pods, addresses), then, on
// its own thread, renews the node Lease and keeps the status Ready. It never deletes
// the Node: a stopped kubelet leaves it for the node-lifecycle controller to mark.
class NodeHeartbeat {
 public:
  // `client` and `clock` must outlive the heartbeat.
  NodeHeartbeat(client::ApiClient& client, NodeOptions options,
                Clock& clock = RealClock::Instance());
  ~NodeHeartbeat();  // stops and joins
  NodeHeartbeat(const NodeHeartbeat&) = delete;
  NodeHeartbeat& operator=(const NodeHeartbeat&) = delete;

  // Creates or reuses the Node, writes its Ready status and its Lease, retrying every
  // second. Fails only if `stop` fires first.
  Status Register(const std::stop_token& stop);
  // Starts renewing the Lease and checking the status on a thread. Call once, after
  // Register().
  void Start();
  // Stops the thread (the Node and its Lease stay as they are). Idempotent.
  void Stop();

  // The node status this kubelet reports, with `now` as the heartbeat time.
  nlohmann::json DesiredStatus(const std::string& now) const;

 private:
  // Writes DesiredStatus(), keeping lastTransitionTime of conditions unchanged since
  // `server_node`.
  Status WriteStatus(const nlohmann::json& server_node);
  Status RenewLease();
  void CheckStatus();
  void Run(const std::stop_token& stop);

  client::ApiClient& client_;
  const NodeOptions options_;
  Clock& clock_;
  std::string node_uid_;  // for the Lease's owner reference
  nlohmann::json lease_;  // the Lease as last read or written; null if unknown
  Clock::Monotonic::time_point last_report_;
  std::jthread thread_;
};

}  // namespace dpcm::podsim
