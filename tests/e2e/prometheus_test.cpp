// The operator's metrics as a real Prometheus sees them: scraped, queried back, linted by promtool.
#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/eventually.h"
#include "tests/support/operator_env.h"
#include "tests/support/operator_replicas.h"
#include "tests/support/process.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/temp_dir.h"
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

TEST_CASE("Prometheus scrapes the operator and reads a failover back, and promtool finds nothing") {
  OperatorReplicas replicas("prom");
  auto watcher_client = TestEnv::Client();
  DcWatcher watcher(*watcher_client, replicas.ns());
  REQUIRE(replicas.Start(0).ok());
  REQUIRE(testing::Eventually([&] { return replicas.Leader() == 0; }, 30s, 50ms));
  PrometheusServer prometheus(replicas.metrics_port(0), replicas.log_dir() + "/prometheus.log");
  REQUIRE_MESSAGE(
      testing::Eventually([&] { return prometheus.Query("up{job=\"dpcm-operator\"}") == 1.0; }, 30s,
                          200ms),
      "prometheus never scraped the operator");

  auto created = replicas.api().Create(client::resources::ProcessDomains(), replicas.ns(),
                                       OperatorEnv::SampleDomain("scraped", 2));
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  auto elected = watcher.WaitForNewDc("scraped", "", 60s);
  REQUIRE(elected.has_value());
  // Both members Ready, so that the failover has somewhere to go.
  REQUIRE(testing::Eventually(
      [&] {
        auto domain =
            replicas.api().Get(client::resources::ProcessDomains(), replicas.ns(), "scraped");
        return domain.ok() && domain->value("/status/ready"_json_pointer, "") == "2/2";
      },
      60s, 100ms));
  REQUIRE(replicas.KillPodProcess(elected->dc).ok());
  REQUIRE(watcher.WaitForNewDc("scraped", elected->dc, 30s).has_value());

  const std::string labels = "namespace=\"" + replicas.ns() + "\",domain=\"scraped\"";
  std::optional<double> failovers;
  CHECK_MESSAGE(testing::Eventually(
                    [&] {
                      failovers = prometheus.Query("sum(dpcm_failovers_total{" + labels + "})");
                      return failovers.value_or(0) >= 1;
                    },
                    30s, 250ms),
                "dpcm_failovers_total never reached 1 in Prometheus");
  const auto count = prometheus.Query("dpcm_failover_duration_seconds_count{" + labels + "}");
  const auto inf_bucket =
      prometheus.Query("dpcm_failover_duration_seconds_bucket{" + labels + ",le=\"+Inf\"}");
  const auto sum = prometheus.Query("dpcm_failover_duration_seconds_sum{" + labels + "}");
  const auto p50 = prometheus.Query(
      "histogram_quantile(0.5, sum by (le) (dpcm_failover_duration_seconds_bucket{" + labels +
      "}))");
  CHECK(count.value_or(0) >= 1);
  CHECK(inf_bucket == count);
  // The flight recorder: one observation per phase, and the last phase is the whole.
  for (const char* phase : {"decided", "fenced", "leaseWritten", "labeled"}) {
    CHECK_MESSAGE(prometheus
                          .Query("dpcm_failover_phase_duration_seconds_count{" + labels +
                                 ",phase=\"" + phase + "\"}")
                          .value_or(0) >= 1,
                  (std::string("no dpcm_failover_phase_duration_seconds for ") + phase));
  }
  // No role hooks: no hooksAcknowledged phase is invented.
  CHECK_FALSE(prometheus
                  .Query("dpcm_failover_phase_duration_seconds_count{" + labels +
                         ",phase=\"hooksAcknowledged\"}")
                  .has_value());
  CHECK(sum.value_or(-1) > 0);
  CHECK(sum.value_or(100) < 30);
  MESSAGE("Prometheus: dpcm_failovers_total "
          << failovers.value_or(-1) << ", failover duration count " << count.value_or(-1)
          << ", sum " << sum.value_or(-1) << " s, p50 ≈ " << p50.value_or(-1) << " s");

  // The exposition itself: promtool's linter, and the names dashboards expect.
  auto exposition = testing::HttpGet(replicas.metrics_port(0), "/metrics");
  REQUIRE(exposition.ok());
  testing::TempDir scratch;
  const std::string file = scratch.Write("metrics.txt", *exposition);
  auto lint = testing::RunCommand(
      {"sh", "-c", "promtool check metrics < \"$1\" 2>&1; echo \"exit=$?\"", "sh", file});
  REQUIRE(lint.ok());
  CHECK_MESSAGE(*lint == "exit=0\n", ("promtool check metrics: " + *lint));
  for (const char* name :
       {"dpcm_failovers_total", "dpcm_failover_duration_seconds",
        "dpcm_failover_phase_duration_seconds", "dpcm_domain_active_pods", "dpcm_domain_members",
        "dpcm_domain_epoch", "controller_runtime_reconcile_total",
        "controller_runtime_reconcile_errors_total", "controller_runtime_reconcile_time_seconds",
        "workqueue_depth", "workqueue_adds_total", "workqueue_queue_duration_seconds",
        "workqueue_retries_total", "leader_election_master_status", "rest_client_requests_total",
        "process_resident_memory_bytes", "process_cpu_seconds_total",
        "process_start_time_seconds"}) {
    CHECK_MESSAGE(exposition->find("# TYPE " + std::string(name) + " ") != std::string::npos,
                  (std::string(name) + " is missing from /metrics"));
  }
  CHECK(testing::SampleValue(*exposition, "leader_election_master_status{name=\"" +
                                              std::string(OperatorReplicas::kLeaseName) + "\"}") ==
        1.0);

  // The alert rules on the real series: each evaluates without error, the series they
  // read exist with the labels and bucket they match on, and after one quick failover with
  // a leader elected, none of the safety alerts fires.
  Json rules;
  CHECK_MESSAGE(testing::Eventually(
                    [&] {
                      rules = prometheus.AlertingRules();
                      if (rules.size() != 7) return false;
                      for (const auto& rule : rules) {
                        if (rule.value("health", "") != "ok" ||
                            rule.value("lastEvaluation", "").rfind("0001-", 0) == 0) {
                          return false;
                        }
                      }
                      return true;
                    },
                    30s, 250ms),
                "the alert rules were not all evaluated cleanly: " << rules.dump());
  CHECK(prometheus.Query("dpcm_domain_active_pods{" + labels + "}") == 1.0);
  CHECK(prometheus.Query("sum(dpcm_domain_members{" + labels + "})") == 2.0);
  CHECK(prometheus.Query("leader_election_master_status{name=\"dpcm-operator\"}") == 1.0);
  // DpcmFailoverSlow's left side and DpcmFailoverFlapping's sum, without their thresholds.
  CHECK(prometheus
            .Query("dpcm_failover_duration_seconds_count{" + labels +
                   "} - ignoring (le) dpcm_failover_duration_seconds_bucket{" + labels +
                   ",le=\"1\"}")
            .has_value());
  CHECK(prometheus
            .Query("sum by (namespace, domain) (dpcm_failovers_total{" + labels +
                   "} - (dpcm_failovers_total offset 15m or dpcm_failovers_total * 0))")
            .value_or(0) >= 1);
  CHECK_FALSE(
      prometheus
          .Query("ALERTS{alertname=~\"DpcmDomainNoDC|DpcmDomainTwoDCs|DpcmOperatorNoLeader\"}")
          .has_value());

  CHECK(prometheus.Stop() == 0);
  CHECK_FALSE(prometheus.Running());
  for (const auto& violation : watcher.Violations()) FAIL_CHECK(violation);
}

}  // namespace
}  // namespace dpcm
