#include "pkg/object/object.h"

#include <vector>

namespace dpcm::object {

using nlohmann::json;

std::string StringField(const json& object, std::string_view key) {
  if (!object.is_object()) return "";
  const auto it = object.find(std::string(key));
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

std::string StringAt(const json& object, const json::json_pointer& pointer) {
  // contains() on a pointer through a non-object throws in some nlohmann versions:
  // walk by hand instead.
  const json* at = &object;
  json::json_pointer rest = pointer;
  std::vector<std::string> tokens;
  while (!rest.empty()) {
    tokens.insert(tokens.begin(), rest.back());
    rest.pop_back();
  }
  for (const auto& token : tokens) {
    if (!at->is_object()) return "";
    const auto it = at->find(token);
    if (it == at->end()) return "";
    at = &*it;
  }
  return at->is_string() ? at->get<std::string>() : "";
}

std::string Meta(const json& object, std::string_view key) {
  return StringAt(object, json::json_pointer("/metadata") / std::string(key));
}

int64_t Generation(const json& object) {
  if (!object.is_object()) return 0;
  const auto metadata = object.find("metadata");
  if (metadata == object.end() || !metadata->is_object()) return 0;
  const auto generation = metadata->find("generation");
  return generation != metadata->end() && generation->is_number_integer()
             ? generation->get<int64_t>()
             : 0;
}

std::string Label(const json& object, std::string_view key) {
  return StringAt(object, MetadataPointer("labels", key));
}

std::string Annotation(const json& object, std::string_view key) {
  return StringAt(object, MetadataPointer("annotations", key));
}

bool HasLabel(const json& object, std::string_view key, std::string_view value) {
  const json* labels = object.is_object() && object.contains("metadata") &&
                               object["metadata"].is_object() &&
                               object["metadata"].contains("labels")
                           ? &object["metadata"]["labels"]
                           : nullptr;
  if (labels == nullptr || !labels->is_object()) return false;
  const auto it = labels->find(std::string(key));
  return it != labels->end() && it->is_string() && it->get<std::string>() == value;
}

json::json_pointer MetadataPointer(std::string_view map, std::string_view key) {
  return json::json_pointer("/metadata") / std::string(map) / std::string(key);
}

json TestResourceVersion(const std::string& rv) {
  return {{"op", "test"}, {"path", "/metadata/resourceVersion"}, {"value", rv}};
}

json SetInMap(const json& object, std::string_view map, std::string_view key,
              const std::string& value) {
  const bool has_map = object.is_object() && object.contains("metadata") &&
                       object["metadata"].is_object() &&
                       object["metadata"].contains(std::string(map)) &&
                       object["metadata"][std::string(map)].is_object();
  if (has_map) {
    return {{"op", "add"}, {"path", MetadataPointer(map, key).to_string()}, {"value", value}};
  }
  return {{"op", "add"},
          {"path", "/metadata/" + std::string(map)},
          {"value", {{std::string(key), value}}}};
}

json RemoveFromMap(std::string_view map, std::string_view key) {
  return {{"op", "remove"}, {"path", MetadataPointer(map, key).to_string()}};
}

}  // namespace dpcm::object
