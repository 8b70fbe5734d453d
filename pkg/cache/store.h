// A thread-safe cache of API objects keyed by namespace/name, with secondary indexes.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pkg/cache/packed.h"

namespace dpcm::cache {

// "namespace/name", or "name" for cluster-scoped objects; "" if the object has no name.
std::string KeyOf(const nlohmann::json& object);

// Values an object is indexed under (e.g. its owner's name). May return none.
using IndexFunc = std::function<std::vector<std::string>(const nlohmann::json&)>;

// The index every store has: one value "key=value" per label.
inline constexpr std::string_view kLabelIndex = "labels";

// One writer (the informer), many readers. Readers get const access only; every
// method is thread-safe. Indexes must be added before the first write.
//
// Objects are kept packed (packed.h), not as JSON trees. heaptrack at 300 domains x 3 pods: the
// trees took 7.6 MiB (~3.9 KiB per trimmed pod, ~13 KiB per ProcessDomain with its Lease), the
// store packed as MessagePack 1.7 MiB with its indexes, packed in today's form with one indexed
// label 0.70 MiB in five allocations per object; now each object is one block (its key and
// bytes) and the indexes hold views of its key (issue 12: memory per managed pod). Every read
// unpacks a private copy (a reconcile reads its domain's handful), so two reads of one version
// return equal objects, not the same pointer.
class Store {
 public:
  // `indexed_labels`: the label keys ByLabel can find objects by; none given: every label.
  // Each indexed label costs an index entry per object, so a cache of thousands of pods
  // indexes only the labels it is looked up by.
  explicit Store(std::optional<std::set<std::string>> indexed_labels = std::nullopt);

  // Adds a named index. Call before any object is stored.
  void AddIndex(const std::string& name, IndexFunc func);

  ObjectPtr Get(std::string_view key) const;
  ObjectPtr Get(std::string_view ns, std::string_view name) const;
  std::vector<ObjectPtr> List() const;
  // Objects whose index `index` holds `value`; empty for an unknown index.
  std::vector<ObjectPtr> ByIndex(std::string_view index, std::string_view value) const;
  // Objects in `ns` that carry label `key`=`value` (through the label index); none when
  // `key` is not among the indexed labels.
  std::vector<ObjectPtr> ByLabel(std::string_view ns, std::string_view key,
                                 std::string_view value) const;
  size_t size() const;

  // Writer side. Upsert returns the object it replaced (null if new); Remove returns
  // the removed object (null if absent).
  ObjectPtr Upsert(const ObjectPtr& object);
  ObjectPtr Remove(const std::string& key);
  // Replaces the whole content; returns the previous content by key.
  std::map<std::string, ObjectPtr> Replace(const std::vector<ObjectPtr>& objects);
  // Replaces the objects of namespace `ns` only (all of them if `ns` is empty) with
  // `objects`, which must all be in `ns`; returns what `ns` held before, by key.
  std::map<std::string, ObjectPtr> ReplaceNamespace(std::string_view ns,
                                                    const std::vector<ObjectPtr>& objects);

 private:
  static std::vector<ObjectPtr> UnpackAll(const std::vector<PackedObject>& packed);

  // `key` must stay valid while indexed: a view of a stored object's key.
  void IndexLocked(std::string_view key, const nlohmann::json& object);    // requires write lock
  void UnindexLocked(std::string_view key, const nlohmann::json& object);  // requires write lock
  // Stores `object`, packed with its key as `packed`; returns what it replaced, unpacked.
  ObjectPtr PutLocked(const nlohmann::json& object, PackedObject&& packed);  // requires write lock
  // Drops the object stored under `it`; returns it unpacked.
  ObjectPtr EraseLocked(std::unordered_map<std::string_view, PackedObject>::iterator it);

  mutable std::shared_mutex mutex_;
  // Each object is one block holding its key and packed bytes; the map's key and the
  // indexes' keys are views of that key (issue 12: one allocation per cached object, not
  // five).
  std::unordered_map<std::string_view, PackedObject> objects_;
  std::map<std::string, IndexFunc, std::less<>> index_funcs_;
  // index name -> value -> keys, sorted (a vector: most values have a handful of keys, and
  // a set node each cost 64 bytes; issue 12)
  std::map<std::string, std::map<std::string, std::vector<std::string_view>, std::less<>>,
           std::less<>>
      indexes_;
};

}  // namespace dpcm::cache
