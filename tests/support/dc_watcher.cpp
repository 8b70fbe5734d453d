#include "tests/support/dc_watcher.h"

#include <algorithm>

namespace dpcm::testing {
namespace {

using nlohmann::json;

bool IsReady(const json& pod) {
  const json conditions = pod.value("/status/conditions"_json_pointer, json::array());
  return std::any_of(conditions.begin(), conditions.end(), [](const json& c) {
    return c.value("type", "") == "Ready" && c.value("status", "") == "True";
  });
}

}  // namespace

void DcTracker::Apply(const json& pod, bool deleted, WallClock::time_point now) {
  const std::string name = pod.value("/metadata/name"_json_pointer, "");
  ++events_;
  std::string domain = pod.value("/metadata/labels/dpcm.io~1domain"_json_pointer, "");
  const auto known = pods_.find(name);
  if (known != pods_.end() && domain.empty()) domain = known->second.domain;
  const bool was_healthy_dc = known != pods_.end() && known->second.dc && known->second.healthy;
  if (deleted) {
    pods_.erase(name);
  } else {
    PodState& state = pods_[name];
    state.domain = domain;
    state.dc = pod.value("/metadata/labels/dpcm.io~1role"_json_pointer, "") == "dc";
    state.healthy = IsReady(pod) && !pod["metadata"].contains("deletionTimestamp");
  }
  if (was_healthy_dc) {
    const auto now_state = pods_.find(name);
    if (now_state == pods_.end() || !now_state->second.healthy) dc_failure_seen_[name] = now;
  }
  if (!domain.empty()) CheckDomain(domain, now);
}

void DcTracker::CheckDomain(const std::string& domain, WallClock::time_point now) {
  std::vector<std::string> dcs;
  bool any_healthy = false;
  for (const auto& [name, state] : pods_) {
    if (state.domain != domain) continue;
    if (state.dc) dcs.push_back(name);
    any_healthy = any_healthy || state.healthy;
  }
  if (dcs.size() > 1) {
    std::string names;
    for (const auto& n : dcs) names += (names.empty() ? "" : ", ") + n;
    violations_.push_back("domain " + domain + " had " + std::to_string(dcs.size()) +
                          " DCs at once: " + names);
  }
  const std::string dc = dcs.size() == 1 ? dcs[0] : "";
  if (current_dc_[domain] != dc) {
    current_dc_[domain] = dc;
    changes_.push_back({now, domain, dc});
  }
  if (dc.empty() && any_healthy) {
    auto [since, inserted] = no_dc_since_.try_emplace(domain, now);
    if (!inserted && now - since->second > no_dc_bound_) {
      violations_.push_back("domain " + domain + " had no DC for longer than " +
                            std::to_string(no_dc_bound_.count()) +
                            " ms while a member was healthy");
      since->second = now;  // report each long gap once
    }
  } else {
    no_dc_since_.erase(domain);
  }
}

std::vector<std::string> DcTracker::Violations(WallClock::time_point now) const {
  std::vector<std::string> out = violations_;
  for (const auto& [domain, since] : no_dc_since_) {
    if (now - since > no_dc_bound_) {
      out.push_back("domain " + domain + " has had no DC for longer than " +
                    std::to_string(no_dc_bound_.count()) + " ms");
    }
  }
  return out;
}

std::string DcTracker::CurrentDc(const std::string& domain) const {
  const auto it = current_dc_.find(domain);
  return it == current_dc_.end() ? "" : it->second;
}

std::optional<DcTracker::WallClock::time_point> DcTracker::DcFailureSeen(
    const std::string& pod) const {
  const auto it = dc_failure_seen_.find(pod);
  if (it == dc_failure_seen_.end()) return std::nullopt;
  return it->second;
}

DcWatcher::DcWatcher(client::ApiClient& client, std::string ns,
                     std::chrono::milliseconds no_dc_bound)
    : namespace_(std::move(ns)),
      watcher_(client, client::resources::Pods(), namespace_,
               [] {
                 watch::WatcherOptions o;
                 o.selectors.label_selector = "dpcm.io/domain";
                 o.initial_backoff = std::chrono::milliseconds(50);
                 return o;
               }()),
      tracker_(no_dc_bound),
      thread_([this](const std::stop_token& stop) {
        watcher_.Run(stop, [this](watch::WatcherEvent&& event) {
          switch (event.type) {
            case watch::WatcherEventType::kInitApply:
            case watch::WatcherEventType::kApply:
              Apply(event.object, false);
              break;
            case watch::WatcherEventType::kDelete:
              Apply(event.object, true);
              break;
            default:
              break;
          }
        });
      }) {}

DcWatcher::~DcWatcher() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void DcWatcher::Apply(const json& pod, bool deleted) {
  {
    std::lock_guard lock(mutex_);
    tracker_.Apply(pod, deleted, WallClock::now());
  }
  changed_.notify_all();
}

std::vector<std::string> DcWatcher::Violations() {
  std::lock_guard lock(mutex_);
  return tracker_.Violations(WallClock::now());
}

std::string DcWatcher::CurrentDc(const std::string& domain) {
  std::lock_guard lock(mutex_);
  return tracker_.CurrentDc(domain);
}

std::optional<DcWatcher::WallClock::time_point> DcWatcher::DcFailureSeen(const std::string& pod) {
  std::lock_guard lock(mutex_);
  return tracker_.DcFailureSeen(pod);
}

std::optional<DcWatcher::DcChange> DcWatcher::WaitForNewDc(const std::string& domain,
                                                           const std::string& previous,
                                                           std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::optional<DcChange> found;
  changed_.wait_for(lock, timeout, [&] {
    const auto& changes = tracker_.changes();
    for (auto it = changes.rbegin(); it != changes.rend(); ++it) {
      if (it->domain != domain) continue;
      if (!it->dc.empty() && it->dc != previous) found = *it;
      return found.has_value();
    }
    return false;
  });
  return found;
}

int DcWatcher::events() {
  std::lock_guard lock(mutex_);
  return tracker_.events();
}

}  // namespace dpcm::testing
