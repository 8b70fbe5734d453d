// Elects one leader among replicas with a coordination.k8s.io/v1 Lease, as client-go does.
//
// Limits, as client-go states for its own: this is not fencing. A leader that stops
// renewing keeps believing it leads until its RenewDeadline passes on its own monotonic
// clock; another replica takes over only after the Lease record has not changed for
// LeaseDuration on *its* monotonic clock. Safety therefore rests on RenewDeadline <
// LeaseDuration and on clocks running at about the same rate (not on synchronized wall
// clocks: the remote renewTime is never compared with the local wall clock). Writes in
// flight when the deadline passes have LeaseDuration - RenewDeadline to land.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>

#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/election/lease_record.h"
#include "pkg/status/status.h"

namespace dpcm::election {

// Where the election record lives (client-go's resourcelock.Interface, for Leases only).
// Implementations need not be thread-safe: one elector calls them from one thread at a time.
class LeaseLock {
 public:
  virtual ~LeaseLock() = default;
  // The current record; kNotFound when the Lease does not exist.
  virtual Result<LeaseRecord> Get() = 0;
  // Creates the Lease; kAlreadyExists when another replica created it first.
  virtual Result<LeaseRecord> Create(const LeaseRecord& record) = 0;
  // Replaces the Lease's spec, conditional on record.resource_version (a stale one fails
  // with kConflict). Returns the record as stored, with its new resourceVersion.
  virtual Result<LeaseRecord> Update(const LeaseRecord& record) = 0;
  // "namespace/name", for logs.
  virtual std::string Describe() const = 0;
};

// A LeaseLock on the API server through `client` (which must outlive it). Every other
// field of the Lease (labels, owner references) is kept as it was.
class ApiLeaseLock final : public LeaseLock {
 public:
  ApiLeaseLock(client::ApiClient& client, std::string ns, std::string name);
  Result<LeaseRecord> Get() override;
  Result<LeaseRecord> Create(const LeaseRecord& record) override;
  Result<LeaseRecord> Update(const LeaseRecord& record) override;
  std::string Describe() const override { return ns_ + "/" + name_; }

 private:
  client::ApiClient& client_;
  const std::string ns_;
  const std::string name_;
  client::Json last_;  // the Lease as last read or written, to keep its other fields
};

// Told when this replica starts and stops leading (metrics::NewLeadershipObserver sets
// leader_election_master_status). Called on the elector's thread; must be quick.
class LeadershipObserver {
 public:
  virtual ~LeadershipObserver() = default;
  // This replica now holds (`leading`) or no longer holds the Lease `name`. Called with
  // false once when the elector is created, then on every change.
  virtual void OnLeading(const std::string& name, bool leading) = 0;
};

struct LeaseElectorOptions {
  std::string name;      // the Lease's name: the leader_election_master_status{name} label
  std::string identity;  // this replica; see DefaultIdentity()
  // How long a Lease is valid after its record last changed (as observed by a standby).
  std::chrono::milliseconds lease_duration{15000};
  // How long the leader keeps acting without a successful renewal.
  std::chrono::milliseconds renew_deadline{10000};
  // Pause between acquire attempts and between renewals.
  std::chrono::milliseconds retry_period{2000};
  Clock* clock = nullptr;                  // null = the real clock; must outlive the elector
  LeadershipObserver* observer = nullptr;  // optional; must outlive the elector
};

// Called from the thread that runs LeaseElector::Run (or Release). Keep them short: they
// must not block the renewals.
struct LeaderCallbacks {
  std::function<void()> on_started_leading;
  // Leadership ended: lost (the renew deadline passed, another replica holds the Lease) or
  // released. Called once per term.
  std::function<void()> on_stopped_leading;
  // The observed holder changed (also for our own identity, and "" after a release).
  std::function<void(const std::string& identity)> on_new_leader;
};

// "<hostname>_<random hex>", unique per process start, as controller-runtime's default.
std::string DefaultIdentity();

// Runs the election for one replica. A candidate takes the Lease when it is absent, held
// by itself, released (empty holder), or when its record has not changed for the record's
// leaseDurationSeconds since this replica last saw it change (monotonic clock). The leader
// renews every retry_period; when no renewal has succeeded for renew_deadline (measured
// from the start of the last successful attempt) or another identity holds the Lease,
// leadership is lost. Every write is conditional.
//
// Thread-safe: Run on one thread; IsLeader / CheckLeading / leader() from any thread.
class LeaseElector {
 public:
  // Validates the options (lease_duration > renew_deadline > 1.2 × retry_period > 0,
  // name and identity set); a violation is a kConfig error naming the option. `lock`
  // must outlive the elector.
  static Result<std::unique_ptr<LeaseElector>> Create(LeaseElectorOptions options, LeaseLock& lock,
                                                      LeaderCallbacks callbacks = {});
  ~LeaseElector();
  LeaseElector(const LeaseElector&) = delete;
  LeaseElector& operator=(const LeaseElector&) = delete;

  // Acquires the Lease (retrying every retry_period), then renews it until `stop` fires
  // (returns OK, still holding the Lease: call Release once the leader's work has
  // stopped) or leadership is lost (returns a kCancelled error saying why). Returns OK
  // at once if `stop` fires before the Lease is acquired. Runs once.
  Status Run(const std::stop_token& stop);

  // One acquire-or-renew round (Run's step, public for tests). Returns true when this
  // replica holds the Lease afterwards. Updates the observed record and leadership, and
  // calls the callbacks on a change.
  bool TryAcquireOrRenew();

  // Gives the Lease up so a standby takes it at once: closes the write guard, then, if
  // the last observed record names this replica, writes holderIdentity "" and
  // leaseDurationSeconds 1 (conditional on the observed resourceVersion). Call after Run
  // has returned. OK when there was nothing to release.
  Status Release();

  // The write guard: true while this replica holds the Lease and its last successful
  // renewal started less than renew_deadline ago on the monotonic clock.
  bool IsLeader() const;
  // IsLeader as a Status for client::ApiClient::SetWriteGuard: OK, or kCancelled saying
  // why writes are refused.
  Status CheckLeading() const;
  // Blocks until this replica leads (true), or `stop` fires or Run returns (false).
  bool AwaitLeading(const std::stop_token& stop);

  // The holder of the Lease as last observed ("" when none).
  std::string leader() const;
  const std::string& identity() const { return options_.identity; }

 private:
  LeaseElector(LeaseElectorOptions options, LeaseLock& lock, LeaderCallbacks callbacks);
  // Records `record` as observed at `now` if it differs from the last observation.
  void Observe(const LeaseRecord& record, Clock::Monotonic::time_point now);
  // Leadership begins (or is renewed): the write guard is open until `deadline`.
  void SetLeading(Clock::Monotonic::time_point deadline);
  // Leadership ends; calls on_stopped_leading if it was held. `why` is logged.
  void StopLeading(const std::string& why);

  const LeaseElectorOptions options_;
  LeaseLock& lock_;
  const LeaderCallbacks callbacks_;
  Clock& clock_;

  // Touched only by the thread in Run / TryAcquireOrRenew / Release.
  std::optional<LeaseRecord> observed_;
  Clock::Monotonic::time_point observed_at_{};

  mutable std::mutex mutex_;
  std::condition_variable_any changed_;
  bool leading_ = false;                        // guarded by mutex_
  bool run_ended_ = false;                      // guarded by mutex_
  Clock::Monotonic::time_point guard_until_{};  // guarded by mutex_
  std::string leader_;                          // guarded by mutex_
};

}  // namespace dpcm::election
