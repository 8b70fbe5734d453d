// REST paths, list/watch query strings and delete options: what goes on the wire.
#include "pkg/client/resource.h"

#include <doctest/doctest.h>

#include <string>

#include "pkg/client/api_client.h"

namespace dpcm::client {
namespace {

TEST_CASE("ResourceRef::Path builds core, grouped, cluster-scoped and subresource paths") {
  CHECK(resources::Pods().Path("default", "web-0") == "/api/v1/namespaces/default/pods/web-0");
  CHECK(resources::Pods().Path("default") == "/api/v1/namespaces/default/pods");
  CHECK(resources::Pods().Path("") == "/api/v1/pods");  // all namespaces
  CHECK(resources::Pods().Path("default", "web-0", "binding") ==
        "/api/v1/namespaces/default/pods/web-0/binding");
  CHECK(resources::Leases().Path("kube-system", "dpcm-leader") ==
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/dpcm-leader");
  CHECK(resources::ProcessDomains().Path("ns", "pd", "status") ==
        "/apis/dpcm.io/v1alpha1/namespaces/ns/processdomains/pd/status");
  // Cluster-scoped resources ignore the namespace.
  CHECK(resources::Nodes().Path("ignored", "node-1") == "/api/v1/nodes/node-1");
  CHECK(resources::CustomResourceDefinitions().Path("", "processdomains.dpcm.io") ==
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/processdomains.dpcm.io");
}

TEST_CASE("ResourceRef::Describe names the resource with its group") {
  CHECK(resources::Pods().Describe() == "pods");
  CHECK(resources::Leases().Describe() == "leases.coordination.k8s.io");
}

TEST_CASE("ResourceRef::Path percent-encodes hostile names so they cannot change the path") {
  const auto pods = resources::Pods();
  CHECK(pods.Path("default", "../x") == "/api/v1/namespaces/default/pods/..%2Fx");
  CHECK(pods.Path("default", "a b") == "/api/v1/namespaces/default/pods/a%20b");
  CHECK(pods.Path("default", "a/b?c=d#e") == "/api/v1/namespaces/default/pods/a%2Fb%3Fc%3Dd%23e");
  CHECK(pods.Path("../kube-system", "x") == "/api/v1/namespaces/..%2Fkube-system/pods/x");
  CHECK(pods.Path("default", "x", "../../secrets") ==
        "/api/v1/namespaces/default/pods/x/..%2F..%2Fsecrets");
  CHECK(pods.Path("default", "caf\xC3\xA9") == "/api/v1/namespaces/default/pods/caf%C3%A9");
}

TEST_CASE("ResourceRef::Path never emits a dot segment that a server or proxy would resolve") {
  // "/pods/.." normalises to the namespace itself (RFC 3986 remove_dot_segments); a
  // name or namespace of "." or ".." must stay a plain segment.
  const auto pods = resources::Pods();
  CHECK(pods.Path("default", "..") == "/api/v1/namespaces/default/pods/%2E%2E");
  CHECK(pods.Path("default", ".") == "/api/v1/namespaces/default/pods/%2E");
  CHECK(pods.Path("..", "x") == "/api/v1/namespaces/%2E%2E/pods/x");
  CHECK(pods.Path("default", "x", "..") == "/api/v1/namespaces/default/pods/x/%2E%2E");
  // Dots inside a name are ordinary characters.
  CHECK(pods.Path("default", "a..b") == "/api/v1/namespaces/default/pods/a..b");
  CHECK(pods.Path("default", "...") == "/api/v1/namespaces/default/pods/...");
}

TEST_CASE("PercentEncode leaves unreserved characters alone and encodes the rest") {
  CHECK(PercentEncode("AZaz09-._~") == "AZaz09-._~");
  CHECK(PercentEncode("a=b&c") == "a%3Db%26c");
  CHECK(PercentEncode("%") == "%25");
  CHECK(PercentEncode("") == "");
}

TEST_CASE("ListOptions::Query encodes selectors and paging for a list") {
  ListOptions options;
  CHECK(options.Query(false).empty());
  options.label_selector = "app in (a,b)";
  options.field_selector = "status.phase!=Running";
  options.limit = 500;
  options.continue_token = "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ==";
  options.resource_version = "12345";
  CHECK(options.Query(false) ==
        "?labelSelector=app%20in%20%28a%2Cb%29"
        "&fieldSelector=status.phase%21%3DRunning"
        "&limit=500"
        "&continue=eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ%3D%3D"
        "&resourceVersion=12345");
}

TEST_CASE("ListOptions::Query encodes a prefixed label selector") {
  ListOptions options;
  options.label_selector = "dpcm.io/role=dc";
  CHECK(options.Query(false) == "?labelSelector=dpcm.io%2Frole%3Ddc");
}

TEST_CASE("ListOptions::Query for a watch adds watch and bookmarks and omits paging") {
  ListOptions options;
  options.label_selector = "dpcm.io/role=dc";
  options.limit = 500;
  options.continue_token = "abc";
  options.resource_version = "777";
  options.timeout_seconds = 300;
  options.allow_watch_bookmarks = true;
  const std::string query = options.Query(true);
  CHECK(query ==
        "?watch=1&labelSelector=dpcm.io%2Frole%3Ddc&resourceVersion=777&timeoutSeconds=300"
        "&allowWatchBookmarks=true");
  CHECK(query.find("limit") == std::string::npos);
  CHECK(query.find("continue") == std::string::npos);
  // Bookmarks are a watch-only parameter.
  CHECK(options.Query(false).find("allowWatchBookmarks") == std::string::npos);
}

TEST_CASE("DeleteOptions::ToJson carries preconditions, grace period and propagation") {
  DeleteOptions plain;
  const Json empty = plain.ToJson();
  CHECK(empty["kind"] == "DeleteOptions");
  CHECK(empty["apiVersion"] == "v1");
  CHECK_FALSE(empty.contains("preconditions"));
  CHECK_FALSE(empty.contains("propagationPolicy"));
  CHECK_FALSE(empty.contains("gracePeriodSeconds"));

  DeleteOptions options;
  options.precondition_uid = "4f1c-uid";
  options.precondition_resource_version = "42";
  options.grace_period_seconds = 0;
  options.propagation_policy = "Foreground";
  const Json json = options.ToJson();
  CHECK(json["preconditions"]["uid"] == "4f1c-uid");
  CHECK(json["preconditions"]["resourceVersion"] == "42");
  CHECK(json["gracePeriodSeconds"] == 0);  // 0 means "now", which differs from unset
  CHECK(json["propagationPolicy"] == "Foreground");

  DeleteOptions uid_only;
  uid_only.precondition_uid = "u";
  CHECK_FALSE(uid_only.ToJson()["preconditions"].contains("resourceVersion"));
}

}  // namespace
}  // namespace dpcm::client
