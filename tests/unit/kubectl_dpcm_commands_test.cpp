// kubectl dpcm's verbs over HTTP against a scripted API server: what each reads and writes, the
// EndpointSlice v1 → v1beta1 fallback, exit codes and error lines.
#include <doctest/doctest.h>

#include <mutex>
#include <sstream>

#include "cmd/kubectl-dpcm/commands.h"
#include "cmd/kubectl-dpcm/report.h"
#include "tests/support/domain_objects.h"
#include "tests/support/local_http_server.h"

namespace dpcm::kubectl_plugin {
namespace {

using testing::DomainObject;
using testing::LeaseObject;
using testing::MemberPod;
using testing::WithRole;

// A Kubernetes 1.20-like API server for one domain "web" in "ns", DC web-1 at epoch 3:
// no discovery.k8s.io/v1, EndpointSlices in v1beta1 naming `endpoint_pods`.
struct FakeCluster {
  std::vector<std::string> endpoint_pods = {"web-1"};
  std::mutex mutex;
  std::vector<std::string> patches;  // "content-type body" of each PATCH

  Json Domain() {
    Json domain = DomainObject("web", 3);
    domain["spec"]["service"] = {{"ports", {{{"port", 80}}}}};
    domain["status"] = {{"phase", "Running"}, {"activePod", "web-1"}, {"epoch", 3}};
    return domain;
  }
  Json Pods() {
    testing::PodShape dc = WithRole("dc");
    dc.epoch = 3;
    return {{"kind", "PodList"},
            {"metadata", Json::object()},
            {"items", {MemberPod("web", 0), MemberPod("web", 1, dc), MemberPod("web", 2)}}};
  }
  Json Slices() {
    Json endpoints = Json::array();
    for (const auto& pod : endpoint_pods) {
      endpoints.push_back(
          {{"addresses", {"10.0.0.9"}}, {"targetRef", {{"kind", "Pod"}, {"name", pod}}}});
    }
    return {{"metadata", Json::object()}, {"items", {{{"endpoints", endpoints}}}}};
  }

  static void Reply(httplib::Response& res, const Json& body, int status = 200) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }
  static Json NotFound(const std::string& what) {
    return {{"kind", "Status"},
            {"status", "Failure"},
            {"reason", "NotFound"},
            {"code", 404},
            {"message", what + " not found"}};
  }

  void Routes(httplib::Server& server) {
    const std::string domains = "/apis/dpcm.io/v1alpha1/namespaces/ns/processdomains";
    server.Get(domains, [this](const httplib::Request&, httplib::Response& res) {
      Reply(res, {{"metadata", Json::object()}, {"items", {Domain()}}});
    });
    server.Get(domains + "/web",
               [this](const httplib::Request&, httplib::Response& res) { Reply(res, Domain()); });
    server.Patch(domains + "/web", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard lock(mutex);
      patches.push_back(req.get_header_value("Content-Type") + " " + req.body);
      Reply(res, Domain());
    });
    server.Get(domains + "/nosuch", [](const httplib::Request&, httplib::Response& res) {
      Reply(res, NotFound("processdomains.dpcm.io \"nosuch\""), 404);
    });
    server.Get("/apis/dpcm.io/v1alpha1/namespaces/secret/processdomains",
               [](const httplib::Request&, httplib::Response& res) {
                 Reply(res,
                       {{"kind", "Status"},
                        {"reason", "Forbidden"},
                        {"code", 403},
                        {"message", "user \"bob\" cannot list processdomains"}},
                       403);
               });
    server.Get("/apis/coordination.k8s.io/v1/namespaces/ns/leases/web",
               [](const httplib::Request&, httplib::Response& res) {
                 Reply(res, LeaseObject("web", "web-1", 3));
               });
    server.Get("/api/v1/namespaces/ns/pods",
               [this](const httplib::Request& req, httplib::Response& res) {
                 CHECK(req.get_param_value("labelSelector") == "dpcm.io/domain=web");
                 Reply(res, Pods());
               });
    server.Get("/api/v1/namespaces/ns/services/web-dc",
               [](const httplib::Request&, httplib::Response& res) {
                 Reply(res, {{"metadata", {{"name", "web-dc"}}}});
               });
    server.Get("/apis/discovery.k8s.io/v1beta1/namespaces/ns/endpointslices",
               [this](const httplib::Request& req, httplib::Response& res) {
                 CHECK(req.get_param_value("labelSelector") == "kubernetes.io/service-name=web-dc");
                 Reply(res, Slices());
               });
    server.Get("/api/v1/namespaces/ns/events",
               [](const httplib::Request& req, httplib::Response& res) {
                 CHECK(req.get_param_value("fieldSelector") ==
                       "involvedObject.kind=ProcessDomain,involvedObject.name=web");
                 Reply(res, {{"metadata", Json::object()},
                             {"items",
                              {{{"metadata", {{"resourceVersion", "7"}}},
                                {"reason", "Promoted"},
                                {"message", "web-1 is DC at epoch 3 (failover took 12 ms)"},
                                {"lastTimestamp", "2026-12-02T10:59:00Z"}}}}});
               });
  }
};

struct Run {
  int exit = -1;
  std::string out;
  std::string err;
};

Run RunOn(int port, std::vector<std::string> args) {
  restconfig::RestConfig config;
  config.server = "http://127.0.0.1:" + std::to_string(port);
  config.namespace_name = "ns";
  client::ClientOptions options;
  options.max_retries = 0;
  auto api = client::ApiClient::Create(config, options);
  REQUIRE(api.ok());
  auto parsed = ParseArgs(args);
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
  std::ostringstream out;
  std::ostringstream err;
  Run run;
  run.exit = RunVerb(*parsed, **api, out, err, *ParseTime("2026-12-02T11:00:00Z"));
  run.out = out.str();
  run.err = err.str();
  return run;
}

TEST_CASE("kubectl dpcm verbs: check reads Lease, pods, Service and v1beta1 EndpointSlices") {
  FakeCluster cluster;
  testing::LocalHttpServer server([&](httplib::Server& s) { cluster.Routes(s); });
  Run clean = RunOn(server.port(), {"check"});
  CHECK(clean.exit == kOk);
  CHECK(clean.out == "No findings in 1 domain(s).\n");
  CHECK(clean.err.empty());

  cluster.endpoint_pods = {"web-1", "web-2"};
  Run found = RunOn(server.port(), {"check", "-o", "json"});
  CHECK(found.exit == kFindings);
  const Json json = Json::parse(found.out);
  REQUIRE(json["findings"].size() == 1);
  CHECK(json["findings"][0]["rule"] == "service-endpoints");
  CHECK(json["findings"][0]["message"] ==
        "the Service web-dc routes to web-2, not only the DC web-1");
}

TEST_CASE("kubectl dpcm verbs: pause and resume send a merge patch of spec.paused") {
  FakeCluster cluster;
  testing::LocalHttpServer server([&](httplib::Server& s) { cluster.Routes(s); });
  CHECK(RunOn(server.port(), {"pause", "web"}).out == "processdomain.dpcm.io/web paused\n");
  CHECK(RunOn(server.port(), {"resume", "web"}).out == "processdomain.dpcm.io/web resumed\n");
  std::lock_guard lock(cluster.mutex);
  CHECK(cluster.patches ==
        std::vector<std::string>{"application/merge-patch+json {\"spec\":{\"paused\":true}}",
                                 "application/merge-patch+json {\"spec\":{\"paused\":false}}"});
}

TEST_CASE("kubectl dpcm verbs: why reads the domain's Events; errors exit 2 with one line") {
  FakeCluster cluster;
  testing::LocalHttpServer server([&](httplib::Server& s) { cluster.Routes(s); });
  Run why = RunOn(server.port(), {"why", "web"});
  CHECK(why.exit == kOk);
  CHECK(why.out.find("60s ago   Promoted           web-1 is DC at epoch 3 (failover took 12 ms)") !=
        std::string::npos);

  Run missing = RunOn(server.port(), {"status", "nosuch"});
  CHECK(missing.exit == kError);
  CHECK(missing.err == "error: ProcessDomain \"nosuch\" in namespace \"ns\" not found\n");
  Run forbidden = RunOn(server.port(), {"check", "-n", "secret"});
  CHECK(forbidden.exit == kError);
  CHECK(forbidden.err.rfind("error: forbidden: ", 0) == 0);
  CHECK(forbidden.err.find("user \"bob\" cannot list processdomains") != std::string::npos);
  Run unreachable = RunOn(1, {"status"});
  CHECK(unreachable.exit == kError);
  CHECK(unreachable.err.rfind("error: cannot reach the API server at http://127.0.0.1:1: ", 0) ==
        0);
}

}  // namespace
}  // namespace dpcm::kubectl_plugin
