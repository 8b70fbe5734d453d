// A real Prometheus (Debian's /usr/bin/prometheus) for e2e tests: scrapes one target, answers
// queries through its HTTP API.
#pragma once

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tests/support/eventually.h"
#include "tests/support/operator_replicas.h"
#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace dpcm::testing {

// A Prometheus server scraping one target every second as job "dpcm-operator" and
// evaluating dpcm's alert rules (manifests/prometheus/dpcm-alerts.yaml), with its data in
// a scratch directory; stopped and removed on destruction. Not thread-safe.
class PrometheusServer {
 public:
  using Json = nlohmann::json;

  static constexpr const char* kJob = "dpcm-operator";

  // What the HTTP API answered to a query: `result` (data.result) when `ok`, else `error`.
  struct Answer {
    bool ok = false;
    Json result = Json::array();
    std::string error;
  };

  PrometheusServer(int target_port, const std::string& log_path) : port_(FreePort()) {
    const std::string config = dir_.Write("prometheus.yml", R"(global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - ")" + std::string(DPCM_SOURCE_DIR) + R"(/manifests/prometheus/dpcm-alerts.yaml"
scrape_configs:
  - job_name: )" + std::string(kJob) + R"(
    static_configs:
      - targets: ["127.0.0.1:)" + std::to_string(target_port) + R"("]
)");
    auto started =
        ManagedProcess::Start({"prometheus", "--config.file=" + config,
                               "--storage.tsdb.path=" + (dir_.path() / "data").string(),
                               "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
                              log_path, {});
    REQUIRE_MESSAGE(started.ok(), started.status().ToString());
    process_ = std::move(*started);
    REQUIRE_MESSAGE(Eventually([&] { return HttpGet(port_, "/-/ready").ok(); },
                               std::chrono::seconds(30), std::chrono::milliseconds(100)),
                    ("prometheus did not get ready; see " + log_path));
  }
  ~PrometheusServer() { Stop(); }
  PrometheusServer(const PrometheusServer&) = delete;
  PrometheusServer& operator=(const PrometheusServer&) = delete;

  // Stops the server (SIGTERM); returns its exit code.
  int Stop() { return process_ ? process_->Stop(10000) : 0; }
  bool Running() { return process_ && process_->Running(); }

  // The value of an instant query's first result, or nullopt when it has none.
  std::optional<double> Query(const std::string& promql) {
    const Answer answer = Instant(promql);
    if (!answer.ok || answer.result.empty()) return std::nullopt;
    try {
      return std::stod(answer.result[0]["value"][1].get<std::string>());
    } catch (const std::exception&) {
      return std::nullopt;
    }
  }

  // GET /api/v1/query (an instant query, now).
  Answer Instant(const std::string& promql) { return Get("/api/v1/query", {{"query", promql}}); }

  // GET /api/v1/query_range from `start` to `end` (Unix seconds) every `step_seconds`.
  Answer Range(const std::string& promql, double start, double end, double step_seconds) {
    return Get("/api/v1/query_range", {{"query", promql},
                                       {"start", std::to_string(start)},
                                       {"end", std::to_string(end)},
                                       {"step", std::to_string(step_seconds)}});
  }

  // The alerting rules as /api/v1/rules lists them (each with its health and state), or
  // an empty array when the server does not answer.
  Json AlertingRules() {
    httplib::Client http("127.0.0.1", port_);
    auto response = http.Get("/api/v1/rules", httplib::Params{{"type", "alert"}}, {});
    if (!response || response->status != 200) return Json::array();
    const Json body = Json::parse(response->body, nullptr, false);
    Json rules = Json::array();
    if (body.is_discarded()) return rules;
    for (const auto& group : body.value("/data/groups"_json_pointer, Json::array())) {
      for (const auto& rule : group.value("rules", Json::array())) rules.push_back(rule);
    }
    return rules;
  }

 private:
  Answer Get(const std::string& path, const httplib::Params& params) {
    httplib::Client http("127.0.0.1", port_);
    http.set_read_timeout(30);
    auto response = http.Get(path, params, {});
    if (!response)
      return {false, Json::array(), "no answer: " + httplib::to_string(response.error())};
    const Json body = Json::parse(response->body, nullptr, false);
    if (body.is_discarded()) return {false, Json::array(), "not JSON: " + response->body};
    if (response->status != 200 || body.value("status", "") != "success") {
      return {false, Json::array(), body.value("error", response->body)};
    }
    return {true, body.value("/data/result"_json_pointer, Json::array()), ""};
  }

  TempDir dir_;
  int port_;
  std::unique_ptr<ManagedProcess> process_;
};

}  // namespace dpcm::testing
