// Reading a lagging cache through this process's own writes.
#include "pkg/cache/own_writes.h"

#include <doctest/doctest.h>

#include <memory>

namespace dpcm::cache {
namespace {

ObjectPtr Version(const std::string& rv, int replicas) {
  return std::make_shared<const nlohmann::json>(
      nlohmann::json{{"metadata", {{"name", "d"}, {"namespace", "ns"}, {"resourceVersion", rv}}},
                     {"spec", {{"replicas", replicas}}}});
}

TEST_CASE("own writes: a cache still at the replaced version reads as the written object") {
  OwnWrites writes;
  writes.Wrote("ns/d", "1", *Version("2", 3));
  const ObjectPtr latest = writes.Latest("ns/d", Version("1", 2));
  REQUIRE(latest != nullptr);
  CHECK(*latest == *Version("2", 3));
  // Still behind on the next read: the record stays until the cache moves.
  CHECK(*writes.Latest("ns/d", Version("1", 2)) == *Version("2", 3));
}

TEST_CASE("own writes: once the cache shows any other version, the cache wins for good") {
  OwnWrites writes;
  writes.Wrote("ns/d", "1", *Version("2", 3));
  const ObjectPtr newer = Version("5", 4);  // someone else wrote after us
  CHECK(writes.Latest("ns/d", newer) == newer);
  // The record is gone: even the old version is now read as cached.
  const ObjectPtr old = Version("1", 2);
  CHECK(writes.Latest("ns/d", old) == old);
}

TEST_CASE("own writes: a create is read through until the cache has the object") {
  OwnWrites writes;
  writes.Wrote("ns/d", "", *Version("1", 1));
  const ObjectPtr latest = writes.Latest("ns/d", nullptr);
  REQUIRE(latest != nullptr);
  CHECK(*latest == *Version("1", 1));
  writes.Forget("ns/d");
  CHECK(writes.Latest("ns/d", nullptr) == nullptr);
}

TEST_CASE("own writes: other keys and an unrecorded key read the cache") {
  OwnWrites writes;
  writes.Wrote("ns/a", "1", *Version("2", 3));
  const ObjectPtr cached = Version("1", 2);
  CHECK(writes.Latest("ns/d", cached) == cached);
  CHECK(writes.Latest("ns/d", nullptr) == nullptr);
}

TEST_CASE("own writes: the written object is kept without managedFields, as informers cache it") {
  OwnWrites writes;
  nlohmann::json answer = *Version("2", 3);
  answer["metadata"]["managedFields"] = nlohmann::json::array({{{"manager", "dpcm"}}});
  writes.Wrote("ns/d", "1", answer);
  CHECK(*writes.Latest("ns/d", Version("1", 2)) == *Version("2", 3));
}

}  // namespace
}  // namespace dpcm::cache
