// Which operator replica runs the controller: the operator's own Lease when --leader-elect is set.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <stop_token>
#include <thread>

#include "cmd/dpcm-operator/options.h"
#include "pkg/client/api_client.h"
#include "pkg/election/lease_elector.h"
#include "pkg/metrics/metrics.h"
#include "pkg/restconfig/rest_config.h"
#include "pkg/status/status.h"

namespace dpcm::operator_main {

// Without --leader-elect this replica always leads and nothing is written. With it, a
// LeaseElector on its own API client (so that its renewals neither wait behind the
// controller's rate limit nor pass its write guard) decides, on its own thread.
//
// Use: Create; GuardWrites(the controller's client); Start; AwaitLeading; run the
// controller until `run_stop` fires (a lost leadership requests it); Finish.
class Leadership {
 public:
  // Validates the leader election flags (timings, namespace) and builds the elector's
  // client; errors are kConfig for bad flags. `run_stop` is requested when leadership is
  // lost; it and `metrics` must outlive the Leadership.
  static Result<std::unique_ptr<Leadership>> Create(const OperatorOptions& options,
                                                    const restconfig::RestConfig& config,
                                                    metrics::Metrics& metrics,
                                                    std::stop_source run_stop);
  ~Leadership();  // Finish()
  Leadership(const Leadership&) = delete;
  Leadership& operator=(const Leadership&) = delete;

  // Refuses every write of `client` while this replica is not the leader (Safety rule 5:
  // a deposed leader stops writing when its renew deadline passes, before a standby can
  // take the Lease). No-op without --leader-elect.
  void GuardWrites(client::ApiClient& client);
  // Starts campaigning. No-op without --leader-elect.
  void Start();
  // Blocks until this replica leads (true) or `stop` fires (false).
  bool AwaitLeading(const std::stop_token& stop);
  // Call once the controller has stopped: stops renewing and, unless leadership was lost,
  // releases the Lease so a standby takes over at once. Returns false when leadership was
  // lost (the operator then exits non-zero). Idempotent.
  bool Finish();

 private:
  Leadership() = default;

  std::stop_source run_stop_;
  std::unique_ptr<client::ApiClient> client_;  // the elector's own
  std::unique_ptr<election::ApiLeaseLock> lock_;
  std::unique_ptr<election::LeadershipObserver> observer_;  // leader_election_master_status
  std::unique_ptr<election::LeaseElector> elector_;         // null without --leader-elect
  std::stop_source elector_stop_;
  std::thread thread_;
  Status ran_;  // what Run returned; read after joining thread_
  bool finished_ = false;
  bool lost_ = false;
};

}  // namespace dpcm::operator_main
