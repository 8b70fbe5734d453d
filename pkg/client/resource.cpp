#include "pkg/client/resource.h"

#include <array>

namespace dpcm::client {

std::string PercentEncode(std::string_view text) {
  static constexpr std::array<char, 16> kHex = {'0', '1', '2', '3', '4', '5', '6', '7',
                                                '8', '9', 'A', 'B', 'C', 'D', 'E', 'F'};
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    const bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex.at(byte >> 4U));
      out.push_back(kHex.at(byte & 0xFU));
    }
  }
  return out;
}

namespace {

// A percent-encoded path segment. "." and ".." are unreserved, so PercentEncode keeps
// them, but as whole segments a client, proxy or server resolves them (RFC 3986
// remove_dot_segments): spell them with %2E so they stay names.
std::string PathSegment(std::string_view text) {
  if (text == ".") return "%2E";
  if (text == "..") return "%2E%2E";
  return PercentEncode(text);
}

}  // namespace

std::string ResourceRef::Path(std::string_view ns, std::string_view name,
                              std::string_view subresource) const {
  std::string path = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) path += "/namespaces/" + PathSegment(ns);
  path += "/" + resource;
  if (!name.empty()) {
    path += "/" + PathSegment(name);
    if (!subresource.empty()) path += "/" + PathSegment(subresource);
  }
  return path;
}

std::string ResourceRef::Describe() const {
  return group.empty() ? resource : resource + "." + group;
}

namespace resources {
ResourceRef Pods() { return {"", "v1", "pods", true}; }
ResourceRef ConfigMaps() { return {"", "v1", "configmaps", true}; }
ResourceRef Services() { return {"", "v1", "services", true}; }
ResourceRef Events() { return {"", "v1", "events", true}; }
ResourceRef Nodes() { return {"", "v1", "nodes", false}; }
ResourceRef Namespaces() { return {"", "v1", "namespaces", false}; }
ResourceRef Leases() { return {"coordination.k8s.io", "v1", "leases", true}; }
ResourceRef CustomResourceDefinitions() {
  return {"apiextensions.k8s.io", "v1", "customresourcedefinitions", false};
}
ResourceRef ProcessDomains() { return {"dpcm.io", "v1alpha1", "processdomains", true}; }
}  // namespace resources

std::string ListOptions::Query(bool watch) const {
  std::string query;
  auto add = [&query](std::string_view key, std::string_view value) {
    query += query.empty() ? '?' : '&';
    query += key;
    query += '=';
    query += PercentEncode(value);
  };
  if (watch) add("watch", "1");
  if (!label_selector.empty()) add("labelSelector", label_selector);
  if (!field_selector.empty()) add("fieldSelector", field_selector);
  if (limit > 0 && !watch) add("limit", std::to_string(limit));
  if (!continue_token.empty() && !watch) add("continue", continue_token);
  if (!resource_version.empty()) add("resourceVersion", resource_version);
  if (timeout_seconds > 0) add("timeoutSeconds", std::to_string(timeout_seconds));
  if (allow_watch_bookmarks && watch) add("allowWatchBookmarks", "true");
  return query;
}

}  // namespace dpcm::client
