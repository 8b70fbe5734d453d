#include "pkg/cache/informer.h"

#include <spdlog/spdlog.h>

namespace dpcm::cache {
namespace {

std::string ResourceVersionOf(const nlohmann::json& object) {
  if (!object.contains("metadata") || !object["metadata"].is_object()) return "";
  const auto rv = object["metadata"].find("resourceVersion");
  return rv != object["metadata"].end() && rv->is_string() ? rv->get<std::string>() : "";
}

}  // namespace

void DropManagedFields(nlohmann::json& object) {
  if (object.is_object() && object.contains("metadata") && object["metadata"].is_object()) {
    object["metadata"].erase("managedFields");
  }
}

Informer::Informer(client::ApiClient& client, client::ResourceRef ref, std::string ns,
                   InformerOptions options)
    : watcher_(client, std::move(ref), std::move(ns), std::move(options.watcher)),
      transform_(std::move(options.transform)) {}

Informer::~Informer() { Stop(); }

void Informer::AddHandlers(InformerHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void Informer::Start() {
  thread_ = std::jthread([this](const std::stop_token& stop) {
    watcher_.Run(stop, [this](watch::WatcherEvent&& event) { Handle(std::move(event)); });
  });
}

void Informer::Stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    thread_.join();
  }
  sync_changed_.notify_all();
}

bool Informer::WaitForSync(std::chrono::milliseconds timeout, const std::stop_token& stop) {
  std::unique_lock lock(sync_mutex_);
  sync_changed_.wait_for(lock, stop, timeout, [this] { return synced_.load(); });
  return synced_.load();
}

ObjectPtr Informer::Prepare(nlohmann::json&& object) const {
  if (transform_) transform_(object);
  return std::make_shared<const nlohmann::json>(std::move(object));
}

void Informer::Handle(watch::WatcherEvent&& event) {
  // Handlers and transforms run on this thread: an exception from one (bad data from the
  // API) is logged and must not end the process.
  try {
    HandleEvent(std::move(event));
  } catch (const std::exception& e) {
    spdlog::error("informer {}: event dropped: {}", watcher_.ref().Describe(), e.what());
  }
}

void Informer::HandleEvent(watch::WatcherEvent&& event) {
  switch (event.type) {
    case watch::WatcherEventType::kInitStart:
      relist_buffer_.clear();
      return;
    case watch::WatcherEventType::kInitApply:
      relist_buffer_.push_back(Prepare(std::move(event.object)));
      return;
    case watch::WatcherEventType::kInitDone: {
      std::vector<ObjectPtr> listed = std::move(relist_buffer_);
      relist_buffer_.clear();
      auto previous = store_.Replace(listed);
      for (const auto& object : listed) {
        const auto old = previous.find(KeyOf(*object));
        if (old == previous.end()) {
          for (auto& h : handlers_) {
            if (h.on_add) h.on_add(object);
          }
        } else {
          if (ResourceVersionOf(*old->second) != ResourceVersionOf(*object)) {
            for (auto& h : handlers_) {
              if (h.on_update) h.on_update(old->second, object);
            }
          }
          previous.erase(old);
        }
      }
      for (const auto& [key, gone] : previous) {
        for (auto& h : handlers_) {
          if (h.on_delete) h.on_delete(gone);
        }
      }
      {
        std::lock_guard lock(sync_mutex_);
        synced_ = true;
      }
      sync_changed_.notify_all();
      return;
    }
    case watch::WatcherEventType::kApply: {
      ObjectPtr object = Prepare(std::move(event.object));
      ObjectPtr old = store_.Upsert(object);
      for (auto& h : handlers_) {
        if (old == nullptr && h.on_add) h.on_add(object);
        if (old != nullptr && h.on_update) h.on_update(old, object);
      }
      return;
    }
    case watch::WatcherEventType::kDelete: {
      ObjectPtr object = Prepare(std::move(event.object));
      store_.Remove(KeyOf(*object));
      for (auto& h : handlers_) {
        if (h.on_delete) h.on_delete(object);
      }
      return;
    }
  }
}

}  // namespace dpcm::cache
