#include "pkg/cache/informer.h"

#include <spdlog/spdlog.h>

#include <set>

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

Informer::Informer(client::ApiClient& client, const client::ResourceRef& ref, std::string ns,
                   InformerOptions options)
    : Informer(client, ref, std::vector<std::string>{std::move(ns)}, std::move(options)) {}

Informer::Informer(client::ApiClient& client, const client::ResourceRef& ref,
                   const std::vector<std::string>& namespaces, InformerOptions options)
    : transform_(std::move(options.transform)), store_(std::move(options.indexed_labels)) {
  const std::set<std::string> distinct(namespaces.begin(), namespaces.end());
  // Every namespace (none named, or "" among them), or a cluster-scoped kind: one watch.
  if (distinct.empty() || distinct.count("") != 0 || !ref.namespaced) {
    sources_.push_back(std::make_unique<Source>(client, ref, "", options.watcher));
    return;
  }
  for (const auto& ns : distinct) {
    sources_.push_back(std::make_unique<Source>(client, ref, ns, options.watcher));
  }
}

Informer::~Informer() { Stop(); }

std::string Informer::Describe() const {
  if (sources_.size() == 1) return sources_.front()->watcher.Describe();
  return sources_.front()->watcher.ref().Describe() + " in " + std::to_string(sources_.size()) +
         " namespaces";
}

void Informer::AddHandlers(InformerHandlers handlers) { handlers_.push_back(std::move(handlers)); }

void Informer::Start() {
  for (auto& source : sources_) {
    source->thread = std::jthread([this, &mine = *source](const std::stop_token& stop) {
      mine.watcher.Run(
          stop, [this, &mine](watch::WatcherEvent&& event) { Handle(mine, std::move(event)); });
    });
  }
}

void Informer::Stop() {
  for (auto& source : sources_) source->thread.request_stop();
  for (auto& source : sources_) {
    if (source->thread.joinable()) source->thread.join();
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

void Informer::Handle(Source& source, watch::WatcherEvent&& event) {
  // Handlers and transforms run on this thread: an exception from one (bad data from the
  // API) is logged and must not end the process.
  try {
    std::lock_guard lock(handle_mutex_);
    HandleEvent(source, std::move(event));
  } catch (const std::exception& e) {
    spdlog::error("informer {}: event dropped: {}", source.watcher.Describe(), e.what());
  }
}

void Informer::Relisted(Source& source) {
  std::vector<ObjectPtr> listed = std::move(source.relist_buffer);
  source.relist_buffer.clear();
  auto previous = store_.ReplaceNamespace(source.watcher.ns(), listed);
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
  if (source.synced) return;
  source.synced = true;
  if (++synced_sources_ < sources_.size()) return;
  {
    std::lock_guard lock(sync_mutex_);
    synced_ = true;
  }
  sync_changed_.notify_all();
}

void Informer::HandleEvent(Source& source, watch::WatcherEvent&& event) {
  switch (event.type) {
    case watch::WatcherEventType::kInitStart:
      source.relist_buffer.clear();
      return;
    case watch::WatcherEventType::kInitApply:
      source.relist_buffer.push_back(Prepare(std::move(event.object)));
      return;
    case watch::WatcherEventType::kInitDone:
      Relisted(source);
      return;
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
