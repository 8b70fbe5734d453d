// ParseSpec: the ProcessDomain spec a user writes, its defaults, and the errors that name a field.
#include <doctest/doctest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "pkg/domain/spec.h"

namespace dpcm::domain {
namespace {

using nlohmann::json;

json Template() {
  return {{"metadata", {{"labels", {{"app", "web"}}}}},
          {"spec", {{"containers", json::array({{{"name", "app"}, {"image", "busybox:1.36"}}})}}}};
}

json Domain(const json& spec) {
  return {{"apiVersion", "dpcm.io/v1alpha1"},
          {"kind", "ProcessDomain"},
          {"metadata", {{"name", "web"}, {"namespace", "default"}, {"uid", "uid-web"}}},
          {"spec", spec}};
}

json ManagedSpec() { return {{"template", Template()}}; }

// A spec that sets every field ParseSpec reads.
json FullSpec() {
  return {
      {"replicas", 3},
      {"template", Template()},
      {"election",
       {{"leaseDurationSeconds", 15},
        {"renewDeadlineSeconds", 10},
        {"retryPeriodSeconds", 2},
        {"failoverDelaySeconds", 1}}},
      {"health",
       {{"periodSeconds", 5},
        {"timeoutSeconds", 3},
        {"failureThreshold", 4},
        {"successThreshold", 2},
        {"http",
         {{"port", 8080},
          {"path", "/healthz"},
          {"scheme", "HTTP"},
          {"expectedStatus", 204},
          {"expectedBody", "green"}}}}},
      {"restart", {{"backoff", {{"initialSeconds", 2}, {"maxSeconds", 30}}}, {"maxConcurrent", 2}}},
      {"roleHooks", {{"timeoutSeconds", 4}, {"http", {{"port", 9000}, {"path", "/role"}}}}},
      {"service",
       {{"ports",
         json::array(
             {{{"name", "http"}, {"port", 80}, {"targetPort", 8080}, {"protocol", "TCP"}}})}}},
      {"paused", false}};
}

// Parses `domain`, expects a rejection, and returns the field it names.
SpecError Reject(const json& domain) {
  SpecError error;
  const auto result = ParseSpec(domain, &error);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().IsInvalid());
  CHECK_FALSE(error.field.empty());
  CHECK_FALSE(error.message.empty());
  CHECK(result.status().message().find(error.field) != std::string::npos);
  return error;
}

std::string RejectedField(const json& spec) { return Reject(Domain(spec)).field; }

// The other plugin kinds, a command health check and an http role hook: refused as a whole
// (the operator runs no commands), but garbage in any field must still not crash the parser.
json OtherPluginsSpec() {
  return {{"template", Template()},
          {"health",
           {{"command",
             {{"command", json::array({"/bin/check", "--db"})},
              {"env", json::array({{{"name", "LEVEL"}, {"value", "2"}}})}}}}},
          {"roleHooks", {{"http", {{"port", 9000}, {"path", "/role"}}}}}};
}

json WithHealth(const json& health) {
  json spec = ManagedSpec();
  spec["health"] = health;
  return spec;
}

json WithRestart(const json& restart) {
  json spec = ManagedSpec();
  spec["restart"] = restart;
  return spec;
}

json WithRoleHooks(const json& hooks) {
  json spec = ManagedSpec();
  spec["roleHooks"] = hooks;
  return spec;
}

json WithElection(const json& election) {
  json spec = ManagedSpec();
  spec["election"] = election;
  return spec;
}

json WithPorts(const json& ports) {
  json spec = ManagedSpec();
  spec["service"] = {{"ports", ports}};
  return spec;
}

TEST_CASE("ParseSpec fills defaults for every field a user leaves out") {
  const auto spec = ParseSpec(Domain(ManagedSpec()), nullptr);
  REQUIRE(spec.ok());
  CHECK(spec->replicas == 1);
  CHECK(spec->managed());
  CHECK(*spec->pod_template == Template());
  CHECK(spec->selector.empty());
  CHECK(spec->election.lease_duration_seconds == 15);
  CHECK(spec->election.renew_deadline_seconds == 10);
  CHECK(spec->election.retry_period_seconds == 2);
  CHECK(spec->election.failover_delay_seconds == 0);
  CHECK(spec->service_ports.empty());
  CHECK_FALSE(spec->paused);
}

TEST_CASE("ParseSpec reads every field of a complete managed spec") {
  json full = FullSpec();
  full["paused"] = true;
  full["service"]["ports"].push_back({{"port", 9090}});
  const auto spec = ParseSpec(Domain(full), nullptr);
  REQUIRE(spec.ok());
  CHECK(spec->replicas == 3);
  CHECK(spec->election.lease_duration_seconds == 15);
  CHECK(spec->election.renew_deadline_seconds == 10);
  CHECK(spec->election.retry_period_seconds == 2);
  CHECK(spec->election.failover_delay_seconds == 1);
  CHECK(spec->paused);
  REQUIRE(spec->service_ports.size() == 2);
  CHECK(spec->service_ports[0].name == "http");
  CHECK(spec->service_ports[0].port == 80);
  CHECK(spec->service_ports[0].target_port == json(8080));
  CHECK(spec->service_ports[0].protocol == "TCP");
  CHECK(spec->service_ports[1].name.empty());
  CHECK(spec->service_ports[1].port == 9090);
  CHECK(spec->service_ports[1].target_port.is_null());
  CHECK(spec->service_ports[1].protocol == "TCP");
}

TEST_CASE("ParseSpec reads adopt mode from selector.matchLabels") {
  const json spec_json = {{"selector", {{"matchLabels", {{"app", "db"}, {"tier", "data"}}}}}};
  const auto spec = ParseSpec(Domain(spec_json), nullptr);
  REQUIRE(spec.ok());
  CHECK_FALSE(spec->managed());
  CHECK(spec->selector == std::map<std::string, std::string>{{"app", "db"}, {"tier", "data"}});
  // An empty matchExpressions list is the same as none.
  json with_empty = spec_json;
  with_empty["selector"]["matchExpressions"] = json::array();
  CHECK(ParseSpec(Domain(with_empty), nullptr).ok());
}

TEST_CASE("ParseSpec requires exactly one of template and selector") {
  json both = ManagedSpec();
  both["selector"] = {{"matchLabels", {{"app", "web"}}}};
  SpecError error = Reject(Domain(both));
  CHECK(error.field == "spec.template");
  CHECK(error.message.find("spec.selector") != std::string::npos);

  error = Reject(Domain(json{{"replicas", 2}}));
  CHECK(error.field == "spec.template");
  CHECK(error.message.find("spec.selector") != std::string::npos);

  // Explicit nulls count as absent.
  CHECK(RejectedField({{"template", nullptr}, {"selector", nullptr}}) == "spec.template");
  CHECK(ParseSpec(Domain({{"template", Template()}, {"selector", nullptr}}), nullptr).ok());
}

TEST_CASE("ParseSpec rejects a template without containers or with an unnamed container") {
  json no_spec = ManagedSpec();
  no_spec["template"].erase("spec");
  CHECK(RejectedField(no_spec) == "spec.template.spec.containers");

  json empty = ManagedSpec();
  empty["template"]["spec"]["containers"] = json::array();
  CHECK(RejectedField(empty) == "spec.template.spec.containers");

  json not_a_list = ManagedSpec();
  not_a_list["template"]["spec"]["containers"] = {{"name", "app"}};
  CHECK(RejectedField(not_a_list) == "spec.template.spec.containers");

  for (const json& container :
       {json{{"image", "busybox"}}, json{{"name", ""}}, json{{"name", 7}}, json("app")}) {
    CAPTURE(container.dump());
    json unnamed = ManagedSpec();
    unnamed["template"]["spec"]["containers"].push_back(container);
    const SpecError error = Reject(Domain(unnamed));
    CHECK(error.field == "spec.template.spec.containers");
    CHECK(error.message.find("name") != std::string::npos);
  }
}

TEST_CASE("ParseSpec rejects template labels that dpcm owns") {
  for (const char* label : {kDomainLabel, kRoleLabel}) {
    CAPTURE(label);
    json spec = ManagedSpec();
    spec["template"]["metadata"]["labels"][label] = "dc";
    const SpecError error = Reject(Domain(spec));
    CHECK(error.field == "spec.template.metadata.labels");
    CHECK(error.message.find(label) != std::string::npos);
  }
  json not_string = ManagedSpec();
  not_string["template"]["metadata"]["labels"]["version"] = 2;
  CHECK(RejectedField(not_string) == "spec.template.metadata.labels.version");
}

TEST_CASE("ParseSpec rejects a selector without matchLabels or with matchExpressions") {
  CHECK(RejectedField({{"selector", json::object()}}) == "spec.selector.matchLabels");
  CHECK(RejectedField({{"selector", {{"matchLabels", json::object()}}}}) ==
        "spec.selector.matchLabels");
  CHECK(RejectedField({{"selector", {{"matchLabels", "app=db"}}}}) == "spec.selector.matchLabels");
  CHECK(RejectedField({{"selector", "app=db"}}) == "spec.selector.matchLabels");
  CHECK(RejectedField(
            {{"selector",
              {{"matchExpressions",
                json::array(
                    {{{"key", "app"}, {"operator", "In"}, {"values", json::array({"db"})}}})}}}}) ==
        "spec.selector.matchLabels");
  CHECK(RejectedField(
            {{"selector",
              {{"matchLabels", {{"app", "db"}}},
               {"matchExpressions", json::array({{{"key", "tier"}, {"operator", "Exists"}}})}}}}) ==
        "spec.selector.matchExpressions");
  CHECK(RejectedField({{"selector", {{"matchLabels", {{"app", 1}}}}}}) ==
        "spec.selector.matchLabels.app");
}

TEST_CASE("ParseSpec accepts only real label keys and values in the selector") {
  // They become a label selector the operator sends to the API server: a value that is
  // not a label value must not add terms of its own ("db,tier!=x") or break the request.
  const std::map<std::string, std::string> bad_values = {{"app", "db,tier!=x"},
                                                         {"app ", "db"},
                                                         {"app", "db x"},
                                                         {"app", "-db"},
                                                         {"app", std::string(64, 'a')},
                                                         {"app", "db/1"},
                                                         {"", "db"},
                                                         {"a/b/c", "db"},
                                                         {"Example.com/app", "db"},
                                                         {"dpcm.io/domain", "web"},
                                                         {"dpcm.io/role", "dc"}};
  for (const auto& [key, value] : bad_values) {
    CAPTURE(key);
    CAPTURE(value);
    const SpecError error = Reject(Domain({{"selector", {{"matchLabels", {{key, value}}}}}}));
    CHECK(error.field.rfind("spec.selector.matchLabels", 0) == 0);
  }
  const auto good = ParseSpec(
      Domain({{"selector",
               {{"matchLabels",
                 {{"app.kubernetes.io/name", "db"}, {"tier", ""}, {"v", std::string(63, 'a')}}}}}}),
      nullptr);
  CHECK(good.ok());
}

TEST_CASE("ParseSpec requires renewDeadlineSeconds < leaseDurationSeconds") {
  SpecError error = Reject(Domain(WithElection({{"renewDeadlineSeconds", 15}})));
  CHECK(error.field == "spec.election.renewDeadlineSeconds");
  CHECK(error.message.find("15") != std::string::npos);
  CHECK(RejectedField(WithElection({{"leaseDurationSeconds", 10}, {"renewDeadlineSeconds", 20}})) ==
        "spec.election.renewDeadlineSeconds");
  // Shortening only the lease below the default renew deadline is caught too.
  CHECK(RejectedField(WithElection({{"leaseDurationSeconds", 5}})) ==
        "spec.election.renewDeadlineSeconds");
  const auto ok = ParseSpec(
      Domain(WithElection(
          {{"leaseDurationSeconds", 4}, {"renewDeadlineSeconds", 3}, {"retryPeriodSeconds", 1}})),
      nullptr);
  REQUIRE(ok.ok());
  CHECK(ok->election.lease_duration_seconds == 4);
  CHECK(ok->election.renew_deadline_seconds == 3);
}

TEST_CASE("ParseSpec requires retryPeriodSeconds * 1.2 <= renewDeadlineSeconds") {
  CHECK(RejectedField(WithElection({{"retryPeriodSeconds", 9}})) ==
        "spec.election.retryPeriodSeconds");
  CHECK(RejectedField(WithElection({{"retryPeriodSeconds", 10}})) ==
        "spec.election.retryPeriodSeconds");
  CHECK(RejectedField(WithElection({{"leaseDurationSeconds", 2}, {"renewDeadlineSeconds", 1}})) ==
        "spec.election.retryPeriodSeconds");
  // Exactly 1.2 is allowed (README: "must be <= renewDeadlineSeconds / 1.2").
  CHECK(ParseSpec(Domain(WithElection({{"renewDeadlineSeconds", 12},
                                       {"leaseDurationSeconds", 15},
                                       {"retryPeriodSeconds", 10}})),
                  nullptr)
            .ok());
  CHECK(ParseSpec(Domain(WithElection({{"retryPeriodSeconds", 8}})), nullptr).ok());
}

TEST_CASE("ParseSpec rejects non-integer and out-of-range numbers, naming the field") {
  struct Case {
    json spec;
    const char* field;
  };
  std::vector<Case> cases = {
      {{{"replicas", 0}}, "spec.replicas"},
      {{{"replicas", -3}}, "spec.replicas"},
      {{{"replicas", 1.5}}, "spec.replicas"},
      {{{"replicas", "3"}}, "spec.replicas"},
      {{{"replicas", true}}, "spec.replicas"},
      {{{"replicas", 2'000'000}}, "spec.replicas"},
      {{{"replicas", kMaxReplicas + 1}}, "spec.replicas"},
      {{{"replicas", 99999999999999LL}}, "spec.replicas"},
      {{{"election", {{"leaseDurationSeconds", "15"}}}}, "spec.election.leaseDurationSeconds"},
      {{{"election", {{"leaseDurationSeconds", 0}}}}, "spec.election.leaseDurationSeconds"},
      {{{"election", {{"renewDeadlineSeconds", 10.5}}}}, "spec.election.renewDeadlineSeconds"},
      {{{"election", {{"renewDeadlineSeconds", -10}}}}, "spec.election.renewDeadlineSeconds"},
      {{{"election", {{"retryPeriodSeconds", json::array({2})}}}},
       "spec.election.retryPeriodSeconds"},
      {{{"election", {{"retryPeriodSeconds", 0}}}}, "spec.election.retryPeriodSeconds"},
      {{{"election", {{"failoverDelaySeconds", -1}}}}, "spec.election.failoverDelaySeconds"},
      {{{"election", {{"failoverDelaySeconds", nullptr}}}}, "spec.election.failoverDelaySeconds"},
  };
  for (auto& c : cases) {
    c.spec["template"] = Template();
    CAPTURE(c.spec.dump());
    CHECK(RejectedField(c.spec) == c.field);
  }
  // The schema's maximum is the operator's: 100 members.
  json most = ManagedSpec();
  most["replicas"] = kMaxReplicas;
  CHECK(ParseSpec(Domain(most), nullptr).ok());
  // failoverDelaySeconds may be 0; the others start at 1.
  CHECK(ParseSpec(Domain(WithElection({{"failoverDelaySeconds", 0}})), nullptr).ok());
}

TEST_CASE("ParseSpec checks service ports: a list of ports in 1..65535") {
  CHECK(RejectedField(WithPorts({{"port", 80}})) == "spec.service.ports");
  CHECK(RejectedField(WithPorts("80")) == "spec.service.ports");
  CHECK(RejectedField(WithPorts(json::array({{{"port", 0}}}))) == "spec.service.ports[0].port");
  CHECK(RejectedField(WithPorts(json::array({{{"port", 80}}, {{"port", 65536}}}))) ==
        "spec.service.ports[1].port");
  CHECK(RejectedField(WithPorts(json::array({{{"port", -80}}}))) == "spec.service.ports[0].port");
  CHECK(RejectedField(WithPorts(json::array({{{"port", "http"}}}))) ==
        "spec.service.ports[0].port");
  CHECK(RejectedField(WithPorts(json::array({{{"name", "http"}}}))) ==
        "spec.service.ports[0].port");
  CHECK(RejectedField(WithPorts(json::array({80}))) == "spec.service.ports[0].port");
  CHECK(RejectedField(WithPorts(json::array({{{"port", 80}, {"name", 80}}}))) ==
        "spec.service.ports[0].name");
  CHECK(RejectedField(WithPorts(json::array({{{"port", 80}}, {{"port", 53}, {"protocol", 17}}}))) ==
        "spec.service.ports[1].protocol");

  const auto edges = ParseSpec(
      Domain(WithPorts(json::array({{{"port", 1}}, {{"port", 65535}, {"targetPort", "web"}}}))),
      nullptr);
  REQUIRE(edges.ok());
  REQUIRE(edges->service_ports.size() == 2);
  CHECK(edges->service_ports[1].target_port == json("web"));
  const auto empty = ParseSpec(Domain(WithPorts(json::array())), nullptr);
  REQUIRE(empty.ok());
  CHECK(empty->service_ports.empty());
}

TEST_CASE("ParseSpec rejects a paused that is not a boolean") {
  for (const json& paused : {json("true"), json(1), json(nullptr), json::object()}) {
    CAPTURE(paused.dump());
    json spec = ManagedSpec();
    spec["paused"] = paused;
    CHECK(RejectedField(spec) == "spec.paused");
  }
  json spec = ManagedSpec();
  spec["paused"] = true;
  const auto parsed = ParseSpec(Domain(spec), nullptr);
  REQUIRE(parsed.ok());
  CHECK(parsed->paused);
}

TEST_CASE("ParseSpec rejects an object without a spec object") {
  for (const json& domain : {json(nullptr), json("spec"), json::array({ManagedSpec()}), json(3),
                             json::object(), json{{"metadata", {{"name", "web"}}}}, Domain(nullptr),
                             Domain("template"), Domain(json::array())}) {
    CAPTURE(domain.dump());
    CHECK(Reject(domain).field == "spec");
  }
}

TEST_CASE("ParseSpec defaults: no health plugin, restart back-off 1..60 s, no role hooks") {
  const auto spec = ParseSpec(Domain(ManagedSpec()), nullptr);
  REQUIRE(spec.ok());
  CHECK(spec->health.kind == health::ProbeKind::kNone);
  CHECK(spec->health.period == std::chrono::seconds(2));
  CHECK(spec->health.timeout == std::chrono::seconds(1));
  CHECK(spec->health.failure_threshold == 3);
  CHECK(spec->health.success_threshold == 1);
  CHECK(spec->restart.backoff_initial_seconds == 1);
  CHECK(spec->restart.backoff_max_seconds == 60);
  CHECK(spec->restart.max_concurrent == 1);
  CHECK(spec->role_hooks.kind == rolehook::HookKind::kNone);
  CHECK(spec->role_hooks.timeout == std::chrono::seconds(2));

  // Empty objects (what the CRD defaults to) and nulls mean the same.
  for (const json& value : {json::object(), json(nullptr)}) {
    CAPTURE(value.dump());
    json empty = ManagedSpec();
    empty["health"] = value;
    empty["restart"] = value;
    empty["roleHooks"] = value;
    const auto parsed = ParseSpec(Domain(empty), nullptr);
    REQUIRE(parsed.ok());
    CHECK(parsed->health == spec->health);
    CHECK(parsed->role_hooks == spec->role_hooks);
    CHECK(parsed->restart.backoff_max_seconds == 60);
  }

  // A plugin with only its required fields gets the documented defaults.
  const auto http = ParseSpec(Domain(WithHealth({{"http", {{"port", 8080}}}})), nullptr);
  REQUIRE(http.ok());
  CHECK(http->health.kind == health::ProbeKind::kHttp);
  CHECK(http->health.http.path == "/healthz");
  CHECK_FALSE(http->health.http.expected_status.has_value());
  CHECK(http->health.http.expected_body.empty());
  const auto hook = ParseSpec(Domain(WithRoleHooks({{"http", {{"port", 8080}}}})), nullptr);
  REQUIRE(hook.ok());
  CHECK(hook->role_hooks.kind == rolehook::HookKind::kHttp);
  CHECK(hook->role_hooks.http_path == "/dpcm/role");
}

TEST_CASE("ParseSpec reads spec.health, spec.restart and spec.roleHooks in full") {
  const auto spec = ParseSpec(Domain(FullSpec()), nullptr);
  REQUIRE(spec.ok());
  const auto& h = spec->health;
  CHECK(h.kind == health::ProbeKind::kHttp);
  CHECK(h.period == std::chrono::seconds(5));
  CHECK(h.timeout == std::chrono::seconds(3));
  CHECK(h.failure_threshold == 4);
  CHECK(h.success_threshold == 2);
  CHECK(h.http.port == 8080);
  CHECK(h.http.path == "/healthz");
  CHECK(h.http.expected_status == 204);
  CHECK(h.http.expected_body == "green");
  CHECK(spec->restart.backoff_initial_seconds == 2);
  CHECK(spec->restart.backoff_max_seconds == 30);
  CHECK(spec->restart.max_concurrent == 2);
  const auto& r = spec->role_hooks;
  CHECK(r.kind == rolehook::HookKind::kHttp);
  CHECK(r.timeout == std::chrono::seconds(4));
  CHECK(r.http_port == 9000);
  CHECK(r.http_path == "/role");

  const auto tcp = ParseSpec(Domain(WithHealth({{"tcp", {{"port", 5432}}}})), nullptr);
  REQUIRE(tcp.ok());
  CHECK(tcp->health.kind == health::ProbeKind::kTcp);
  CHECK(tcp->health.tcp.port == 5432);

  // timeoutSeconds may equal periodSeconds.
  const auto edge = ParseSpec(
      Domain(WithHealth({{"periodSeconds", 3}, {"timeoutSeconds", 3}, {"tcp", {{"port", 1}}}})),
      nullptr);
  REQUIRE(edge.ok());
  CHECK(edge->health.timeout == edge->health.period);
}

TEST_CASE("ParseSpec refuses every command: the operator never runs a program a spec names") {
  // Well-formed commands, hostile ones among them, for the health check and the role hook:
  // each is an InvalidSpec naming the field and saying why; nothing is parsed into a spec
  // the operator could run.
  const std::vector<json> commands = {
      {{"command", json::array({"/bin/check", "--db"})},
       {"env", json::array({{{"name", "LEVEL"}, {"value", "2"}}})}},
      {{"command", json::array({"/bin/sh", "-c", "touch /tmp/pwned; id"})}},
      {{"command", json::array({"/bin/check", "$(x); `y`", ""})},
       {"env", json::array({{{"name", "LD_PRELOAD"}, {"value", "/tmp/evil.so"}}})}},
  };
  for (const auto& command : commands) {
    CAPTURE(command.dump());
    const SpecError health = Reject(Domain(WithHealth({{"command", command}})));
    CHECK(health.field == "spec.health.command");
    CHECK(health.message.find("never runs a program") != std::string::npos);
    const SpecError hook = Reject(Domain(WithRoleHooks({{"command", command}})));
    CHECK(hook.field == "spec.roleHooks.command");
    CHECK(hook.message.find("never runs a program") != std::string::npos);
  }
}

TEST_CASE("with spec.agent, commands go to the agent and the operator only speaks HTTP to it") {
  json spec = ManagedSpec();
  spec["agent"] = {{"enabled", true}, {"port", 9100}};
  spec["health"] = {{"timeoutSeconds", 2},
                    {"periodSeconds", 2},
                    {"command",
                     {{"command", json::array({"/bin/check", "--db"})},
                      {"env", json::array({{{"name", "LEVEL"}, {"value", "2"}}})}}}};
  spec["roleHooks"] = {{"command", {{"command", json::array({"/bin/role"})}}}};
  const auto parsed = ParseSpec(Domain(spec), nullptr);
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
  // Nothing the operator's checkers or deliverers see is a command.
  CHECK(parsed->health.kind == health::ProbeKind::kHttp);
  CHECK(parsed->health.http.port == 9100);
  CHECK(parsed->health.http.path == "/healthz");
  CHECK(parsed->health.command.argv.empty());
  CHECK(parsed->role_hooks.kind == rolehook::HookKind::kHttp);
  CHECK(parsed->role_hooks.http_port == 9100);
  CHECK(parsed->role_hooks.http_path == "/dpcm/role");
  CHECK(parsed->role_hooks.argv.empty());
  // The agent gets them, with less time than the operator waits for its answer.
  const AgentSpec& agent = parsed->agent;
  CHECK(agent.enabled);
  CHECK(json::parse(agent.health_command_json)["command"][1] == "--db");
  CHECK(json::parse(agent.health_command_json)["env"][0]["name"] == "LEVEL");
  CHECK(json::parse(agent.role_hook_command_json)["command"][0] == "/bin/role");
  CHECK(agent.health_timeout < parsed->health.timeout);
  CHECK(agent.role_hook_timeout < parsed->role_hooks.timeout);

  // Agent switched off: refused exactly as without the field.
  spec["agent"] = {{"enabled", false}};
  CHECK(Reject(Domain(spec)).field == "spec.health.command");
  spec["agent"] = {{"enabled", "yes"}};
  CHECK(Reject(Domain(spec)).field == "spec.agent.enabled");
  spec["agent"] = {{"enabled", true}, {"port", 0}};
  CHECK(Reject(Domain(spec)).field.starts_with("spec.agent"));
}

TEST_CASE("with spec.agent and no roleHooks, the role still goes to the agent for GET /role") {
  json spec = ManagedSpec();
  spec["agent"] = {{"enabled", true}, {"port", 9100}};
  const auto parsed = ParseSpec(Domain(spec), nullptr);
  REQUIRE_MESSAGE(parsed.ok(), parsed.status().ToString());
  CHECK(parsed->role_hooks.kind == rolehook::HookKind::kHttp);
  CHECK(parsed->role_hooks.http_port == 9100);
  CHECK(parsed->role_hooks.http_path == "/dpcm/role");
  CHECK(parsed->agent.role_hook_command_json.empty());  // the agent runs nothing
  // Without the agent, no roleHooks means no hook: the application reads the label.
  spec.erase("agent");
  const auto label_only = ParseSpec(Domain(spec), nullptr);
  REQUIRE_MESSAGE(label_only.ok(), label_only.status().ToString());
  CHECK(label_only->role_hooks.kind == rolehook::HookKind::kNone);
}

TEST_CASE("ParseSpec rejects an unusable spec.health, naming the field") {
  const json http = {{"port", 8080}};
  const json tcp = {{"port", 8080}};
  const json command = {{"command", json::array({"/bin/check"})}};
  struct Case {
    json health;
    const char* field;
  };
  const std::vector<Case> cases = {
      {"http", "spec.health"},
      {{{"http", http}, {"tcp", tcp}}, "spec.health"},
      {{{"http", http}, {"command", command}}, "spec.health"},
      {{{"tcp", tcp}, {"command", command}}, "spec.health"},
      {{{"timeoutSeconds", 3}}, "spec.health.timeoutSeconds"},  // default period is 2
      {{{"periodSeconds", 5}, {"timeoutSeconds", 6}}, "spec.health.timeoutSeconds"},
      {{{"periodSeconds", 0}}, "spec.health.periodSeconds"},
      {{{"failureThreshold", 0}}, "spec.health.failureThreshold"},
      {{{"successThreshold", "1"}}, "spec.health.successThreshold"},
      {{{"http", "8080"}}, "spec.health.http"},
      {{{"http", json::object()}}, "spec.health.http.port"},
      {{{"http", {{"port", 0}}}}, "spec.health.http.port"},
      {{{"http", {{"port", 65536}}}}, "spec.health.http.port"},
      {{{"http", {{"port", "http"}}}}, "spec.health.http.port"},
      {{{"http", {{"port", 8080}, {"path", "healthz"}}}}, "spec.health.http.path"},
      {{{"http", {{"port", 8080}, {"path", ""}}}}, "spec.health.http.path"},
      {{{"http", {{"port", 8080}, {"scheme", "HTTPS"}}}}, "spec.health.http.scheme"},
      {{{"http", {{"port", 8080}, {"expectedStatus", 600}}}}, "spec.health.http.expectedStatus"},
      {{{"http", {{"port", 8080}, {"expectedStatus", 99}}}}, "spec.health.http.expectedStatus"},
      {{{"http", {{"port", 8080}, {"expectedBody", 1}}}}, "spec.health.http.expectedBody"},
      {{{"tcp", {{"port", 70000}}}}, "spec.health.tcp.port"},
      {{{"tcp", {{"port", -1}}}}, "spec.health.tcp.port"},
      {{{"tcp", 5432}}, "spec.health.tcp"},
      {{{"command", json::object()}}, "spec.health.command.command"},
      {{{"command", {{"command", json::array()}}}}, "spec.health.command.command"},
      {{{"command", {{"command", "/bin/check --db"}}}}, "spec.health.command.command"},
      {{{"command", {{"command", json::array({"/bin/check", 3})}}}}, "spec.health.command.command"},
      {{{"command", {{"command", json::array({"/bin/check", nullptr})}}}},
       "spec.health.command.command"},
      {{{"command", {{"command", json::array({""})}}}}, "spec.health.command.command[0]"},
      {{{"command", {{"command", json::array({"/bin/check"})}, {"env", "A=1"}}}},
       "spec.health.command.env"},
      {{{"command",
         {{"command", json::array({"/bin/check"})}, {"env", json::array({{{"value", "1"}}})}}}},
       "spec.health.command.env"},
      {{{"command",
         {{"command", json::array({"/bin/check"})},
          {"env", json::array({{{"name", ""}, {"value", "1"}}})}}}},
       "spec.health.command.env"},
      {{{"command",
         {{"command", json::array({"/bin/check"})},
          {"env", json::array({{{"name", "A=B"}, {"value", "1"}}})}}}},
       "spec.health.command.env"},
      {{{"command",
         {{"command", json::array({"/bin/check"})},
          {"env", json::array({{{"name", "A"}, {"value", 1}}})}}}},
       "spec.health.command.env"},
      {{{"command", {{"command", json::array({"/bin/check"})}, {"env", json::array({"A=1"})}}}},
       "spec.health.command.env"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.health.dump());
    CHECK(RejectedField(WithHealth(c.health)) == c.field);
  }
}

TEST_CASE("ParseSpec rejects an unusable spec.restart, naming the field") {
  CHECK(RejectedField(WithRestart({{"backoff", {{"initialSeconds", 10}, {"maxSeconds", 5}}}})) ==
        "spec.restart.backoff.maxSeconds");
  // The default maxSeconds (60) is below an initialSeconds of 120.
  const SpecError error = Reject(Domain(WithRestart({{"backoff", {{"initialSeconds", 120}}}})));
  CHECK(error.field == "spec.restart.backoff.maxSeconds");
  CHECK(error.message.find("120") != std::string::npos);
  CHECK(RejectedField(WithRestart({{"maxConcurrent", 0}})) == "spec.restart.maxConcurrent");
  CHECK(RejectedField(WithRestart({{"maxConcurrent", 1.5}})) == "spec.restart.maxConcurrent");
  CHECK(RejectedField(WithRestart({{"backoff", 5}})) == "spec.restart.backoff");
  CHECK(RejectedField(WithRestart({{"backoff", {{"initialSeconds", 0}}}})) ==
        "spec.restart.backoff.initialSeconds");
  CHECK(RejectedField(WithRestart("fast")) == "spec.restart");
  // Equal bounds are allowed.
  const auto equal = ParseSpec(
      Domain(WithRestart({{"backoff", {{"initialSeconds", 5}, {"maxSeconds", 5}}}})), nullptr);
  REQUIRE(equal.ok());
  CHECK(equal->restart.backoff_initial_seconds == 5);
  CHECK(equal->restart.backoff_max_seconds == 5);
}

TEST_CASE("ParseSpec rejects an unusable spec.roleHooks, naming the field") {
  const json command = {{"command", json::array({"/hooks/role"})}};
  struct Case {
    json hooks;
    const char* field;
  };
  const std::vector<Case> cases = {
      {{{"http", {{"port", 8080}}}, {"command", command}}, "spec.roleHooks"},
      {json::array(), "spec.roleHooks"},
      {{{"timeoutSeconds", 0}}, "spec.roleHooks.timeoutSeconds"},
      {{{"http", json::array()}}, "spec.roleHooks.http"},
      {{{"http", json::object()}}, "spec.roleHooks.http.port"},
      {{{"http", {{"port", 65536}}}}, "spec.roleHooks.http.port"},
      {{{"http", {{"port", 0}}}}, "spec.roleHooks.http.port"},
      {{{"http", {{"port", 8080}, {"path", "dpcm/role"}}}}, "spec.roleHooks.http.path"},
      {{{"http", {{"port", 8080}, {"path", 7}}}}, "spec.roleHooks.http.path"},
      {{{"command", {{"command", json::array()}}}}, "spec.roleHooks.command.command"},
      {{{"command", {{"command", json::array({"/hooks/role", true})}}}},
       "spec.roleHooks.command.command"},
      {{{"command",
         {{"command", json::array({"/hooks/role"})}, {"env", json::array({json::object()})}}}},
       "spec.roleHooks.command.env"},
      {{{"command",
         {{"command", json::array({"/hooks/role"})}, {"env", json::array({{{"name", "X=1"}}})}}}},
       "spec.roleHooks.command.env"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.hooks.dump());
    CHECK(RejectedField(WithRoleHooks(c.hooks)) == c.field);
  }
}

// Every JSON pointer below `at`, including `at` itself.
void CollectPointers(const json& value, const json::json_pointer& at,
                     std::vector<json::json_pointer>& out) {
  out.push_back(at);
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) CollectPointers(child, at / key, out);
  } else if (value.is_array()) {
    for (size_t i = 0; i < value.size(); ++i) CollectPointers(value[i], at / i, out);
  }
}

TEST_CASE("ParseSpec never throws on garbage of any JSON type in any field") {
  const std::vector<json> garbage = {json(nullptr),
                                     json("x"),
                                     json(""),
                                     json(0),
                                     json(-1),
                                     json(1.5),
                                     json(true),
                                     json(1e300),
                                     json::array(),
                                     json::array({1, "a", nullptr}),
                                     json::object(),
                                     json{{"a", 1}},
                                     json(18446744073709551615ULL)};
  const json adopt_spec = {
      {"selector", {{"matchLabels", {{"app", "db"}}}, {"matchExpressions", json::array()}}}};
  int parsed = 0;
  for (const json& base : {Domain(FullSpec()), Domain(adopt_spec), Domain(OtherPluginsSpec())}) {
    std::vector<json::json_pointer> pointers;
    CollectPointers(base, json::json_pointer(), pointers);
    for (const auto& pointer : pointers) {
      for (const json& value : garbage) {
        json domain = base;
        domain[pointer] = value;
        CAPTURE(domain.dump());
        SpecError error;
        CHECK_NOTHROW({
          const auto result = ParseSpec(domain, &error);
          if (!result.ok()) {
            CHECK(error.field.rfind("spec", 0) == 0);
          }
        });
        ++parsed;
      }
    }
  }
  CHECK(parsed > 500);
}

TEST_CASE("TrimDomain drops managedFields and kubectl's last-applied copy, nothing else") {
  json domain = {{"metadata",
                  {{"name", "web"},
                   {"namespace", "default"},
                   {"managedFields", json::array({{{"manager", "kubectl"}}})},
                   {"annotations",
                    {{"kubectl.kubernetes.io/last-applied-configuration", "{\"spec\":{}}"},
                     {"team", "payments"}}}}},
                 {"spec", {{"replicas", 3}}},
                 {"status", {{"epoch", 4}}}};
  json expected = domain;
  expected["metadata"].erase("managedFields");
  expected["metadata"]["annotations"].erase("kubectl.kubernetes.io/last-applied-configuration");
  TrimDomain(domain);
  CHECK(domain == expected);
  for (json garbage : {json(nullptr), json::array(), json{{"metadata", "x"}},
                       json{{"metadata", {{"annotations", 7}}}}}) {
    const json before = garbage;
    CHECK_NOTHROW(TrimDomain(garbage));
    CHECK(garbage == before);
  }
}

}  // namespace
}  // namespace dpcm::domain
