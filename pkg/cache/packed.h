// Kubernetes objects kept packed (a compact binary form) in memory, unpacked to read.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

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
// private to the process (nothing packed is stored or sent). Immutable and shareable; null
// for "no object".
using PackedObject = std::shared_ptr<const std::string>;

// Packs `object` (any JSON value).
PackedObject Pack(const nlohmann::json& object);
// A new tree equal to the object that was packed; null for null. Throws std::runtime_error
// on bytes Pack did not make.
ObjectPtr Unpack(const PackedObject& packed);

}  // namespace dpcm::cache
