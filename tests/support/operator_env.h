// The e2e world: the local control plane plus dpcm's CRD, three simulated nodes and the operator.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "pkg/client/api_client.h"
#include "tests/support/process.h"
#include "tests/support/simulated_nodes.h"

namespace dpcm::testing {

// Started once per test process (lazily) and stopped at exit: applies the CRD with
// kubectl, then runs three nodes (SimulatedNodes: one dpcm-podsim each, pods placed by
// the real scheduler) and dpcm-operator from the build's bin/ directory, with logs under
// $DPCM_TESTENV_DIR/e2e-logs/. The operator is supervised as a kubelet would restart its
// container: when it exits (e.g. `hack/chaos.sh restart operator` SIGTERMs the pid listed
// in $DPCM_TESTENV_DIR/operators/<test pid>), it is started again and the listing updated.
class OperatorEnv {
 public:
  static OperatorEnv& Get();
  ~OperatorEnv();

  client::ApiClient& api() { return *api_; }
  // A ProcessDomain running the sample app: `replicas` pods, readiness on /healthz
  // probed every second, failing after one miss.
  static nlohmann::json SampleDomain(const std::string& name, int replicas);
  // The sample app's container (no probes).
  static nlohmann::json SampleContainer();
  // The world's nodes (crash one, find a pod's node).
  SimulatedNodes& nodes() { return *nodes_; }
  // SIGKILLs the container process of a pod (the simulator records its pid).
  Status KillPodProcess(const std::string& ns, const std::string& pod);
  // POSTs to the sample app in `pod` (e.g. "/admin/unhealthy").
  Status PostToApp(const std::string& ns, const std::string& pod, const std::string& path);
  // The pod's container output as the simulator recorded it (every run of the pod name).
  std::string PodLog(const std::string& ns, const std::string& pod) const;
  // Runs kubectl with the test kubeconfig; returns stdout.
  Result<std::string> Kubectl(const std::vector<std::string>& args);
  // Stops and restarts the operator process (e.g. to test that it resumes).
  Status RestartOperator();
  // The running operator's pid.
  pid_t OperatorPid();
  const std::string& log_dir() const { return log_dir_; }

 private:
  OperatorEnv();
  // Starts the operator and lists its pid; the caller holds mutex_.
  Status StartOperator();
  // Restarts the operator whenever it has exited, until stopped.
  void Supervise(const std::stop_token& stop);
  std::string RegistryPath() const;

  std::unique_ptr<client::ApiClient> api_;
  std::string log_dir_;
  std::string sim_state_dir_;
  std::unique_ptr<SimulatedNodes> nodes_;
  std::mutex mutex_;
  std::condition_variable_any stopped_;
  std::unique_ptr<ManagedProcess> operator_;  // guarded by mutex_
  std::jthread supervisor_;
};

}  // namespace dpcm::testing
