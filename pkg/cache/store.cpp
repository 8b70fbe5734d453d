#include "pkg/cache/store.h"

#include <algorithm>
#include <cassert>
#include <mutex>

namespace dpcm::cache {
namespace {

std::string StringAt(const nlohmann::json& object, const char* field) {
  if (!object.is_object()) return "";
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return "";
  const auto value = metadata->find(field);
  return value != metadata->end() && value->is_string() ? value->get<std::string>() : "";
}

std::vector<std::string> LabelValues(const std::optional<std::set<std::string>>& keys,
                                     const nlohmann::json& object) {
  std::vector<std::string> values;
  const std::string ns = StringAt(object, "namespace");
  const auto* labels =
      object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
              object["metadata"].contains("labels") && object["metadata"]["labels"].is_object()
          ? &object["metadata"]["labels"]
          : nullptr;
  if (labels == nullptr) return values;
  for (const auto& [key, value] : labels->items()) {
    if (!value.is_string() || (keys.has_value() && keys->count(key) == 0)) continue;
    values.push_back(ns + "/" + key + "=" + value.get<std::string>());
  }
  return values;
}

}  // namespace

std::string KeyOf(const nlohmann::json& object) {
  const std::string name = StringAt(object, "name");
  if (name.empty()) return "";
  const std::string ns = StringAt(object, "namespace");
  return ns.empty() ? name : ns + "/" + name;
}

Store::Store(std::optional<std::set<std::string>> indexed_labels) {
  AddIndex(std::string(kLabelIndex), [keys = std::move(indexed_labels)](const nlohmann::json& o) {
    return LabelValues(keys, o);
  });
}

void Store::AddIndex(const std::string& name, IndexFunc func) {
  std::unique_lock lock(mutex_);
  index_funcs_[name] = std::move(func);
  indexes_[name];
}

std::vector<ObjectPtr> Store::UnpackAll(const std::vector<PackedObject>& packed) {
  std::vector<ObjectPtr> out;
  out.reserve(packed.size());
  for (const auto& p : packed) out.push_back(Unpack(p));
  return out;
}

ObjectPtr Store::Get(std::string_view key) const {
  PackedObject found;
  {
    std::shared_lock lock(mutex_);
    const auto it = objects_.find(key);
    if (it != objects_.end()) found = it->second;
  }
  return Unpack(found);  // outside the lock: readers never hold up the writer for long
}

ObjectPtr Store::Get(std::string_view ns, std::string_view name) const {
  return Get(ns.empty() ? std::string(name) : std::string(ns) + "/" + std::string(name));
}

std::vector<ObjectPtr> Store::List() const {
  std::vector<PackedObject> found;
  {
    std::shared_lock lock(mutex_);
    found.reserve(objects_.size());
    for (const auto& [key, packed] : objects_) found.push_back(packed);
  }
  return UnpackAll(found);
}

std::vector<ObjectPtr> Store::ByIndex(std::string_view index, std::string_view value) const {
  std::vector<PackedObject> found;
  {
    std::shared_lock lock(mutex_);
    const auto by_value = indexes_.find(index);
    if (by_value == indexes_.end()) return {};
    const auto keys = by_value->second.find(value);
    if (keys == by_value->second.end()) return {};
    for (const auto& key : keys->second) {
      if (const auto it = objects_.find(key); it != objects_.end()) found.push_back(it->second);
    }
  }
  return UnpackAll(found);
}

std::vector<ObjectPtr> Store::ByLabel(std::string_view ns, std::string_view key,
                                      std::string_view value) const {
  std::string composite;
  composite.append(ns).append("/").append(key).append("=").append(value);
  return ByIndex(kLabelIndex, composite);
}

size_t Store::size() const {
  std::shared_lock lock(mutex_);
  return objects_.size();
}

void Store::IndexLocked(std::string_view key, const nlohmann::json& object) {
  for (const auto& [name, func] : index_funcs_) {
    for (auto& value : func(object)) {
      auto& keys = indexes_[name][value];
      const auto at = std::lower_bound(keys.begin(), keys.end(), key);
      if (at == keys.end() || *at != key) keys.insert(at, key);
    }
  }
}

void Store::UnindexLocked(std::string_view key, const nlohmann::json& object) {
  for (const auto& [name, func] : index_funcs_) {
    auto& by_value = indexes_[name];
    for (const auto& value : func(object)) {
      const auto it = by_value.find(value);
      if (it == by_value.end()) continue;
      auto& keys = it->second;
      const auto at = std::lower_bound(keys.begin(), keys.end(), key);
      if (at != keys.end() && *at == key) keys.erase(at);
      if (keys.empty()) {
        by_value.erase(it);
      } else if (keys.capacity() > 2 * keys.size()) {
        keys.shrink_to_fit();
      }
    }
  }
}

ObjectPtr Store::EraseLocked(std::unordered_map<std::string_view, PackedObject>::iterator it) {
  ObjectPtr previous = Unpack(it->second);
  UnindexLocked(it->first, *previous);
  objects_.erase(it);  // the key's block may go with it: unindexed first
  return previous;
}

ObjectPtr Store::PutLocked(const nlohmann::json& object, PackedObject&& packed) {
  ObjectPtr previous;
  if (const auto it = objects_.find(packed.key()); it != objects_.end()) {
    previous = EraseLocked(it);
  }
  const std::string_view key = packed.key();  // a view of the block the map keeps
  // The key was just erased: the insert happens, and the map keeps the block `key` views.
  const bool inserted = objects_.try_emplace(key, std::move(packed)).second;
  assert(inserted);
  (void)inserted;
  IndexLocked(key, object);
  return previous;
}

ObjectPtr Store::Upsert(const ObjectPtr& object) {
  const std::string key = KeyOf(*object);
  if (key.empty()) return nullptr;
  PackedObject packed = PackWithKey(key, *object);
  std::unique_lock lock(mutex_);
  return PutLocked(*object, std::move(packed));
}

ObjectPtr Store::Remove(const std::string& key) {
  std::unique_lock lock(mutex_);
  const auto it = objects_.find(key);
  if (it == objects_.end()) return nullptr;
  return EraseLocked(it);
}

std::map<std::string, ObjectPtr> Store::Replace(const std::vector<ObjectPtr>& objects) {
  std::unique_lock lock(mutex_);
  std::map<std::string, ObjectPtr> previous;
  for (const auto& [key, packed] : objects_) previous.emplace(key, Unpack(packed));
  for (auto& [name, by_value] : indexes_) by_value.clear();  // views of the blocks: first
  objects_.clear();
  for (const auto& object : objects) {
    const std::string key = KeyOf(*object);
    if (key.empty()) continue;
    PutLocked(*object, PackWithKey(key, *object));
  }
  return previous;
}

std::map<std::string, ObjectPtr> Store::ReplaceNamespace(std::string_view ns,
                                                         const std::vector<ObjectPtr>& objects) {
  if (ns.empty()) return Replace(objects);
  std::string prefix(ns);
  prefix += '/';
  std::unique_lock lock(mutex_);
  std::map<std::string, ObjectPtr> previous;
  for (auto it = objects_.begin(); it != objects_.end();) {
    if (it->first.starts_with(prefix)) {
      ObjectPtr old = Unpack(it->second);
      UnindexLocked(it->first, *old);
      previous.emplace(it->first, std::move(old));
      it = objects_.erase(it);  // unindexed first: the indexes held views of its key
    } else {
      ++it;
    }
  }
  for (const auto& object : objects) {
    const std::string key = KeyOf(*object);
    if (key.empty()) continue;
    // An object not in `ns` after all replaces whatever its key held all the same.
    PutLocked(*object, PackWithKey(key, *object));
  }
  return previous;
}

}  // namespace dpcm::cache
