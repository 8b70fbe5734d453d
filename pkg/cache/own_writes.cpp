#include "pkg/cache/own_writes.h"

#include "pkg/cache/informer.h"
#include "pkg/object/object.h"

namespace dpcm::cache {

void OwnWrites::Wrote(const std::string& key, const std::string& before, nlohmann::json after) {
  DropManagedFields(after);           // as the informers cache it; often the largest part
  PackedObject packed = Pack(after);  // outside the lock
  std::lock_guard lock(mutex_);
  written_[key] = {before, std::move(packed)};
}

ObjectPtr OwnWrites::Latest(const std::string& key, const ObjectPtr& cached) {
  std::lock_guard lock(mutex_);
  const auto it = written_.find(key);
  if (it == written_.end()) return cached;
  const std::string seen = cached == nullptr ? "" : object::Meta(*cached, "resourceVersion");
  const bool behind = cached == nullptr ? it->second.before.empty() : seen == it->second.before;
  if (behind) return Unpack(it->second.after);
  written_.erase(it);
  return cached;
}

void OwnWrites::Forget(const std::string& key) {
  std::lock_guard lock(mutex_);
  written_.erase(key);
}

}  // namespace dpcm::cache
