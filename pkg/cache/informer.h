// Keeps a Store in step with the API server through a Watcher and tells handlers what changed.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stop_token>
#include <string>
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
  // The label keys the store's ByLabel finds objects by; unset: every label (Store).
  std::optional<std::set<std::string>> indexed_labels;
};

// The reflector + informer of client-go in one: a thread that runs a Watcher and is the
// store's only writer. After a relist it reports only what changed (adds, updates with
// a new resourceVersion, deletes of what vanished).
//
// Several namespaces get one Watcher (and thread) each, all feeding the one store, so
// that an identity with a Role in each namespace and no cluster-wide rights can run it
// (controller-runtime's multi-namespace cache). Their writes and handler calls are
// serialised: handlers still run one at a time, and a namespace's relist replaces only
// that namespace's objects.
class Informer {
 public:
  // `client` must outlive the informer. `ns` empty: every namespace.
  Informer(client::ApiClient& client, const client::ResourceRef& ref, std::string ns,
           InformerOptions options = {});
  // One list+watch per namespace in `namespaces` (duplicates ignored); none, or one
  // empty name: every namespace with a single cluster-wide watch.
  Informer(client::ApiClient& client, const client::ResourceRef& ref,
           const std::vector<std::string>& namespaces, InformerOptions options = {});
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

  // True once the first list of every namespace has been stored (the cache's "synced"
  // signal).
  bool HasSynced() const { return synced_.load(); }
  // Waits until synced, `timeout` passes, or `stop` fires. Returns HasSynced().
  bool WaitForSync(std::chrono::milliseconds timeout, const std::stop_token& stop = {});

  // Read-only view for any number of readers.
  const Store& store() const { return store_; }
  // The first namespace's watcher (the only one unless several namespaces were given).
  const watch::Watcher& watcher() const { return sources_.front()->watcher; }
  // "pods", "pods in NS" or "pods in 3 namespaces", for logs.
  std::string Describe() const;

 private:
  // One namespace's list+watch.
  struct Source {
    Source(client::ApiClient& client, client::ResourceRef ref, std::string ns,
           watch::WatcherOptions options)
        : watcher(client, std::move(ref), std::move(ns), std::move(options)) {}
    watch::Watcher watcher;
    std::vector<ObjectPtr> relist_buffer;  // guarded by handle_mutex_
    bool synced = false;                   // guarded by handle_mutex_
    std::jthread thread;
  };
  void Handle(Source& source, watch::WatcherEvent&& event);
  void HandleEvent(Source& source, watch::WatcherEvent&& event);  // requires handle_mutex_
  void Relisted(Source& source);                                  // requires handle_mutex_
  ObjectPtr Prepare(nlohmann::json&& object) const;

  Transform transform_;
  Store store_;
  std::vector<InformerHandlers> handlers_;
  std::vector<std::unique_ptr<Source>> sources_;  // never empty
  std::mutex handle_mutex_;    // one source at a time writes the store and calls handlers
  size_t synced_sources_ = 0;  // guarded by handle_mutex_
  std::atomic<bool> synced_{false};
  std::mutex sync_mutex_;
  std::condition_variable_any sync_changed_;
};

}  // namespace dpcm::cache
