#include "pkg/domain/restarts.h"

#include <algorithm>

#include "pkg/backoff/backoff.h"

namespace dpcm::domain {

using nlohmann::json;

RestartBook ParseRestartBook(const json& domain) {
  RestartBook book;
  const json entries = domain.value("/status/memberRestarts"_json_pointer, json());
  if (!entries.is_array()) return book;
  for (const auto& entry : entries) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string()) continue;
    RestartRecord record;
    const auto count = [&](const char* key) {
      const auto it = entry.find(key);
      return it != entry.end() && it->is_number_integer() ? std::max(0, it->get<int>()) : 0;
    };
    record.streak = count("streak");
    record.total = count("total");
    if (entry.contains("lastRestartTime") && entry["lastRestartTime"].is_string()) {
      record.last = election::ParseTime(entry["lastRestartTime"].get<std::string>());
    }
    if (entry.contains("pendingUid") && entry["pendingUid"].is_string()) {
      record.pending_uid = entry["pendingUid"].get<std::string>();
    }
    book[entry["name"].get<std::string>()] = record;
  }
  return book;
}

json RestartBookJson(const RestartBook& book) {
  json entries = json::array();
  for (const auto& [name, record] : book) {
    json entry = {{"name", name}, {"streak", record.streak}, {"total", record.total}};
    if (record.last) entry["lastRestartTime"] = election::FormatMicroTime(*record.last);
    if (!record.pending_uid.empty()) entry["pendingUid"] = record.pending_uid;
    entries.push_back(std::move(entry));
  }
  return entries;
}

RestartPlan PlanRestarts(const DomainView& view, const DomainSpec& spec, const RestartBook& book,
                         const std::string& keep, election::WallTime now) {
  RestartPlan plan;
  plan.book = book;
  const auto backoff_max = std::chrono::seconds(spec.restart.backoff_max_seconds);
  const auto settle_limit =
      std::max<std::chrono::steady_clock::duration>(std::chrono::minutes(2), 2 * backoff_max);
  const auto wait_at_most = [&](std::chrono::steady_clock::duration d) {
    if (!plan.retry_in || d < *plan.retry_in) plan.retry_in = d;
  };
  // Settle restarts in flight; forget records of members gone for good.
  for (auto it = plan.book.begin(); it != plan.book.end();) {
    RestartRecord& record = it->second;
    const Member* member = view.Find(it->first);
    if (!record.pending_uid.empty()) {
      bool settled = !record.last || now - *record.last > settle_limit;
      if (member != nullptr && member->uid != record.pending_uid) {
        settled = settled || (member->probed && (member->healthy() || member->check_failed));
      }
      if (settled) record.pending_uid.clear();
    }
    const bool streak_over = !record.last || now - *record.last > 2 * backoff_max;
    if (member == nullptr && record.pending_uid.empty() && streak_over) {
      it = plan.book.erase(it);
      continue;
    }
    if (!record.pending_uid.empty()) ++plan.in_flight;
    ++it;
  }
  const backoff::Exponential backoff(std::chrono::seconds(spec.restart.backoff_initial_seconds),
                                     backoff_max);
  for (const auto& m : view.members) {
    if (m.terminating()) continue;
    RestartRecord& record = plan.book[m.name];
    if (!record.pending_uid.empty()) {
      // Recorded but its pod still runs: the delete did not happen; do it now.
      if (record.pending_uid == m.uid) {
        plan.restarts.push_back(
            {m.name, m.uid, record.streak, true, m.check_failures, m.check_message});
      }
      continue;
    }
    if (!m.check_failed || m.name == keep) continue;
    if (plan.in_flight >= spec.restart.max_concurrent) {
      wait_at_most(std::chrono::seconds(1));
      continue;
    }
    if (record.streak > 0 && record.last && now - *record.last > 2 * backoff_max) {
      record.streak = 0;
    }
    const auto delay = backoff.After(record.streak);
    if (record.last && now < *record.last + delay) {
      wait_at_most(*record.last + delay - now);
      continue;
    }
    ++record.streak;
    ++record.total;
    record.last = now;
    record.pending_uid = m.uid;
    ++plan.in_flight;
    plan.restarts.push_back(
        {m.name, m.uid, record.streak, false, m.check_failures, m.check_message});
  }
  // Members never restarted need no record.
  for (auto it = plan.book.begin(); it != plan.book.end();) {
    it = it->second.total == 0 && it->second.pending_uid.empty() ? plan.book.erase(it) : ++it;
  }
  return plan;
}

}  // namespace dpcm::domain
