// This process's own recent writes, so that a cache which has not seen them yet is read through
// them.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "pkg/cache/packed.h"

namespace dpcm::cache {

// An informer's cache lags the writes of its own process by a round trip: a reconcile
// triggered right after a write may see the object as it was before, and a conditional
// write based on that copy must fail (409). Writers record what they wrote here and read
// through Latest(). resourceVersions are compared for equality only (they are opaque).
// Thread-safe.
class OwnWrites {
 public:
  // Records that a write replaced the version `before` (the resourceVersion the writer
  // based it on; "" for a create) with `after` (the server's answer). Latest returns an
  // equal copy of `after` without its managedFields (as the informers cache objects).
  void Wrote(const std::string& key, const std::string& before, nlohmann::json after);

  // `cached` (the informer's copy of `key`, null when absent), unless it is exactly the
  // version our last write replaced (or absent after our create): then the object we
  // wrote. Once the cache shows our write or anything else, the record is dropped.
  ObjectPtr Latest(const std::string& key, const ObjectPtr& cached);

  void Forget(const std::string& key);

 private:
  struct Written {
    std::string before;
    // Packed: until the cache catches up, a domain in convergence holds its written
    // ProcessDomain and Lease here; as trees, 300 converging domains held 4.6 MiB.
    PackedObject after;
  };
  std::mutex mutex_;
  std::map<std::string, Written> written_;
};

}  // namespace dpcm::cache
