// MemberBoard: the domain's members as its status shows them, their joins and leaves, and the
// long-poll on them (GET /members).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace dpcm::agent {

// One member of the domain, as status.members[] of the ProcessDomain shows it.
struct MemberInfo {
  std::string name;
  std::string role;  // "dc" or "pc"
  bool ready = false;
  bool healthy = false;

  bool operator==(const MemberInfo& other) const = default;
};

// What happened to one member between two views of the domain.
enum class ChangeKind { kJoined, kLeft, kChanged };

// "joined", "left", "changed".
const char* ChangeKindName(ChangeKind kind);

struct MemberChange {
  ChangeKind kind = ChangeKind::kChanged;
  MemberInfo member;     // for kLeft: the member as last seen
  uint64_t version = 0;  // the board version this change produced (set by MemberBoard)

  bool operator==(const MemberChange& other) const = default;
};

// Reads status.members[] of a ProcessDomain. Entries without a name are skipped; missing
// fields take their defaults (role "pc"). The result is sorted by name. Never throws.
std::vector<MemberInfo> MembersFromDomain(const nlohmann::json& domain);

// The decision alone: the changes that turn `before` into `after` (both sorted by name, as
// MembersFromDomain returns them), in name order. A member in both whose role, readiness or
// health differs is kChanged; one only in `after` joined, one only in `before` left.
std::vector<MemberChange> DiffMembers(const std::vector<MemberInfo>& before,
                                      const std::vector<MemberInfo>& after);

// Whether the agent can follow its domain through the API server.
struct Sync {
  bool synced = false;  // the members shown are the API server's, as of the last event
  std::string error;    // why not ("" while connecting or when synced)
};

// What GET /members answers: {"domain","version","synced","error","activePod","epoch",
// "members":[...], "changes":[...], "changesComplete"}.
struct MembersView {
  std::string domain;
  uint64_t version = 0;  // counts changes (members, activePod/epoch, sync state)
  Sync sync;
  std::string active_pod;
  int64_t epoch = -1;
  std::vector<MemberInfo> members;
  // The changes with a version greater than the caller's `after` (all kept ones without it).
  std::vector<MemberChange> changes;
  // False when some changes after `after` are no longer kept: re-read `members` instead.
  bool changes_complete = true;
};

nlohmann::json ToJson(const MembersView& view);

// The members of this agent's domain, written by the domain watch, read and long-polled by
// the application. Thread-safe. Keeps the last `max_changes` changes for long-pollers.
class MemberBoard {
 public:
  explicit MemberBoard(std::string domain, size_t max_changes = 256);

  // Takes a new view of the domain (from a watch event): records the member changes and the
  // DC/epoch, marks the board synced, and wakes every Wait() if anything changed.
  void Apply(const std::vector<MemberInfo>& members, const std::string& active_pod, int64_t epoch);
  // The domain was deleted: every member left; not synced, with `why` as the error.
  void Clear(const std::string& why);
  // The API cannot be followed (no identity, refused, unreachable): the members shown are the
  // last seen; wakes waiters when the reason changes.
  void SetError(const std::string& why);

  // The API server answers again (a watch reopened) and nothing changed meanwhile: marks the
  // board synced again after SetError(), waking waiters. No-op when synced or cleared.
  void Resume();

  // The view with the changes after `after_version` (every kept change for 0).
  MembersView Current(uint64_t after_version = 0) const;
  // Returns as soon as the version differs from `after_version` (grew past it, or is one this
  // run of the agent never gave), or when `timeout` has passed: the view then current, with
  // the changes after `after_version`.
  MembersView Wait(uint64_t after_version, std::chrono::milliseconds timeout) const;
  // Ends every Wait() now and every later one at once (the agent is stopping).
  void Close();

 private:
  MembersView ViewLocked(uint64_t after_version) const;
  void RecordLocked(std::vector<MemberChange> changes);

  const std::string domain_;
  const size_t max_changes_;
  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  uint64_t version_ = 0;              // guarded by mutex_
  bool closed_ = false;               // guarded by mutex_
  Sync sync_;                         // guarded by mutex_
  bool present_ = false;              // guarded by mutex_: Apply() since the last Clear()
  std::string active_pod_;            // guarded by mutex_
  int64_t epoch_ = -1;                // guarded by mutex_
  std::vector<MemberInfo> members_;   // guarded by mutex_
  std::deque<MemberChange> changes_;  // guarded by mutex_; oldest first
  uint64_t dropped_through_ = 0;      // guarded by mutex_: the newest dropped change's version
};

}  // namespace dpcm::agent
