#include "pkg/watch/watcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "pkg/backoff/backoff.h"
#include "pkg/object/object.h"
#include "pkg/watch/event_decoder.h"

namespace dpcm::watch {
namespace {

int RandomBetween(int low, int high) {
  thread_local std::mt19937 generator{std::random_device{}()};
  return std::uniform_int_distribution<int>(low, high)(generator);
}

using object::StringField;

bool IsGoneStatus(const nlohmann::json& status) {
  const auto code = status.find("code");
  const std::string reason = StringField(status, "reason");
  return (code != status.end() && code->is_number_integer() && code->get<int64_t>() == 410) ||
         reason == "Expired" || reason == "Gone";
}

}  // namespace

Watcher::Watcher(client::ApiClient& client, client::ResourceRef ref, std::string ns,
                 WatcherOptions options, Clock& clock)
    : client_(client),
      ref_(std::move(ref)),
      namespace_(std::move(ns)),
      options_(std::move(options)),
      clock_(clock),
      resource_version_(options_.resume_resource_version) {}

std::string Watcher::Describe() const {
  return ref_.Describe() + (namespace_.empty() || !ref_.namespaced ? "" : " in " + namespace_);
}

std::string Watcher::resource_version() const {
  std::lock_guard lock(rv_mutex_);
  return resource_version_;
}

void Watcher::SetResourceVersion(const nlohmann::json& object) {
  const auto* rv = object.is_object() && object.contains("metadata") &&
                           object["metadata"].is_object() &&
                           object["metadata"].contains("resourceVersion") &&
                           object["metadata"]["resourceVersion"].is_string()
                       ? &object["metadata"]["resourceVersion"].get_ref<const std::string&>()
                       : nullptr;
  if (rv != nullptr && !rv->empty()) {
    std::lock_guard lock(rv_mutex_);
    resource_version_ = *rv;
  }
}

std::chrono::milliseconds Watcher::NextBackoff() {
  failures_ = std::min(failures_ + 1, 64);  // the cap is reached long before
  const auto backoff = std::chrono::duration_cast<std::chrono::milliseconds>(
      backoff::Exponential(options_.initial_backoff, options_.max_backoff).After(failures_));
  // Full jitter on the upper half, so that many watchers do not reconnect in step.
  const auto half = backoff.count() / 2;
  return std::chrono::milliseconds(half + RandomBetween(0, static_cast<int>(half)));
}

bool Watcher::List(const std::stop_token& stop, const Handler& handler) {
  client::ListOptions options = options_.selectors;
  if (options.limit == 0) options.limit = 500;
  options.resource_version.clear();
  options.timeout_seconds = 0;
  ++lists_;
  // Page by page, each page handed on (and trimmed by the cache) before the next is
  // read: the whole list never sits in memory at full size. A failed page (410 Gone
  // once the snapshot expired) makes the caller list again from the start; the cache
  // replaces its contents only at kInitDone.
  handler({WatcherEventType::kInitStart, nullptr});
  for (;;) {
    auto page = client_.List(ref_, namespace_, options);
    if (!page.ok()) {
      if (page.status().code() == StatusCode::kForbidden) {
        // RBAC, not a passing fault: say what is missing (retried with backoff, so a
        // Role granted later is picked up without a restart).
        spdlog::error(
            "list {}: forbidden: this identity may not list (and watch) {} {}; grant it by "
            "RBAC (a ClusterRole for every namespace, or a Role in each watched namespace): {}",
            Describe(), ref_.Describe(),
            namespace_.empty() ? "at the cluster scope" : "in namespace " + namespace_,
            page.status().message());
      } else {
        spdlog::warn("list {}: {}", Describe(), page.status().ToString());
      }
      if (options_.on_error) options_.on_error(page.status());
      return false;
    }
    if (stop.stop_requested()) return false;
    if (page->contains("items") && (*page)["items"].is_array()) {
      for (auto& item : (*page)["items"]) {
        handler({WatcherEventType::kInitApply, std::move(item)});
      }
    }
    const bool has_metadata =
        page->is_object() && page->contains("metadata") && (*page)["metadata"].is_object();
    const std::string token = has_metadata ? StringField((*page)["metadata"], "continue") : "";
    if (token.empty()) {
      handler({WatcherEventType::kInitDone, nullptr});
      SetResourceVersion(*page);
      failures_ = 0;  // the server answers again
      if (options_.on_connected) options_.on_connected();
      return true;
    }
    options.continue_token = token;
  }
}

Watcher::StreamEnd Watcher::WatchOnce(const std::stop_token& stop, const Handler& handler) {
  client::ListOptions options = options_.selectors;
  options.limit = 0;
  options.continue_token.clear();
  options.resource_version = resource_version();
  options.allow_watch_bookmarks = true;
  options.timeout_seconds =
      RandomBetween(options_.min_watch_timeout_seconds, 2 * options_.min_watch_timeout_seconds);

  WatchEventDecoder decoder;
  StreamEnd end = StreamEnd::kResume;
  const auto opened = clock_.Now();
  bool saw_event = false;
  ++watch_requests_;
  const Status status = client_.Watch(
      ref_, namespace_, options,
      [&](std::string_view chunk) {
        // The stream is open: the server is back, so the next failure starts its
        // backoff over (a quiet watch may carry no event for minutes).
        if (chunk.empty()) {
          failures_ = 0;
          if (options_.on_connected) options_.on_connected();
        }
        for (auto& line : decoder.Feed(chunk)) {
          if (!line.ok()) {
            spdlog::warn("watch {}: skipping a bad event: {}", Describe(), line.status().message());
            continue;
          }
          WatchEvent& event = *line;
          switch (event.type) {
            case EventType::kAdded:
            case EventType::kModified:
              SetResourceVersion(event.object);
              handler({WatcherEventType::kApply, std::move(event.object)});
              break;
            case EventType::kDeleted:
              SetResourceVersion(event.object);
              handler({WatcherEventType::kDelete, std::move(event.object)});
              break;
            case EventType::kBookmark:
              SetResourceVersion(event.object);
              break;
            case EventType::kError:
              if (IsGoneStatus(event.object)) {
                end = StreamEnd::kRelist;
              } else {
                const std::string message = StringField(event.object, "message");
                spdlog::warn("watch {}: server error event: {}", Describe(),
                             message.empty() ? event.object.dump() : message);
                if (options_.on_error) {
                  options_.on_error(Status(StatusCode::kServerError,
                                           message.empty() ? event.object.dump() : message));
                }
                end = StreamEnd::kBackoff;
              }
              return false;
          }
          saw_event = true;
        }
        return true;
      },
      stop);
  if (stop.stop_requested()) return StreamEnd::kStopped;
  if (saw_event) failures_ = 0;
  if (status.IsGone()) return StreamEnd::kRelist;
  if (!status.ok()) {
    spdlog::warn("watch {}: {}", Describe(), status.ToString());
    if (options_.on_error) options_.on_error(status);
    return StreamEnd::kBackoff;
  }
  // A stream that the server closes at once without an event is not worth reopening
  // in a tight loop (a proxy or a server shutting down does that).
  if (end == StreamEnd::kResume && !saw_event && clock_.Now() - opened < std::chrono::seconds(1)) {
    return StreamEnd::kBackoff;
  }
  return end;
}

void Watcher::Run(const std::stop_token& stop, const Handler& handler) {
  bool need_list = resource_version().empty();
  while (!stop.stop_requested()) {
    if (need_list) {
      if (!List(stop, handler)) {
        clock_.SleepFor(NextBackoff(), stop);
        continue;
      }
      need_list = false;
    }
    switch (WatchOnce(stop, handler)) {
      case StreamEnd::kStopped:
        return;
      case StreamEnd::kResume:
        break;
      case StreamEnd::kRelist:
        spdlog::info("watch {}: resourceVersion {} is gone; listing again", Describe(),
                     resource_version());
        need_list = true;
        break;
      case StreamEnd::kBackoff:
        clock_.SleepFor(NextBackoff(), stop);
        break;
    }
  }
}

}  // namespace dpcm::watch
