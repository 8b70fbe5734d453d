// Names any API resource by group/version/resource and builds its REST paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dpcm::client {

// A resource type the API serves, e.g. {"", "v1", "pods"} or
// {"coordination.k8s.io", "v1", "leases"}. CRDs need no generated code: name them here.
struct ResourceRef {
  std::string group;     // "" for the core group
  std::string version;   // "v1", "v1alpha1"
  std::string resource;  // lower-case plural: "pods", "processdomains"
  bool namespaced = true;

  // "/api/v1/namespaces/NS/pods/NAME/SUBRESOURCE". An empty `ns` on a namespaced
  // resource means all namespaces; empty `name` means the collection. Path segments
  // are percent-encoded, so names from the cluster cannot change the path's shape.
  std::string Path(std::string_view ns, std::string_view name = {},
                   std::string_view subresource = {}) const;
  // "pods" or "leases.coordination.k8s.io": for messages and metrics.
  std::string Describe() const;
};

namespace resources {
ResourceRef Pods();
ResourceRef ConfigMaps();
ResourceRef Services();
ResourceRef Events();
ResourceRef Nodes();
ResourceRef Namespaces();
ResourceRef Leases();
ResourceRef CustomResourceDefinitions();
ResourceRef ProcessDomains();
}  // namespace resources

// Query parameters of list and watch requests (metav1.ListOptions).
struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  int64_t limit = 0;             // page size; 0 = no paging
  std::string continue_token;    // from the previous page's metadata.continue
  std::string resource_version;  // "" = most recent (quorum read); "0" = any cached
  int timeout_seconds = 0;       // server-side watch timeout; 0 = server default
  bool allow_watch_bookmarks = false;

  // The query string, starting with '?' (or empty), with every value percent-encoded.
  std::string Query(bool watch) const;
};

// Percent-encodes `text` for use in a URL path segment or query value.
std::string PercentEncode(std::string_view text);

}  // namespace dpcm::client
