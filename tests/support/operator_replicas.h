// Leader-electing dpcm-operator processes on one test namespace, with their own pod simulator.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/process.h"
#include "tests/support/simulated_nodes.h"

namespace dpcm::testing {

// The operator's leader election timings (seconds), short for tests, and the pod
// simulator's first container restart delay: longer than a takeover, so that a DC whose
// process was killed stays down until the next leader has acted.
struct ReplicaTimings {
  int lease_duration = 4;
  int renew_deadline = 3;
  int retry_period = 1;
  int container_restart_delay_ms = 8000;
};

// Apart from OperatorEnv (whose one operator watches every namespace, so never use both
// in one test process): applies the CRD, creates a namespace `<prefix>-<random>`, and
// runs three simulated nodes of its own. Replicas run `dpcm-operator --leader-elect` watching
// only that namespace, with their Lease ("dpcm-operator") in it and their own metrics and
// probe ports on 127.0.0.1. Logs go to $DPCM_TESTENV_DIR/e2e-logs/<pid>-<namespace>/.
// Stops everything it started and deletes the namespace on destruction. Not thread-safe.
class OperatorReplicas {
 public:
  static constexpr const char* kLeaseName = "dpcm-operator";

  explicit OperatorReplicas(const std::string& prefix, ReplicaTimings timings = {});
  ~OperatorReplicas();
  OperatorReplicas(const OperatorReplicas&) = delete;
  OperatorReplicas& operator=(const OperatorReplicas&) = delete;

  client::ApiClient& api() { return *api_; }
  const std::string& ns() const { return ns_; }
  const ReplicaTimings& timings() const { return timings_; }
  const std::string& log_dir() const { return log_dir_; }

  // Starts replica `index` (0, 1, ...), replacing a stopped one of that index; its log
  // is operator-<index>.log (appended across restarts).
  Status Start(int index);
  // The process of replica `index` (started before).
  ManagedProcess& process(int index) { return *replicas_.at(index).process; }
  int metrics_port(int index) const { return replicas_.at(index).metrics_port; }
  int health_port(int index) const { return replicas_.at(index).health_port; }

  // The running replica whose /metrics says leader_election_master_status 1, or -1.
  int Leader();
  // The operator Lease's holderIdentity: "" when free, "<absent>" when there is none.
  std::string LeaseHolder();
  // The operator Lease's acquireTime (when its holder took it), or nullopt.
  std::optional<std::chrono::system_clock::time_point> LeaseAcquireTime();
  // The sum of controller_runtime_reconcile_total on replica `index`'s /metrics (-1 when
  // it does not answer).
  double ReconcileCount(int index);
  // SIGKILLs the container process of `pod` (the simulator records its pid).
  Status KillPodProcess(const std::string& pod);
  // The container output of `pod` as the simulator recorded it (every run of the pod).
  std::string PodLog(const std::string& pod) const;

 private:
  struct Replica {
    std::unique_ptr<ManagedProcess> process;
    int metrics_port = 0;
    int health_port = 0;
  };

  ReplicaTimings timings_;
  std::unique_ptr<client::ApiClient> api_;
  std::string ns_;
  std::string log_dir_;
  std::string sim_state_dir_;
  std::unique_ptr<SimulatedNodes> nodes_;
  std::vector<Replica> replicas_;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();
// GET http://127.0.0.1:<port><path>: the body of a 200 answer, else an error.
Result<std::string> HttpGet(int port, const std::string& path);
// The value of the first sample of `series` (a metric name with optional {labels}, as it
// appears at the start of an exposition line), or nullopt when absent.
std::optional<double> SampleValue(const std::string& exposition, const std::string& series);
// The sum of every sample of metric `name` (any labels), or only of those whose labels
// include `label` (e.g. `code="409"`).
double SumOfSamples(const std::string& exposition, const std::string& name,
                    const std::string& label = "");

}  // namespace dpcm::testing
