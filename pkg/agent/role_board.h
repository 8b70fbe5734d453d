// RoleBoard: the role this member was last told (role, epoch, since), and the long-poll on it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>

namespace dpcm::agent {

// What the application reads from GET /role.
struct RoleRecord {
  std::string role;    // "dc", "pc", or "" before the first assignment
  int64_t epoch = -1;  // the Lease's leaseTransitions it came with; -1 before the first
  std::string domain;
  std::string pod;
  std::string since;     // RFC 3339 (UTC) wall time of the last change; "" before the first
  uint64_t version = 0;  // counts accepted changes; what a long-poll waits past

  bool operator==(const RoleRecord& other) const = default;
};

// {"role","epoch","domain","pod","since","version"}; role "unknown" before the first.
nlohmann::json ToJson(const RoleRecord& record);

// Why an assignment is or is not recorded.
enum class Verdict {
  kChanged,    // a new role or a newer epoch: recorded, waiters woken
  kUnchanged,  // the same role at the same epoch again: nothing to do (deliveries retry)
  kStale,      // an epoch older than the one recorded: refused (the fencing token only grows)
  kInvalid,    // a role other than "dc"/"pc", or a negative epoch
};

// The decision alone: how `current` takes `role` at `epoch`.
Verdict Judge(const RoleRecord& current, const std::string& role, int64_t epoch);

// The member's current role, written by role hook deliveries, read and long-polled by the
// application. Thread-safe. (With self-fencing, the agent's Lease renewal will demote here
// too when it misses its renew deadline.)
class RoleBoard {
 public:
  RoleBoard(std::string domain, std::string pod);

  // Records `role` at `epoch` if Judge() says kChanged, with `now_rfc3339` as `since`, and
  // wakes every Wait(). Returns the verdict; the record is unchanged unless kChanged.
  Verdict Apply(const std::string& role, int64_t epoch, const std::string& now_rfc3339);
  RoleRecord Current() const;
  // Returns as soon as the record's version differs from `after_version` (grew past it, or
  // the client holds a version this run of the agent never gave: it restarted and counts
  // from 0 again), or when `timeout` has passed: the record then current either way.
  RoleRecord Wait(uint64_t after_version, std::chrono::milliseconds timeout) const;
  // Ends every Wait() now and every later one at once (the agent is stopping: a long-poll
  // must not hold its shutdown past the pod's grace period).
  void Close();

 private:
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  RoleRecord record_;    // guarded by mutex_
  bool closed_ = false;  // guarded by mutex_
};

}  // namespace dpcm::agent
