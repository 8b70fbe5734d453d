// Kubernetes objects kept packed (a compact binary form) in memory, unpacked to read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dpcm::cache {

// A cached object as a reader gets it: immutable; the reader keeps its snapshot for as long
// as it holds the pointer, whatever the writer does meanwhile.
using ObjectPtr = std::shared_ptr<const nlohmann::json>;

// An object packed: a JSON tree costs about 100 bytes per field (a map node, a key, a
// value); packed, the field names and values that recur in Kubernetes objects ("metadata",
// "ownerReferences", "True", "Ready", ...) are one byte each, UUIDs 17 bytes, timestamps a
// varint, and a string repeated within the object (a domain's name in its pod's labels and
// owner reference) a back-reference. A pod as the operator caches it: 170 bytes, against
// 570 as MessagePack and 710 as JSON text (issue 12: memory per managed pod). The form is
// private to the process (nothing packed is stored or sent).
//
// Immutable and shareable (copies share one block); default-constructed it is "no object".
// The block may start with a text the holder files the object under (PackWithKey: a cache's
// "namespace/name"), so that a cached object is one allocation, not four (a map key, a
// shared pointer's control block, a string and its bytes).
class PackedObject {
 public:
  PackedObject() = default;
  PackedObject(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): "no object"

  // The packed form ("" for no object).
  std::string_view bytes() const { return {block_.get() + key_size_, bytes_size_}; }
  // The text given to PackWithKey ("" for Pack); valid while a copy of this object lives.
  std::string_view key() const { return {block_.get(), key_size_}; }

  explicit operator bool() const { return block_ != nullptr; }
  friend bool operator==(const PackedObject& packed, std::nullptr_t) { return !packed; }

 private:
  friend PackedObject PackWithKey(std::string_view key, const nlohmann::json& object);

  std::shared_ptr<const char[]> block_;  // key, then bytes
  uint32_t key_size_ = 0;
  uint32_t bytes_size_ = 0;
};

// Packs `object` (any JSON value).
PackedObject Pack(const nlohmann::json& object);
// Packs `object` into one block after `key` (PackedObject::key). Throws std::length_error
// beyond 4 GiB.
PackedObject PackWithKey(std::string_view key, const nlohmann::json& object);
// A new tree equal to the object that was packed; null for no object. Throws
// std::runtime_error on bytes Pack did not make.
ObjectPtr Unpack(const PackedObject& packed);
// The same from the bytes alone (PackedObject::bytes).
ObjectPtr UnpackBytes(std::string_view bytes);

}  // namespace dpcm::cache
