#include "pkg/agent/member_board.h"

#include <algorithm>
#include <utility>

namespace dpcm::agent {
namespace {

using Json = nlohmann::json;

Json ToJson(const MemberInfo& member) {
  return {{"name", member.name},
          {"role", member.role},
          {"ready", member.ready},
          {"healthy", member.healthy}};
}

bool BoolField(const Json& object, const char* name, bool fallback) {
  const auto it = object.find(name);
  return it != object.end() && it->is_boolean() ? it->get<bool>() : fallback;
}

}  // namespace

const char* ChangeKindName(ChangeKind kind) {
  switch (kind) {
    case ChangeKind::kJoined:
      return "joined";
    case ChangeKind::kLeft:
      return "left";
    case ChangeKind::kChanged:
      return "changed";
  }
  return "changed";
}

std::vector<MemberInfo> MembersFromDomain(const Json& domain) {
  std::vector<MemberInfo> members;
  if (!domain.is_object()) return members;
  const auto status = domain.find("status");
  if (status == domain.end() || !status->is_object()) return members;
  const auto list = status->find("members");
  if (list == status->end() || !list->is_array()) return members;
  for (const Json& entry : *list) {
    if (!entry.is_object()) continue;
    const auto name = entry.find("name");
    if (name == entry.end() || !name->is_string() || name->get<std::string>().empty()) continue;
    MemberInfo member;
    member.name = name->get<std::string>();
    const auto role = entry.find("role");
    member.role = role != entry.end() && role->is_string() ? role->get<std::string>() : "pc";
    member.ready = BoolField(entry, "ready", false);
    member.healthy = BoolField(entry, "healthy", false);
    members.push_back(std::move(member));
  }
  std::stable_sort(members.begin(), members.end(),
                   [](const MemberInfo& a, const MemberInfo& b) { return a.name < b.name; });
  // A name twice (never written by the operator) counts once: the first entry.
  members.erase(
      std::unique(members.begin(), members.end(),
                  [](const MemberInfo& a, const MemberInfo& b) { return a.name == b.name; }),
      members.end());
  return members;
}

std::vector<MemberChange> DiffMembers(const std::vector<MemberInfo>& before,
                                      const std::vector<MemberInfo>& after) {
  std::vector<MemberChange> changes;
  auto old_it = before.begin();
  auto new_it = after.begin();
  while (old_it != before.end() || new_it != after.end()) {
    if (new_it == after.end() || (old_it != before.end() && old_it->name < new_it->name)) {
      changes.push_back({ChangeKind::kLeft, *old_it++});
    } else if (old_it == before.end() || new_it->name < old_it->name) {
      changes.push_back({ChangeKind::kJoined, *new_it++});
    } else {
      if (!(*old_it == *new_it)) changes.push_back({ChangeKind::kChanged, *new_it});
      ++old_it;
      ++new_it;
    }
  }
  return changes;
}

Json ToJson(const MembersView& view) {
  Json members = Json::array();
  for (const auto& member : view.members) members.push_back(ToJson(member));
  Json changes = Json::array();
  for (const auto& change : view.changes) {
    Json entry = ToJson(change.member);
    entry["change"] = ChangeKindName(change.kind);
    entry["version"] = change.version;
    changes.push_back(std::move(entry));
  }
  return {{"domain", view.domain},
          {"version", view.version},
          {"synced", view.sync.synced},
          {"error", view.sync.error},
          {"activePod", view.active_pod},
          {"epoch", view.epoch},
          {"members", std::move(members)},
          {"changes", std::move(changes)},
          {"changesComplete", view.changes_complete}};
}

MemberBoard::MemberBoard(std::string domain, size_t max_changes)
    : domain_(std::move(domain)), max_changes_(std::max<size_t>(1, max_changes)) {}

void MemberBoard::RecordLocked(std::vector<MemberChange> changes) {
  ++version_;
  for (MemberChange& change : changes) {
    change.version = version_;
    changes_.push_back(std::move(change));
  }
  while (changes_.size() > max_changes_) {
    dropped_through_ = changes_.front().version;
    changes_.pop_front();
  }
}

void MemberBoard::Apply(const std::vector<MemberInfo>& members, const std::string& active_pod,
                        int64_t epoch) {
  {
    std::lock_guard lock(mutex_);
    std::vector<MemberChange> changes = DiffMembers(members_, members);
    const bool same = changes.empty() && active_pod == active_pod_ && epoch == epoch_ &&
                      sync_.synced && sync_.error.empty();
    if (same) return;
    members_ = members;
    present_ = true;
    active_pod_ = active_pod;
    epoch_ = epoch;
    sync_ = {true, ""};
    RecordLocked(std::move(changes));
  }
  changed_.notify_all();
}

void MemberBoard::Clear(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    std::vector<MemberChange> changes = DiffMembers(members_, {});
    members_.clear();
    present_ = false;
    active_pod_.clear();
    epoch_ = -1;
    sync_ = {false, why};
    RecordLocked(std::move(changes));
  }
  changed_.notify_all();
}

void MemberBoard::SetError(const std::string& why) {
  {
    std::lock_guard lock(mutex_);
    if (!sync_.synced && sync_.error == why) return;
    sync_ = {false, why};
    RecordLocked({});
  }
  changed_.notify_all();
}

void MemberBoard::Resume() {
  {
    std::lock_guard lock(mutex_);
    if (sync_.synced || !present_) return;
    sync_ = {true, ""};
    RecordLocked({});
  }
  changed_.notify_all();
}

MembersView MemberBoard::ViewLocked(uint64_t after_version) const {
  MembersView view;
  view.domain = domain_;
  view.version = version_;
  view.sync = sync_;
  view.active_pod = active_pod_;
  view.epoch = epoch_;
  view.members = members_;
  for (const MemberChange& change : changes_) {
    if (change.version > after_version) view.changes.push_back(change);
  }
  view.changes_complete = after_version >= dropped_through_;
  return view;
}

MembersView MemberBoard::Current(uint64_t after_version) const {
  std::lock_guard lock(mutex_);
  return ViewLocked(after_version);
}

MembersView MemberBoard::Wait(uint64_t after_version, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return closed_ || version_ != after_version; });
  return ViewLocked(after_version);
}

void MemberBoard::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

}  // namespace dpcm::agent
