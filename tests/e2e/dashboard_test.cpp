// The Grafana dashboard (manifests/grafana/dpcm-dashboard.json) against a real Prometheus that
// scraped a failover: every panel's query returns data, every metric it names exists, and the
// chart's ConfigMap carries the same JSON.
#include <doctest/doctest.h>
#include <httplib.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
#include "tests/support/operator_env.h"
#include "tests/support/operator_replicas.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/testenv.h"

namespace dpcm {
namespace {

using client::Json;
using namespace std::chrono_literals;
using testing::DcWatcher;
using testing::OperatorEnv;
using testing::OperatorReplicas;
using testing::PrometheusServer;
using testing::TestEnv;

constexpr const char* kDomain = "panels";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

Json Dashboard() {
  const std::string path = std::string(DPCM_SOURCE_DIR) + "/manifests/grafana/dpcm-dashboard.json";
  Json dashboard = Json::parse(ReadFile(path), nullptr, false);
  REQUIRE_MESSAGE(dashboard.is_object(), (path + " is not a JSON object"));
  return dashboard;
}

// One query of the dashboard: a panel's target or a template variable's label_values().
struct PanelQuery {
  std::string where;  // "panel \"Title\" target A"
  std::string expr;   // with Grafana's variables as they are in the JSON
  bool instant = false;
};

std::vector<PanelQuery> PanelQueries(const Json& dashboard) {
  std::vector<PanelQuery> out;
  for (const auto& panel : dashboard.value("panels", Json::array())) {
    if (panel.value("type", "") == "row") continue;
    const auto targets = panel.value("targets", Json::array());
    CHECK_MESSAGE(!targets.empty(), ("panel \"" + panel.value("title", "") + "\" has no query"));
    for (const auto& target : targets) {
      out.push_back(
          {"panel \"" + panel.value("title", "") + "\" target " + target.value("refId", "?"),
           target.value("expr", ""), target.value("instant", false)});
    }
  }
  return out;
}

// Grafana's variables as the dashboard's user would pick them for this run.
std::string Substitute(std::string expr, const std::map<std::string, std::string>& values) {
  for (const auto& [name, value] : values) {
    for (const std::string& form : {"${" + name + "}", "$" + name}) {
      for (auto at = expr.find(form); at != std::string::npos; at = expr.find(form, at)) {
        expr.replace(at, form.size(), value);
        at += value.size();
      }
    }
  }
  return expr;
}

// The metric names an expression reads: identifiers with one of the operator's prefixes.
std::set<std::string> MetricNames(const std::string& expr) {
  static const std::regex name(
      R"(\b(?:dpcm|controller_runtime|workqueue|leader_election|rest_client|process)_[a-zA-Z0-9_:]+)");
  std::set<std::string> out;
  for (auto it = std::sregex_iterator(expr.begin(), expr.end(), name); it != std::sregex_iterator();
       ++it) {
    out.insert(it->str());
  }
  return out;
}

// The number of finite sample values in a query's result (vector or matrix).
int FiniteValues(const Json& result) {
  const auto finite = [](const Json& pair) {
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_string()) return false;
    try {
      return std::isfinite(std::stod(pair[1].get<std::string>()));
    } catch (const std::exception&) {
      return false;
    }
  };
  int n = 0;
  for (const auto& series : result) {
    if (series.contains("value")) n += finite(series["value"]) ? 1 : 0;
    for (const auto& pair : series.value("values", Json::array())) n += finite(pair) ? 1 : 0;
  }
  return n;
}

Status PostToApp(client::ApiClient& api, const std::string& ns, const std::string& pod,
                 const std::string& path) {
  auto object = api.Get(client::resources::Pods(), ns, pod);
  if (!object.ok()) return object.status();
  const std::string ip = object->value("/status/podIP"_json_pointer, "");
  if (ip.empty()) return Status::NotFound(pod + " has no IP");
  httplib::Client app(ip, 8080);
  app.set_connection_timeout(2);
  auto response = app.Post(path);
  if (!response || response->status != 200) return Status::Internal("POST " + path + " failed");
  return Status::Ok();
}

// helm as hack/deps.sh installs it ($DPCM_CACHE/bin/helm), else $DPCM_HELM or PATH's.
std::string HelmBinary() {
  const auto env = [](const char* name, const std::string& fallback) -> std::string {
    const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
    return value != nullptr && *value != '\0' ? value : fallback;
  };
  if (std::string helm = env("DPCM_HELM", ""); !helm.empty()) return helm;
  const std::string cached =
      env("DPCM_CACHE", env("XDG_CACHE_HOME", env("HOME", "/root") + "/.cache") + "/dpcm") +
      "/bin/helm";
  return access(cached.c_str(), X_OK) == 0 ? cached : "helm";
}

TEST_CASE("the chart's Grafana dashboard ConfigMap carries manifests/grafana/dpcm-dashboard.json") {
  auto rendered = testing::RunCommand({HelmBinary(), "template", "dpcm-operator",
                                       std::string(DPCM_SOURCE_DIR) + "/helm/dpcm-operator", "-n",
                                       "dpcm-system", "--set", "grafanaDashboard.enabled=true",
                                       "--show-only", "templates/grafana-dashboard.yaml"});
  REQUIRE_MESSAGE(rendered.ok(), rendered.status().ToString());
  CHECK(rendered->find("\n    grafana_dashboard: \"1\"\n") != std::string::npos);
  const std::string key = "\n  dpcm-dashboard.json: |-\n";
  const auto at = rendered->find(key);
  REQUIRE_MESSAGE(at != std::string::npos, *rendered);
  std::istringstream block(rendered->substr(at + key.size()));
  std::string json_text;
  for (std::string line; std::getline(block, line);) {
    if (!line.empty() && line.rfind("    ", 0) != 0) break;  // the block ended
    json_text += (line.empty() ? line : line.substr(4)) + "\n";
  }
  const Json in_chart = Json::parse(json_text, nullptr, false);
  REQUIRE_MESSAGE(in_chart.is_object(), "the ConfigMap's dashboard is not JSON");
  CHECK(in_chart == Dashboard());
}

TEST_CASE("every panel of the Grafana dashboard returns data after a failover with role hooks") {
  const Json dashboard = Dashboard();
  const auto queries = PanelQueries(dashboard);
  REQUIRE(queries.size() >= 20);

  OperatorReplicas replicas("dash");
  auto watcher_client = TestEnv::Client();
  DcWatcher watcher(*watcher_client, replicas.ns());
  REQUIRE(replicas.Start(0).ok());
  REQUIRE(testing::Eventually([&] { return replicas.Leader() == 0; }, 30s, 50ms));
  PrometheusServer prometheus(replicas.metrics_port(0), replicas.log_dir() + "/prometheus.log");
  REQUIRE_MESSAGE(testing::Eventually(
                      [&] {
                        return prometheus.Query("up{job=\"" + std::string(PrometheusServer::kJob) +
                                                "\"}") == 1.0;
                      },
                      30s, 200ms),
                  "prometheus never scraped the operator");
  const double start =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  // A domain with every plugin: an http health check (failures restart the member), role
  // hooks over HTTP, and a Service.
  Json domain = OperatorEnv::SampleDomain(kDomain, 2);
  domain["spec"]["template"]["spec"]["containers"][0].erase("readinessProbe");
  domain["spec"]["health"] = {{"periodSeconds", 1},
                              {"timeoutSeconds", 1},
                              {"failureThreshold", 2},
                              {"http", {{"port", 8080}, {"path", "/healthz"}}}};
  domain["spec"]["restart"] = {{"backoff", {{"initialSeconds", 1}, {"maxSeconds", 4}}},
                               {"maxConcurrent", 1}};
  domain["spec"]["roleHooks"] = {{"http", {{"port", 8080}, {"path", "/dpcm/role"}}},
                                 {"timeoutSeconds", 1}};
  auto created = replicas.api().Create(client::resources::ProcessDomains(), replicas.ns(), domain);
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  auto elected = watcher.WaitForNewDc(kDomain, "", 60s);
  REQUIRE(elected.has_value());
  const auto status_of = [&] {
    auto object = replicas.api().Get(client::resources::ProcessDomains(), replicas.ns(), kDomain);
    return object.ok() ? object->value("status", Json::object()) : Json::object();
  };
  REQUIRE(testing::Eventually([&] { return status_of().value("ready", "") == "2/2"; }, 60s, 100ms));

  // The DC turns sick: failover (its new DC acknowledges over the role hook), then the
  // operator restarts the sick member. Twice: Prometheus' rate() sees no increase in a
  // series' first sample, so the second failover is what the rate-based panels show.
  const std::string labels =
      "namespace=\"" + replicas.ns() + "\",domain=\"" + std::string(kDomain) + "\"";
  std::string dc = elected->dc;
  for (int round = 1; round <= 2; ++round) {
    CAPTURE(round);
    const int64_t epoch = status_of().value("epoch", int64_t{0});
    REQUIRE(PostToApp(replicas.api(), replicas.ns(), dc, "/admin/unhealthy").ok());
    auto moved = watcher.WaitForNewDc(kDomain, dc, 30s);
    REQUIRE_MESSAGE(moved.has_value(), "no failover after the DC turned sick");
    dc = moved->dc;
    Json last;
    CHECK_MESSAGE(
        testing::Eventually(
            [&] {
              last = status_of().value("lastFailover", Json());
              return last.is_object() && last.value("epoch", int64_t{0}) > epoch &&
                     last.value("hooks", "") == "acknowledged";
            },
            30s, 100ms),
        "status.lastFailover never recorded the role hook's acknowledgement: " << last.dump());
    MESSAGE("status.lastFailover: " << last.dump());
    CHECK_MESSAGE(
        testing::Eventually(
            [&] {
              return prometheus
                             .Query("dpcm_failover_phase_duration_seconds_count{" + labels +
                                    ",phase=\"hooksAcknowledged\"}")
                             .value_or(0) >= round &&
                     prometheus.Query("sum(dpcm_pod_restarts_total{" + labels + "})").value_or(0) >=
                         round;
            },
            60s, 250ms),
        "Prometheus never saw the hooksAcknowledged phase and a restart");
    // The sick member is back (a new pod) and healthy.
    REQUIRE(
        testing::Eventually([&] { return status_of().value("ready", "") == "2/2"; }, 60s, 100ms));
  }
  // A few more scrapes after the last event (rate() and increase() need two samples in
  // their window).
  const double calm =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  CHECK(testing::Eventually(
      [&] {
        return prometheus
                   .Query("max(timestamp(up{job=\"" + std::string(PrometheusServer::kJob) + "\"}))")
                   .value_or(0) >= calm + 3;
      },
      30s, 250ms));
  const double end =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();

  const std::map<std::string, std::string> variables = {
      {"job", PrometheusServer::kJob},
      {"namespace", replicas.ns()},
      {"domain", kDomain},
      {"__rate_interval", "10s"},
      {"__interval", "1s"},
      {"__range", std::to_string(static_cast<int>(end - start) + 1) + "s"}};

  // The template variables list this run's job, namespace and domain.
  for (const auto& variable : dashboard.value("/templating/list"_json_pointer, Json::array())) {
    if (variable.value("type", "") != "query") continue;
    static const std::regex label_values(R"(^label_values\((.*),\s*(\w+)\)$)");
    std::smatch match;
    const std::string definition = variable.value("definition", "");
    REQUIRE_MESSAGE(std::regex_match(definition, match, label_values), definition);
    const std::string label = match[2];
    const auto answer =
        prometheus.Instant("count by (" + label + ") (" + Substitute(match[1], variables) + ")");
    std::set<std::string> values;
    for (const auto& series : answer.result) values.insert(series["metric"].value(label, ""));
    const std::string name = variable.value("name", "");
    CHECK_MESSAGE(values.count(variables.at(name)) == 1,
                  "variable $" << name << " (" << definition << ") lists " << answer.result.dump());
  }

  // Every panel: each metric it names exists, and its query (as Grafana runs it: a range
  // over the run, or instant) returns at least one finite value.
  std::set<std::string> checked_names;
  int passed = 0;
  for (const auto& query : queries) {
    CAPTURE(query.where);
    CAPTURE(query.expr);
    const std::string expr = Substitute(query.expr, variables);
    CHECK_MESSAGE(expr.find('$') == std::string::npos, "a Grafana variable was left: " << expr);
    const auto names = MetricNames(expr);
    CHECK_MESSAGE(!names.empty(), "the query reads none of the operator's metrics");
    for (const auto& name : names) {
      if (!checked_names.insert(name).second) continue;
      CHECK_MESSAGE(prometheus
                            .Query("count({__name__=\"" + name + "\",job=\"" +
                                   PrometheusServer::kJob + "\"})")
                            .value_or(0) >= 1,
                    "metric " << name << " does not exist in Prometheus");
    }
    const auto answer =
        query.instant ? prometheus.Instant(expr) : prometheus.Range(expr, start, end, 1);
    REQUIRE_MESSAGE(answer.ok, "Prometheus refused the query: " << answer.error);
    const int finite = FiniteValues(answer.result);
    CHECK_MESSAGE(finite > 0, "no data: " << answer.result.dump());
    if (finite > 0) ++passed;
  }
  MESSAGE(passed << " of " << queries.size() << " panel queries returned data; "
                 << checked_names.size() << " metrics named, all checked");

  CHECK(prometheus.Stop() == 0);
  for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
}

}  // namespace
}  // namespace dpcm
