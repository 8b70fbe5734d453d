// kubectl dpcm's decisions without a server: the command line, the status and why screens, the
// check rules, and the error messages.
#include <doctest/doctest.h>

#include "cmd/kubectl-dpcm/audit.h"
#include "cmd/kubectl-dpcm/commands.h"
#include "cmd/kubectl-dpcm/options.h"
#include "cmd/kubectl-dpcm/report.h"
#include "tests/support/domain_objects.h"

namespace dpcm::kubectl_plugin {
namespace {

using testing::DomainObject;
using testing::LeaseObject;
using testing::MemberPod;
using testing::WithRole;
using namespace std::chrono_literals;

const WallTime kNow = *ParseTime("2026-12-02T11:00:00Z");

PluginOptions Parse(const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args);
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
  return *parsed;
}

std::string ParseError(const std::vector<std::string>& args) {
  auto parsed = ParseArgs(args);
  REQUIRE_FALSE(parsed.ok());
  return parsed.status().message();
}

// A domain with a status as the operator writes it: web-1 DC at epoch 3, one failover.
Json DomainWithStatus(bool flight_recorder) {
  Json domain = DomainObject("web", 3);
  domain["status"] = {{"phase", "Running"},
                      {"activePod", "web-1"},
                      {"ready", "3/3"},
                      {"epoch", 3},
                      {"fencing", "LabelOnly"},
                      {"failovers", 1},
                      {"lastFailoverTime", "2026-12-02T10:58:00Z"},
                      {"members",
                       {{{"name", "web-0"},
                         {"role", "pc"},
                         {"ready", true},
                         {"healthy", true},
                         {"consecutiveFailures", 0},
                         {"restarts", 1},
                         {"message", ""}},
                        {{"name", "web-1"},
                         {"role", "dc"},
                         {"ready", true},
                         {"healthy", true},
                         {"consecutiveFailures", 0},
                         {"restarts", 0},
                         {"message", ""}}}}};
  if (flight_recorder) {
    domain["status"]["lastFailover"] = {{"from", "web-0"},
                                        {"to", "web-1"},
                                        {"reason", "container-terminated"},
                                        {"epoch", 3},
                                        {"time", "2026-12-02T10:58:00Z"},
                                        {"phases",
                                         {{{"name", "decided"}, {"ms", 2}},
                                          {{"name", "fenced"}, {"ms", 9}},
                                          {{"name", "leaseWritten"}, {"ms", 14}},
                                          {{"name", "labeled"}, {"ms", 21}}}}};
  }
  return domain;
}

Json Event(const std::string& reason, const std::string& message, const std::string& time,
           const std::string& rv) {
  return {{"metadata", {{"name", "e" + rv}, {"resourceVersion", rv}}},
          {"reason", reason},
          {"message", message},
          {"lastTimestamp", time},
          {"count", 1}};
}

TEST_CASE("kubectl dpcm: flags go before or after the verb, kubectl style") {
  PluginOptions o = Parse({"-n", "prod", "status", "web", "-o", "json", "--context=kind"});
  CHECK(o.verb == Verb::kStatus);
  CHECK(o.args == std::vector<std::string>{"web"});
  CHECK(o.namespace_name == "prod");
  CHECK(o.output == OutputFormat::kJson);
  CHECK(o.context == "kind");
  o = Parse({"check", "-A", "--kubeconfig", "/k"});
  CHECK(o.verb == Verb::kCheck);
  CHECK(o.all_namespaces);
  CHECK(o.kubeconfig == "/k");
  CHECK(Parse({"why", "--help"}).help);
  CHECK(Parse({"--help"}).verb == Verb::kNone);
}

TEST_CASE("kubectl dpcm: a bad command line names what is wrong") {
  CHECK(ParseError({"switchover", "web"}).find("unknown command \"switchover\"") !=
        std::string::npos);
  CHECK(ParseError({"why"}).find("why needs a DOMAIN") != std::string::npos);
  CHECK(ParseError({"pause", "a", "b"}).find("unexpected argument \"b\"") != std::string::npos);
  CHECK(ParseError({"status", "--bogus"}).find("unknown flag --bogus") != std::string::npos);
  CHECK(ParseError({"status", "-n"}).find("-n needs a value") != std::string::npos);
  CHECK(ParseError({"status", "-o", "yaml"}).find("--output must be") != std::string::npos);
  CHECK(ParseError({"why", "web", "-A"}).find("one domain") != std::string::npos);
  CHECK(ParseError({}).find("no command") != std::string::npos);
  for (Verb verb :
       {Verb::kNone, Verb::kStatus, Verb::kPause, Verb::kResume, Verb::kWhy, Verb::kCheck}) {
    CHECK(Usage(verb).find("--kubeconfig") != std::string::npos);
  }
}

TEST_CASE("kubectl dpcm status: a domain row, then its members, aligned") {
  const std::string screen = RenderStatus({DomainWithStatus(true)}, false, kNow);
  CHECK(screen ==
        "DOMAIN   PHASE     DC      EPOCH   FENCING     READY   FAILOVERS   LAST FAILOVER\n"
        "web      Running   web-1   3       LabelOnly   3/3     1           container-terminated, "
        "21 ms, "
        "2m ago\n"
        "\n"
        "DOMAIN   MEMBER   ROLE   READY   HEALTHY   FAILURES   RESTARTS   MESSAGE\n"
        "web      web-0    pc     true    true      0          1\n"
        "web      web-1    dc     true    true      0          0\n");
  // Without the flight recorder the time alone; -A adds the namespace.
  const std::string all = RenderStatus({DomainWithStatus(false)}, true, kNow);
  CHECK(all.rfind("NAMESPACE   DOMAIN", 0) == 0);
  CHECK(all.find("ns          web      Running   web-1   3       LabelOnly   3/3     1           "
                 "2m ago") != std::string::npos);
  CHECK(RenderStatus({}, false, kNow) == "No ProcessDomains found.\n");
  // A domain the operator has not written status for yet shows dashes.
  CHECK(
      RenderStatus({DomainObject("new", 1)}, false, kNow).find("new      -       -    -       -") !=
      std::string::npos);
}

TEST_CASE("kubectl dpcm status -o json carries the members and the last failover") {
  const Json json = StatusJson({DomainWithStatus(true), DomainObject("new", 1)});
  REQUIRE(json["domains"].size() == 2);
  CHECK(json["domains"][0]["dc"] == "web-1");
  CHECK(json["domains"][0]["members"].size() == 2);
  CHECK(json["domains"][0]["lastFailover"]["phases"][3]["name"] == "labeled");
  CHECK(json["domains"][1]["lastFailover"].is_null());
  CHECK(json["domains"][1]["paused"] == false);
}

TEST_CASE("kubectl dpcm why: the phases with their steps, then the Events newest first") {
  const std::vector<Json> events = {
      Event("FailingOver", "DC web-0 is container-terminated", "2026-12-02T10:58:00Z", "10"),
      Event("Promoted", "web-1 is DC at epoch 3 (failover took 21 ms)", "2026-12-02T10:58:00Z",
            "11"),
      Event("HealthCheckFailed", "web-0 failed", "2026-12-02T10:59:00Z", "12"),
      Event("Promoted", "web-0 is DC at epoch 2 (failover took 30 ms)", "2026-12-02T10:40:00Z",
            "5")};
  const std::string screen = RenderWhy(DomainWithStatus(true), events, kNow);
  CHECK(screen ==
        "Domain ns/web: phase Running, DC web-1 at epoch 3, 1 failover(s)\n"
        "\n"
        "Last failover: web-0 -> web-1, reason container-terminated, epoch 3, at "
        "2026-12-02T10:58:00Z (2m ago)\n"
        "  PHASE          AT (MS)   STEP (MS)\n"
        "  decided        2         +2\n"
        "  fenced         9         +7\n"
        "  leaseWritten   14        +5\n"
        "  labeled        21        +7\n"
        "  total          21\n"
        "  (times since the failure was first seen)\n"
        "\n"
        "Events (FailingOver, Promoted; newest first):\n"
        "  AGE       REASON        COUNT   MESSAGE\n"
        "  2m ago    Promoted              web-1 is DC at epoch 3 (failover took 21 ms)\n"
        "  2m ago    FailingOver           DC web-0 is container-terminated\n"
        "  20m ago   Promoted              web-0 is DC at epoch 2 (failover took 30 ms)\n");
  const std::string old = RenderWhy(DomainWithStatus(false), {}, kNow);
  CHECK(old.find("need an operator with the failover flight recorder") != std::string::npos);
  CHECK(old.find("none (Events expire") != std::string::npos);
  const Json json = WhyJson(DomainWithStatus(true), events);
  CHECK(json["events"].size() == 3);
  CHECK(json["lastFailover"]["to"] == "web-1");
  CHECK_FALSE(json["lastFailover"].contains("hooks"));  // an operator that does not say
}

TEST_CASE("kubectl dpcm why: the role hook's acknowledgement, or why there is none") {
  Json hooked = DomainWithStatus(true);
  hooked["status"]["lastFailover"]["phases"].push_back({{"name", "hooksAcknowledged"}, {"ms", 35}});
  hooked["status"]["lastFailover"]["hooks"] = "acknowledged";
  const std::string screen = RenderWhy(hooked, {}, kNow);
  CHECK(screen.find("  labeled             21        +7\n"
                    "  hooksAcknowledged   35        +14\n"
                    "  total               35\n") != std::string::npos);
  CHECK(screen.find("  role hook: the new DC acknowledged its promotion\n") != std::string::npos);
  CHECK(WhyJson(hooked, {})["lastFailover"]["hooks"] == "acknowledged");
  CHECK(WhyJson(hooked, {})["lastFailover"]["phases"][4]["name"] == "hooksAcknowledged");

  Json plain = DomainWithStatus(true);
  plain["status"]["lastFailover"]["hooks"] = "none";
  CHECK(RenderWhy(plain, {}, kNow).find("no role hooks: nothing to acknowledge") !=
        std::string::npos);
  plain["status"]["lastFailover"]["hooks"] = "pending";
  CHECK(RenderWhy(plain, {}, kNow).find("has not acknowledged its promotion yet") !=
        std::string::npos);
  plain["status"]["lastFailover"]["hooks"] = "unrecorded";
  CHECK(RenderWhy(plain, {}, kNow).find("acknowledgement time not recorded") != std::string::npos);
}

TEST_CASE("kubectl dpcm why: the operator's fractional milliseconds are rounded, not dropped") {
  Json domain = DomainWithStatus(true);
  domain["status"]["lastFailover"]["phases"] =
      Json::array({{{"name", "decided"}, {"ms", 0.016}},
                   {{"name", "fenced"}, {"ms", 24.317}},
                   {{"name", "leaseWritten"}, {"ms", 35.5}},
                   {{"name", "labeled"}, {"ms", 48.2}}});
  const std::string screen = RenderWhy(domain, {}, kNow);
  CHECK(screen.find("  fenced         24        +24\n") != std::string::npos);
  CHECK(screen.find("  total          48\n") != std::string::npos);
}

TEST_CASE("kubectl dpcm: RFC 3339 times with fractions and offsets") {
  CHECK(ParseTime("2026-12-02T12:00:00+01:00") == kNow);
  CHECK(ParseTime("2026-12-02T11:00:00.500000Z") == kNow + 500ms);
  CHECK_FALSE(ParseTime("yesterday").has_value());
  CHECK_FALSE(ParseTime("2026-12-02T11:00:00").has_value());
  CHECK(ShortAge(kNow - 3h, kNow) == "3h");
  CHECK(ShortAge(kNow + 1s, kNow) == "0s");
}

// A healthy domain: web-1 DC at epoch 3, matching Lease, Service routing to web-1.
DomainObjects Healthy() {
  DomainObjects objects;
  objects.domain = DomainWithStatus(true);
  objects.domain["spec"]["service"] = {{"ports", {{{"port", 80}}}}};
  objects.lease = LeaseObject("web", "web-1", 3);
  testing::PodShape dc = WithRole("dc");
  dc.epoch = 3;
  objects.pods = {MemberPod("web", 0), MemberPod("web", 1, dc), MemberPod("web", 2)};
  objects.service = Json{{"metadata", {{"name", "web-dc"}}}};
  objects.endpoint_slices = {
      {{"endpoints",
        {{{"addresses", {"10.0.0.2"}}, {"targetRef", {{"kind", "Pod"}, {"name", "web-1"}}}}}}}};
  return objects;
}

std::vector<std::string> Rules(const std::vector<Finding>& findings) {
  std::vector<std::string> rules;
  for (const auto& f : findings) rules.push_back(f.rule + ": " + f.message);
  return rules;
}

TEST_CASE("kubectl dpcm check: a settled domain has no findings") {
  CHECK(Rules(Audit(Healthy())).empty());
  CHECK(RenderFindings({}, 1) == "No findings in 1 domain(s).\n");
}

TEST_CASE("kubectl dpcm check: each broken rule is named with the pods concerned") {
  DomainObjects objects = Healthy();
  SUBCASE("a second pod labeled dc") {
    objects.pods[2] = MemberPod("web", 2, WithRole("dc"));
    objects.endpoint_slices[0]["endpoints"].push_back(
        {{"addresses", {"10.0.0.3"}}, {"targetRef", {{"kind", "Pod"}, {"name", "web-2"}}}});
    const auto rules = Rules(Audit(objects));
    REQUIRE(rules.size() == 4);
    CHECK(rules[0] == "one-dc: 2 pods labeled dpcm.io/role=dc: web-1, web-2");
    CHECK(rules[1] == "lease-holder: web-2 is labeled dc but the Lease holder is web-1");
    CHECK(rules[2] ==
          "epoch: web-2 has dpcm.io/epoch=<none> but the Lease's leaseTransitions is 3");
    CHECK(rules[3] == "service-endpoints: the Service web-dc routes to web-1, web-2");
  }
  SUBCASE("no DC while members are Ready") {
    objects.pods[1] = MemberPod("web", 1);
    objects.endpoint_slices.clear();
    const auto rules = Rules(Audit(objects));
    REQUIRE(rules.size() == 1);
    CHECK(rules[0] == "one-dc: no pod is labeled dpcm.io/role=dc, though a member is Ready");
  }
  SUBCASE("no DC and no Ready member is not a finding (nothing could be DC)") {
    objects.pods = {MemberPod("web", 0, testing::NotReady())};
    objects.endpoint_slices.clear();
    CHECK(Rules(Audit(objects)).empty());
  }
  SUBCASE("the Lease names another pod, and its epoch moved on") {
    objects.lease = LeaseObject("web", "web-0", 4);
    const auto rules = Rules(Audit(objects));
    REQUIRE(rules.size() == 2);
    CHECK(rules[0] == "lease-holder: web-1 is labeled dc but the Lease holder is web-0");
    CHECK(rules[1] == "epoch: web-1 has dpcm.io/epoch=3 but the Lease's leaseTransitions is 4");
  }
  SUBCASE("the Lease is missing") {
    objects.lease.reset();
    CHECK(Rules(Audit(objects)) ==
          std::vector<std::string>{
              "lease-holder: the Lease web is missing, yet web-1 is labeled dc"});
  }
  SUBCASE("status names another pod") {
    objects.domain["status"]["activePod"] = "web-0";
    CHECK(Rules(Audit(objects)) ==
          std::vector<std::string>{"active-pod: status.activePod is web-0 but the DC is web-1"});
  }
  SUBCASE("the Service routes elsewhere (v1 Endpoints when there are no slices)") {
    objects.endpoint_slices.clear();
    objects.endpoints =
        Json{{"subsets",
              {{{"addresses",
                 {{{"ip", "10.0.0.1"}, {"targetRef", {{"kind", "Pod"}, {"name", "web-0"}}}}}},
                {"notReadyAddresses", {{{"ip", "10.9.9.9"}}}}}}}};
    CHECK(Rules(Audit(objects)) ==
          std::vector<std::string>{"service-endpoints: the Service web-dc routes to address "
                                   "10.9.9.9, web-0, not only the DC web-1"});
  }
  SUBCASE("the Service does not route to the DC") {
    objects.endpoint_slices[0]["endpoints"] = Json::array();
    CHECK(Rules(Audit(objects)) ==
          std::vector<std::string>{
              "service-endpoints: the Service web-dc does not route to the DC web-1"});
  }
  SUBCASE("the Service is missing") {
    objects.service.reset();
    objects.endpoint_slices.clear();
    CHECK(Rules(Audit(objects)) ==
          std::vector<std::string>{"service-endpoints: the Service web-dc is missing"});
  }
  const auto findings = Audit(objects);
  if (!findings.empty()) {
    CHECK(RenderFindings(findings, 1).find("ns/web") != std::string::npos);
    CHECK(FindingsJson(findings, 1)["findings"].size() == findings.size());
  }
}

TEST_CASE("kubectl dpcm: errors say what was missing, forbidden or unreachable") {
  const std::string server = "https://127.0.0.1:6443";
  CHECK(DescribeError(Status::NotFound("x"), "ProcessDomain \"web\" in namespace \"ns\"", server) ==
        "ProcessDomain \"web\" in namespace \"ns\" not found");
  CHECK(DescribeError(Status::NotFound("x"), "processdomains.dpcm.io in namespace \"ns\"", server)
            .find("is the dpcm CRD installed?") != std::string::npos);
  CHECK(DescribeError(Status(StatusCode::kForbidden, "user cannot list"), "x", server) ==
        "forbidden: user cannot list");
  CHECK(DescribeError(Status::Transport("connection refused"), "x", server) ==
        "cannot reach the API server at https://127.0.0.1:6443: connection refused");
}

}  // namespace
}  // namespace dpcm::kubectl_plugin
