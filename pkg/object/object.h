// Kubernetes objects as JSON: reading metadata, labels and annotations, and JSON-patch ops on them.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace dpcm::object {

// The string at top-level `key` of `object`, or "" when it is absent or not a string, or
// `object` is not an object (a proxy's JSON is not the API server's). Never throws.
std::string StringField(const nlohmann::json& object, std::string_view key);

// The string at `pointer`, or "" when it is absent or not a string. Never throws.
std::string StringAt(const nlohmann::json& object, const nlohmann::json::json_pointer& pointer);

// metadata.<key> as a string ("name", "namespace", "uid", "resourceVersion"), or "".
std::string Meta(const nlohmann::json& object, std::string_view key);

// metadata.generation, or 0.
int64_t Generation(const nlohmann::json& object);

// metadata.labels[key] / metadata.annotations[key], or "" when absent or not a string.
std::string Label(const nlohmann::json& object, std::string_view key);
std::string Annotation(const nlohmann::json& object, std::string_view key);

// True when metadata.labels[key] == value.
bool HasLabel(const nlohmann::json& object, std::string_view key, std::string_view value);

// The JSON pointer "/metadata/<map>/<key>", with '/' and '~' in `key` escaped
// ("/metadata/labels/dpcm.io~1role").
nlohmann::json::json_pointer MetadataPointer(std::string_view map, std::string_view key);

// JSON-patch (RFC 6902) ops. Each returns one op object, to be put in an array.
// "test" that metadata.resourceVersion is still `rv`: the patch fails as a whole (422)
// when the object changed since it was read.
nlohmann::json TestResourceVersion(const std::string& rv);
// Sets metadata.<map>[key] = value, creating the map when `object` has none.
nlohmann::json SetInMap(const nlohmann::json& object, std::string_view map, std::string_view key,
                        const std::string& value);
// Removes metadata.<map>[key]; only valid when `object` has it (see Annotation / Label).
nlohmann::json RemoveFromMap(std::string_view map, std::string_view key);

}  // namespace dpcm::object
