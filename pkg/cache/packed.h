// Kubernetes objects kept packed (MessagePack) while they wait in memory, unpacked to read.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace dpcm::cache {

// A cached object as a reader gets it: immutable; the reader keeps its snapshot for as long
// as it holds the pointer, whatever the writer does meanwhile.
using ObjectPtr = std::shared_ptr<const nlohmann::json>;

// An object packed as MessagePack: a JSON tree costs about 100 bytes per field (a map node,
// a key, a value), its packed form about the size of its JSON text or less. Immutable and
// shareable; null for "no object".
using PackedObject = std::shared_ptr<const std::string>;

// Packs `object` (any JSON value).
PackedObject Pack(const nlohmann::json& object);
// A new tree equal to the object that was packed; null for null.
ObjectPtr Unpack(const PackedObject& packed);

}  // namespace dpcm::cache
