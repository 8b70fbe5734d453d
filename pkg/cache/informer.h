// Keeps a Store in step with the API server through a Watcher and tells handlers what changed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stop_token>
#include <thread>
#include <vector>

#include "pkg/cache/store.h"
#include "pkg/client/api_client.h"
#include "pkg/watch/watcher.h"

namespace dpcm::cache {

// Callbacks run on the informer's thread, after the store already reflects the change,
// one at a time and in resourceVersion order. They must not block for long.
struct InformerHandlers {
  std::function<void(const ObjectPtr& object)> on_add;
  std::function<void(const ObjectPtr& old_object, const ObjectPtr& new_object)> on_update;
  std::function<void(const ObjectPtr& object)> on_delete;
};

// Shrinks an object before it is cached (memory matters at thousands of pods).
using Transform = std::function<void(nlohmann::json& object)>;

// Drops metadata.managedFields, which no controller here reads and which is often the
// largest part of an object.
void DropManagedFields(nlohmann::json& object);

struct InformerOptions {
  watch::WatcherOptions watcher;
  Transform transform = DropManagedFields;
};

// The reflector + informer of client-go in one: a thread that runs a Watcher and is the
// store's only writer. After a relist it reports only what changed (adds, updates with
// a new resourceVersion, deletes of what vanished).
class Informer {
 public:
  // `client` must outlive the informer.
  Informer(client::ApiClient& client, client::ResourceRef ref, std::string ns,
           InformerOptions options = {});
  ~Informer();  // stops and joins
  Informer(const Informer&) = delete;
  Informer& operator=(const Informer&) = delete;

  // Adds indexes and handlers; only before Start().
  void AddIndex(const std::string& name, IndexFunc func) { store_.AddIndex(name, std::move(func)); }
  void AddHandlers(InformerHandlers handlers);

  // Starts the watch thread. Call once.
  void Start();
  // Stops the thread and waits for it. Safe to call more than once.
  void Stop();

  // True once the first list has been stored (the cache's "synced" signal).
  bool HasSynced() const { return synced_.load(); }
  // Waits until synced, `timeout` passes, or `stop` fires. Returns HasSynced().
  bool WaitForSync(std::chrono::milliseconds timeout, const std::stop_token& stop = {});

  // Read-only view for any number of readers.
  const Store& store() const { return store_; }
  const watch::Watcher& watcher() const { return watcher_; }

 private:
  void Handle(watch::WatcherEvent&& event);
  void HandleEvent(watch::WatcherEvent&& event);
  ObjectPtr Prepare(nlohmann::json&& object) const;

  watch::Watcher watcher_;
  Transform transform_;
  Store store_;
  std::vector<InformerHandlers> handlers_;
  std::vector<ObjectPtr> relist_buffer_;  // only touched on the watch thread
  std::atomic<bool> synced_{false};
  std::mutex sync_mutex_;
  std::condition_variable_any sync_changed_;
  std::jthread thread_;
};

}  // namespace dpcm::cache
