#include "pkg/agent/role_board.h"

#include <utility>

namespace dpcm::agent {

nlohmann::json ToJson(const RoleRecord& record) {
  return {{"role", record.role.empty() ? "unknown" : record.role},
          {"epoch", record.epoch},
          {"domain", record.domain},
          {"pod", record.pod},
          {"since", record.since},
          {"version", record.version}};
}

Verdict Judge(const RoleRecord& current, const std::string& role, int64_t epoch) {
  if ((role != "dc" && role != "pc") || epoch < 0) return Verdict::kInvalid;
  if (epoch < current.epoch) return Verdict::kStale;
  if (epoch == current.epoch && role == current.role) return Verdict::kUnchanged;
  return Verdict::kChanged;
}

RoleBoard::RoleBoard(std::string domain, std::string pod) {
  record_.domain = std::move(domain);
  record_.pod = std::move(pod);
}

Verdict RoleBoard::Apply(const std::string& role, int64_t epoch, const std::string& now_rfc3339) {
  Verdict verdict = Verdict::kInvalid;
  {
    std::lock_guard lock(mutex_);
    verdict = Judge(record_, role, epoch);
    if (verdict != Verdict::kChanged) return verdict;
    record_.role = role;
    record_.epoch = epoch;
    record_.since = now_rfc3339;
    ++record_.version;
  }
  changed_.notify_all();
  return verdict;
}

RoleRecord RoleBoard::Current() const {
  std::lock_guard lock(mutex_);
  return record_;
}

RoleRecord RoleBoard::Wait(uint64_t after_version, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return closed_ || record_.version != after_version; });
  return record_;
}

void RoleBoard::Close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

}  // namespace dpcm::agent
