// Owned objects: the member pods and the -dc Service a ProcessDomain gets, and how ownership is
// recognised.
#include "pkg/domain/owned_objects.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

json Domain(const json& spec) {
  return {{"apiVersion", "dpcm.io/v1alpha1"},
          {"kind", "ProcessDomain"},
          {"metadata",
           {{"name", "web"},
            {"namespace", "shop"},
            {"uid", "0b8f5a4e-uid-web"},
            {"resourceVersion", "99"},
            {"generation", 3}}},
          {"spec", spec}};
}

json Template() {
  return {{"metadata",
           {{"labels", {{"app", "web"}, {"tier", "frontend"}}},
            {"annotations", {{"prometheus.io/scrape", "true"}}}}},
          {"spec",
           {{"containers", json::array({{{"name", "app"},
                                         {"image", "registry.example.com/web:1.2.3"},
                                         {"ports", json::array({{{"containerPort", 8080}}})}}})},
            {"terminationGracePeriodSeconds", 5}}}};
}

DomainSpec Parse(const json& domain) {
  const auto spec = ParseSpec(domain, nullptr);
  REQUIRE(spec.ok());
  return *spec;
}

void CheckOwnerReference(const json& object) {
  REQUIRE(object["metadata"]["ownerReferences"].is_array());
  REQUIRE(object["metadata"]["ownerReferences"].size() == 1);
  const json& ref = object["metadata"]["ownerReferences"][0];
  CHECK(ref["apiVersion"] == "dpcm.io/v1alpha1");
  CHECK(ref["kind"] == "ProcessDomain");
  CHECK(ref["name"] == "web");
  CHECK(ref["uid"] == "0b8f5a4e-uid-web");
  CHECK(ref["controller"] == true);
  CHECK(ref["blockOwnerDeletion"] == true);
}

TEST_CASE("BuildPod adds the dpcm-agent sidecar to domains that enable it") {
  json spec = {{"replicas", 1}, {"template", Template()}, {"agent", {{"enabled", true}}}};
  spec["health"] = {{"command", {{"command", json::array({"/bin/check"})}}}};
  const json pod =
      BuildPod(Domain(spec), Parse(Domain(spec)), 0,
               {.image = "registry.example.com/dpcm:1", .role_bind_address = "$(POD_IP):8720"});
  const json& containers = pod["spec"]["containers"];
  REQUIRE(containers.size() == 2);
  CHECK(containers[0]["name"] == "app");
  const json& agent = containers[1];
  CHECK(agent["name"] == "dpcm-agent");
  CHECK(agent["image"] == "registry.example.com/dpcm:1");
  CHECK(agent["command"] == json::array({"dpcm-agent"}));
  CHECK(std::find(agent["args"].begin(), agent["args"].end(), "--port=8719") !=
        agent["args"].end());
  CHECK(std::find(agent["args"].begin(), agent["args"].end(),
                  "--role-bind-address=$(POD_IP):8720") != agent["args"].end());
  std::map<std::string, json> env;
  for (const auto& e : agent["env"]) env[e["name"].get<std::string>()] = e;
  CHECK(env["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP");
  CHECK(env["DPCM_DOMAIN"]["value"] == "web");
  CHECK(json::parse(env["DPCM_AGENT_HEALTH_COMMAND"]["value"].get<std::string>())["command"][0] ==
        "/bin/check");
  CHECK(env.count("DPCM_AGENT_ROLE_HOOK_COMMAND") == 0);
  CHECK_FALSE(agent.contains("volumeMounts"));

  // The commands see the application's volumes at the same paths.
  json mounted = spec;
  mounted["template"]["spec"]["containers"][0]["volumeMounts"] =
      json::array({{{"name", "scripts"}, {"mountPath", "/scripts"}}});
  const json with_volumes = BuildPod(Domain(mounted), Parse(Domain(mounted)), 0, {});
  CHECK(with_volumes["spec"]["containers"][1]["volumeMounts"][0]["mountPath"] == "/scripts");

  // A template that brings its own agent keeps it; without spec.agent nothing is added.
  json own = spec;
  own["template"]["spec"]["containers"].push_back({{"name", "dpcm-agent"}, {"image", "mine"}});
  const json kept = BuildPod(Domain(own), Parse(Domain(own)), 0, {});
  REQUIRE(kept["spec"]["containers"].size() == 2);
  CHECK(kept["spec"]["containers"][1]["image"] == "mine");
  const json plain = {{"replicas", 1}, {"template", Template()}};
  CHECK(BuildPod(Domain(plain), Parse(Domain(plain)), 0, {})["spec"]["containers"].size() == 1);
}

TEST_CASE("BuildPod makes pod <domain>-<n> from the template, labeled pc and owned by the domain") {
  const json domain = Domain({{"replicas", 3}, {"template", Template()}});
  const json pod = BuildPod(domain, Parse(domain), 2);
  CHECK(pod["apiVersion"] == "v1");
  CHECK(pod["kind"] == "Pod");
  CHECK(pod["metadata"]["name"] == "web-2");
  const json& labels = pod["metadata"]["labels"];
  CHECK(labels[kDomainLabel] == "web");
  CHECK(labels[kRoleLabel] == "pc");
  CHECK(labels["app"] == "web");
  CHECK(labels["tier"] == "frontend");
  CHECK(labels.size() == 4);
  CHECK(pod["metadata"]["annotations"] == json{{"prometheus.io/scrape", "true"}});
  CheckOwnerReference(pod);
  CHECK(OwnedByDomain(pod, "web"));

  // The template's pod spec is copied; the hostname gives a stable identity.
  json want_spec = Template()["spec"];
  want_spec["hostname"] = "web-2";
  CHECK(pod["spec"] == want_spec);
}

TEST_CASE("BuildPod ignores names in the template and keeps its own hostname") {
  json tmpl = Template();
  tmpl["metadata"]["name"] = "from-template";
  tmpl["metadata"]["generateName"] = "from-template-";
  tmpl["metadata"]["namespace"] = "elsewhere";
  tmpl["spec"]["hostname"] = "fixed";
  const json domain = Domain({{"template", tmpl}});
  const json pod = BuildPod(domain, Parse(domain), 0);
  CHECK(pod["metadata"]["name"] == "web-0");
  CHECK_FALSE(pod["metadata"].contains("generateName"));
  CHECK_FALSE(pod["metadata"].contains("namespace"));
  CHECK(pod["spec"]["hostname"] == "fixed");
}

TEST_CASE("BuildPod works with a template that has no metadata") {
  json tmpl = Template();
  tmpl.erase("metadata");
  const json domain = Domain({{"template", tmpl}});
  const json pod = BuildPod(domain, Parse(domain), 11);
  CHECK(pod["metadata"]["name"] == "web-11");
  CHECK(pod["metadata"]["labels"] == json{{kDomainLabel, "web"}, {kRoleLabel, kRolePc}});
  CheckOwnerReference(pod);
}

TEST_CASE("The pods BuildPod makes are read back as PC members with their ordinal") {
  const json domain = Domain({{"replicas", 3}, {"template", Template()}});
  const DomainSpec spec = Parse(domain);
  for (int ordinal = 0; ordinal < 3; ++ordinal) {
    const Member m = MemberFromPod(BuildPod(domain, spec, ordinal), "web");
    CHECK(m.ordinal == ordinal);
    CHECK(m.role == kRolePc);
    CHECK_FALSE(m.is_dc());
    CHECK_FALSE(m.healthy());  // no status yet
  }
}

TEST_CASE("BuildDcService selects the DC of the domain, targetPort defaults to port") {
  json spec = {{"template", Template()},
               {"service",
                {{"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", 8080}},
                                        {{"name", "admin"}, {"port", 9090}},
                                        {{"name", "dns"},
                                         {"port", 53},
                                         {"targetPort", "dns-port"},
                                         {"protocol", "UDP"}}})}}}};
  const json domain = Domain(spec);
  const json service = BuildDcService(domain, Parse(domain));
  CHECK(service["apiVersion"] == "v1");
  CHECK(service["kind"] == "Service");
  CHECK(service["metadata"]["name"] == "web-dc");
  CHECK(service["metadata"]["name"] == DcServiceName("web"));
  CHECK(service["metadata"]["labels"][kDomainLabel] == "web");
  CheckOwnerReference(service);
  CHECK(OwnedByDomain(service, "web"));
  CHECK(service["spec"]["type"] == "ClusterIP");
  CHECK(service["spec"]["selector"] == json{{kDomainLabel, "web"}, {kRoleLabel, kRoleDc}});
  const json want_ports = json::array(
      {{{"name", "http"}, {"port", 80}, {"targetPort", 8080}, {"protocol", "TCP"}},
       {{"name", "admin"}, {"port", 9090}, {"targetPort", 9090}, {"protocol", "TCP"}},
       {{"name", "dns"}, {"port", 53}, {"targetPort", "dns-port"}, {"protocol", "UDP"}}});
  CHECK(service["spec"]["ports"] == want_ports);

  // An unnamed single port has no name field (the API server rejects "").
  const json single =
      Domain({{"template", Template()}, {"service", {{"ports", json::array({{{"port", 5432}}})}}}});
  const json one = BuildDcService(single, Parse(single));
  CHECK(one["spec"]["ports"] ==
        json::array({{{"port", 5432}, {"targetPort", 5432}, {"protocol", "TCP"}}}));
}

TEST_CASE("BuildDcService gives null when the spec lists no ports") {
  for (const json& service : {json(nullptr), json::object(), json{{"ports", json::array()}}}) {
    CAPTURE(service.dump());
    json spec = {{"template", Template()}};
    if (!service.is_null()) spec["service"] = service;
    const json domain = Domain(spec);
    CHECK(BuildDcService(domain, Parse(domain)).is_null());
  }
  const json adopt = Domain({{"selector", {{"matchLabels", {{"app", "db"}}}}}});
  CHECK(BuildDcService(adopt, Parse(adopt)).is_null());
}

TEST_CASE("OwnedByDomain recognises only a ProcessDomain owner of that name") {
  const json domain = Domain({{"template", Template()}});
  const json owner = OwnerReference(domain);
  auto with_refs = [](const json& refs) {
    return json{{"metadata", {{"name", "web-0"}, {"ownerReferences", refs}}}};
  };
  CHECK(OwnedByDomain(with_refs(json::array({owner})), "web"));
  CHECK_FALSE(OwnedByDomain(with_refs(json::array({owner})), "web2"));
  CHECK_FALSE(OwnedByDomain(with_refs(json::array({owner})), "we"));

  // Among several owners.
  const json replica_set = {{"apiVersion", "apps/v1"},
                            {"kind", "ReplicaSet"},
                            {"name", "web"},
                            {"uid", "rs-uid"},
                            {"controller", true}};
  CHECK(OwnedByDomain(with_refs(json::array({replica_set, owner})), "web"));
  CHECK_FALSE(OwnedByDomain(with_refs(json::array({replica_set})), "web"));

  json other_group = owner;
  other_group["apiVersion"] = "example.com/v1";
  CHECK_FALSE(OwnedByDomain(with_refs(json::array({other_group})), "web"));
  json other_version = owner;
  other_version["apiVersion"] = "dpcm.io/v1beta1";
  CHECK(OwnedByDomain(with_refs(json::array({other_version})), "web"));

  for (const json& object :
       {json(nullptr), json("web"), json::array(), json::object(), json{{"metadata", "web"}},
        json{{"metadata", json::object()}}, with_refs(nullptr), with_refs(owner),
        with_refs(json::array({"web", 1, nullptr}))}) {
    CAPTURE(object.dump());
    CHECK_FALSE(OwnedByDomain(object, "web"));
  }
}

}  // namespace
}  // namespace dpcm::domain
