// The independent safety check of the e2e tests: its own pod watch, flagging any moment with two
// DCs.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/watch/watcher.h"

namespace dpcm::testing {

// The check itself, apart from any watch: fed pod events in resourceVersion order, it
// keeps each pod's domain, role and health and judges every domain after every event.
// Not thread-safe (DcWatcher guards it).
class DcTracker {
 public:
  using WallClock = std::chrono::system_clock;
  struct DcChange {
    WallClock::time_point seen;
    std::string domain;
    std::string dc;  // "" when the domain has no DC
  };

  explicit DcTracker(std::chrono::milliseconds no_dc_bound) : no_dc_bound_(no_dc_bound) {}

  // Applies one pod event (the pod as the API served it) seen at `now`.
  void Apply(const nlohmann::json& pod, bool deleted, WallClock::time_point now);
  // Every violation so far, plus a no-DC gap still open at `now`.
  std::vector<std::string> Violations(WallClock::time_point now) const;
  std::string CurrentDc(const std::string& domain) const;
  // When the pod last stopped being healthy (or went) while labeled DC, as seen here;
  // nullopt if it never did.
  std::optional<WallClock::time_point> DcFailureSeen(const std::string& pod) const;
  const std::vector<DcChange>& changes() const { return changes_; }
  int events() const { return events_; }

 private:
  struct PodState {
    std::string domain;
    bool dc = false;
    bool healthy = false;
  };
  void CheckDomain(const std::string& domain, WallClock::time_point now);

  std::chrono::milliseconds no_dc_bound_;
  std::map<std::string, PodState> pods_;
  std::map<std::string, std::string> current_dc_;
  std::map<std::string, WallClock::time_point> no_dc_since_;
  std::vector<DcChange> changes_;
  std::map<std::string, WallClock::time_point> dc_failure_seen_;  // by pod
  std::vector<std::string> violations_;
  int events_ = 0;
};

// Watches the pods of one namespace (its own connection, apart from the operator's) and
// replays every event in resourceVersion order. After each event it checks each domain:
// - two or more pods labeled dpcm.io/role=dc at once is a violation;
// - no DC for longer than `no_dc_bound` while a member is Ready and not terminating is
//   a violation.
// It also records when each domain's DC changed, as seen here, for failover timing.
class DcWatcher {
 public:
  using WallClock = DcTracker::WallClock;
  using DcChange = DcTracker::DcChange;

  DcWatcher(client::ApiClient& client, std::string ns,
            std::chrono::milliseconds no_dc_bound = std::chrono::seconds(5));
  ~DcWatcher();
  DcWatcher(const DcWatcher&) = delete;
  DcWatcher& operator=(const DcWatcher&) = delete;

  // Every violation seen so far (also checks for an open no-DC gap now).
  std::vector<std::string> Violations();
  // The domain's current DC as seen here ("" if none).
  std::string CurrentDc(const std::string& domain);
  // DcTracker::DcFailureSeen.
  std::optional<WallClock::time_point> DcFailureSeen(const std::string& pod);
  // Waits until the domain's DC is non-empty and differs from `previous`; returns the
  // change (with the time this watcher saw it), or nullopt on timeout.
  std::optional<DcChange> WaitForNewDc(const std::string& domain, const std::string& previous,
                                       std::chrono::milliseconds timeout);
  // Number of events replayed.
  int events();

 private:
  void Apply(const nlohmann::json& pod, bool deleted);

  std::string namespace_;
  watch::Watcher watcher_;
  std::mutex mutex_;
  std::condition_variable changed_;
  DcTracker tracker_;  // guarded by mutex_
  std::jthread thread_;
};

}  // namespace dpcm::testing
