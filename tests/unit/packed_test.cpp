// cache::Pack / Unpack: every JSON value comes back equal, and Kubernetes objects pack small.
#include "pkg/cache/packed.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>

namespace dpcm::cache {
namespace {

using Json = nlohmann::json;

Json RoundTrip(const Json& value) { return *Unpack(Pack(value)); }

// A pod as the operator caches it (domain::TrimPod's shape), with values as a cluster sets
// them: UUIDs, a namespace, the domain's name three times.
Json CachedPod() {
  return Json::parse(R"({
    "metadata": {
      "annotations": {"dpcm.io/fenced-epoch": "4"},
      "labels": {"app": "orders", "dpcm.io/domain": "orders", "dpcm.io/role": "pc"},
      "name": "orders-0", "namespace": "team-payments",
      "ownerReferences": [{"apiVersion": "dpcm.io/v1alpha1", "blockOwnerDeletion": true,
                           "controller": true, "kind": "ProcessDomain", "name": "orders",
                           "uid": "833b8d9a-e957-4ca8-a641-9b2192405487"}],
      "resourceVersion": "390", "uid": "761d24d9-39be-4402-bd47-739fdaaa037b"},
    "status": {
      "conditions": [{"status": "True", "type": "Initialized"}, {"status": "True", "type": "Ready"},
                     {"status": "True", "type": "ContainersReady"},
                     {"status": "True", "type": "PodScheduled"}],
      "containerStatuses": [{"lastState": {"terminated": {}}, "name": "app", "ready": true,
                             "restartCount": 2, "state": {"running": {}}}],
      "phase": "Running", "podIP": "10.244.1.17"}})");
}

TEST_CASE("Unpack(Pack(x)) == x for every kind of JSON value") {
  const Json values[] = {
      nullptr,
      true,
      false,
      0,
      15,
      16,
      300,
      std::numeric_limits<uint64_t>::max(),
      -1,
      -16,
      std::numeric_limits<int64_t>::min(),
      0.5,
      -1e300,
      "",
      "x",
      std::string(31, 'a'),
      std::string(32, 'b'),
      std::string(100000, 'c'),
      std::string("nul\0inside", 10),
      "ünïcode ✓",
      Json::array(),
      Json::object(),
      Json::array({1, "two", nullptr, Json::array({Json::object()})}),
      Json::binary({1, 2, 3}),
      Json::binary({4, 5}, 42),
      CachedPod(),
  };
  for (const auto& value : values) {
    CAPTURE(value.dump().substr(0, 80));
    CHECK(RoundTrip(value) == value);
  }
  CHECK(Unpack(nullptr) == nullptr);
}

TEST_CASE("PackWithKey keeps the key before the bytes, and copies share them") {
  const nlohmann::json pod = CachedPod();
  const PackedObject plain = Pack(pod);
  CHECK(plain.key().empty());
  const PackedObject keyed = PackWithKey("ns/db-0", pod);
  CHECK(keyed.key() == "ns/db-0");
  CHECK(keyed.bytes() == plain.bytes());
  CHECK(*Unpack(keyed) == pod);
  const PackedObject copy = keyed;  // NOLINT(performance-unnecessary-copy-initialization)
  CHECK(copy.key().data() == keyed.key().data());
  CHECK_FALSE(PackedObject());
  CHECK(PackedObject() == nullptr);
  CHECK(Unpack(PackedObject()) == nullptr);
}

TEST_CASE("strings that look like a UUID or a timestamp come back as the same text") {
  const char* strings[] = {
      // packed as 16 bytes / seconds / microseconds
      "761d24d9-39be-4402-bd47-739fdaaa037b",
      "00000000-0000-0000-0000-000000000000",
      "2026-12-03T13:40:17Z",
      "1970-01-01T00:00:00Z",
      "2026-12-03T13:40:20.905918Z",
      "2026-12-03T13:40:20.000001Z",
      // near misses: kept as text
      "761D24D9-39BE-4402-BD47-739FDAAA037B",
      "761d24d9-39be-4402-bd47-739fdaaa037",
      "761d24d9x39be-4402-bd47-739fdaaa037b",
      "761d24d9-39be-4402-bd47-739fdaaa037g",
      "2026-02-30T13:40:17Z",
      "2026-12-03T25:00:00Z",
      "1969-12-31T23:59:59Z",
      "2026-12-03T13:40:17+01:00",
      "2026-12-03 13:40:17Z",
      "+026-12-03T13:40:17Z",
      "2026-12-03T13:40:17.5Z",
      "2026-12-03T13:40:20.90591xZ",
      "2026-12-03T13:40:20.-05918Z",
      "2026-12-03T13:40:17.000000+",
  };
  for (const char* s : strings) {
    CAPTURE(s);
    CHECK(RoundTrip(s) == s);
    CHECK(RoundTrip(Json{{"key", s}, {"again", s}}) == Json{{"key", s}, {"again", s}});
  }
}

TEST_CASE("a string repeated within an object is packed once, and each copy comes back") {
  const std::string name = "a-rather-long-domain-name-of-a-team";
  const Json object = {{"labels", {{"app", name}, {"dpcm.io/domain", name}}},
                       {"owner", name},
                       {"other", "a-rather-long-domain-name-of-another-team"}};
  const auto packed = Pack(object);
  CHECK(packed.bytes().size() < 2 * name.size() + 50);
  CHECK(*Unpack(packed) == object);
}

TEST_CASE("a cached pod packs to under a third of MessagePack") {
  const Json pod = CachedPod();
  std::string msgpack;
  Json::to_msgpack(pod, msgpack);
  const auto packed = Pack(pod);
  CAPTURE(msgpack.size());
  CAPTURE(packed.bytes().size());
  CHECK(packed.bytes().size() * 3 < msgpack.size());
}

TEST_CASE("Unpack throws on bytes Pack never makes, instead of reading past them") {
  const std::string packed(Pack(CachedPod()).bytes());
  for (size_t cut = 0; cut < packed.size(); ++cut) {
    CAPTURE(cut);
    CHECK_THROWS(UnpackBytes(packed.substr(0, cut)));
  }
  CHECK_THROWS(UnpackBytes(packed + "x"));
  CHECK_THROWS(UnpackBytes("\xB7\x05"));          // repeat of nothing
  CHECK_THROWS(UnpackBytes("\xBF"));              // unused tag
  CHECK_THROWS(UnpackBytes("\xB9\x01\xA1\xA1"));  // int key
  CHECK_THROWS(UnpackBytes(std::string(11, '\xFF')));
}

}  // namespace
}  // namespace dpcm::cache
