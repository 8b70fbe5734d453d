// Watches a Kubernetes resource for changes: list, then watch, resuming and relisting on errors.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <stop_token>
#include <string>

#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"

namespace dpcm::watch {

// What a Watcher reports. A (re)list is bracketed by kInitStart and kInitDone with one
// kInitApply per listed object, so a cache can replace its contents atomically; after
// that, kApply (added or modified) and kDelete report changes in resourceVersion order.
enum class WatcherEventType { kInitStart, kInitApply, kInitDone, kApply, kDelete };

struct WatcherEvent {
  WatcherEventType type;
  nlohmann::json object;  // null for kInitStart and kInitDone
};

struct WatcherOptions {
  client::ListOptions selectors;  // label and field selectors; limit = list page size
  // Start by watching from this resourceVersion instead of listing. A 410 Gone on it
  // falls back to a full list. Empty: list first (the usual way).
  std::string resume_resource_version;
  std::chrono::milliseconds initial_backoff{200};
  std::chrono::milliseconds max_backoff{30000};
  // Each watch request asks the server to end it after a random time in [min, 2 min).
  int min_watch_timeout_seconds = 300;
  // Called on the Run() thread with each failed list or watch (refused, unreachable, an
  // ERROR event other than 410) before the backoff; for callers that show why they are not
  // in sync. May be empty.
  std::function<void(const Status&)> on_error;
  // Called on the Run() thread whenever the server answers again: a list succeeded or a watch
  // stream opened (also when one is reopened after its timeout). May be empty.
  std::function<void()> on_connected;
};

// Runs list+watch for one resource in one namespace (or all, with an empty one):
// - a stream that ends normally is reopened at once from the last resourceVersion;
// - a dropped connection or an API server that is down is retried with exponential
//   backoff and jitter, from the last resourceVersion; the backoff starts over as soon
//   as a list succeeds or a watch stream opens (not only when an event arrives), so a
//   server that restarts again and again is rejoined within the first backoff step;
// - 410 Gone (as an HTTP status or an ERROR event) means the resourceVersion was
//   compacted away: list again and report it as a new kInitStart..kInitDone;
// - BOOKMARK events only advance the resourceVersion.
// Not thread-safe except for the counters; one Run() at a time.
class Watcher {
 public:
  using Handler = std::function<void(WatcherEvent&&)>;

  // `client` and `clock` must outlive the watcher.
  Watcher(client::ApiClient& client, client::ResourceRef ref, std::string ns,
          WatcherOptions options = {}, Clock& clock = RealClock::Instance());

  // Lists and watches until `stop` fires, calling `handler` on this thread for each
  // event in order. Returns only when stopped.
  void Run(const std::stop_token& stop, const Handler& handler);

  // Diagnostics, readable from any thread.
  std::string resource_version() const;
  int lists() const { return lists_.load(); }
  int watch_requests() const { return watch_requests_.load(); }
  const client::ResourceRef& ref() const { return ref_; }
  const std::string& ns() const { return namespace_; }
  // For logs: "pods" (every namespace) or "pods in NS".
  std::string Describe() const;

 private:
  enum class StreamEnd { kResume, kBackoff, kRelist, kStopped };
  bool List(const std::stop_token& stop, const Handler& handler);
  StreamEnd WatchOnce(const std::stop_token& stop, const Handler& handler);
  std::chrono::milliseconds NextBackoff();
  void SetResourceVersion(const nlohmann::json& object);

  client::ApiClient& client_;
  const client::ResourceRef ref_;
  const std::string namespace_;
  const WatcherOptions options_;
  Clock& clock_;
  int failures_ = 0;  // in a row, since the server last answered

  mutable std::mutex rv_mutex_;
  std::string resource_version_;  // guarded by rv_mutex_
  std::atomic<int> lists_{0};
  std::atomic<int> watch_requests_{0};
};

}  // namespace dpcm::watch
