#include "pkg/cache/packed.h"

namespace dpcm::cache {

PackedObject Pack(const nlohmann::json& object) {
  std::string bytes;
  nlohmann::json::to_msgpack(object, bytes);
  bytes.shrink_to_fit();
  return std::make_shared<const std::string>(std::move(bytes));
}

ObjectPtr Unpack(const PackedObject& packed) {
  if (packed == nullptr) return nullptr;
  return std::make_shared<const nlohmann::json>(nlohmann::json::from_msgpack(*packed));
}

}  // namespace dpcm::cache
