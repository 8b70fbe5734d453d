// Metrics: every DESIGN.md family in a promtool-clean exposition, domain forgetting,
// process metrics, the work queue observer and the HTTP server on an ephemeral port.
#include "pkg/metrics/metrics.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <httplib.h>
#include <prometheus/text_serializer.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "pkg/clock/clock.h"
#include "pkg/metrics/metrics_server.h"
#include "pkg/metrics/workqueue_observer.h"
#include "pkg/workqueue/workqueue.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace dpcm::metrics {
namespace {

using namespace std::chrono_literals;

// The series `name{labels}` as a scrape would show it, or nullptr.
std::optional<prometheus::ClientMetric> Find(const Metrics& metrics, const std::string& name,
                                             const std::map<std::string, std::string>& labels) {
  for (const auto& family : metrics.Collect()) {
    if (family.name != name) continue;
    for (const auto& metric : family.metric) {
      std::map<std::string, std::string> have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return metric;
    }
  }
  return std::nullopt;
}

bool HasFamily(const Metrics& metrics, const std::string& name) {
  for (const auto& family : metrics.Collect()) {
    if (family.name == name) return true;
  }
  return false;
}

struct PromtoolResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

// Runs `promtool check metrics` (argv, no shell) with `exposition` on stdin; nullopt when
// promtool is not on PATH.
std::optional<PromtoolResult> PromtoolCheckMetrics(const std::string& exposition) {
  const auto dir = std::filesystem::temp_directory_path();
  static std::atomic<int> runs{0};
  const std::string tag = std::to_string(getpid()) + "-" + std::to_string(++runs);
  const auto input = dir / ("dpcm-metrics-" + tag + ".prom");
  const auto output = dir / ("dpcm-promtool-" + tag + ".out");
  std::ofstream(input) << exposition;

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, input.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<std::string> args{"promtool", "check", "metrics"};
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int spawned = posix_spawnp(&pid, "promtool", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  std::optional<PromtoolResult> result;
  if (spawned == 0) {
    int status = 0;
    waitpid(pid, &status, 0);
    std::ostringstream text;
    text << std::ifstream(output).rdbuf();
    result = PromtoolResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
  }
  std::filesystem::remove(input);
  std::filesystem::remove(output);
  return result;
}

// Touches every accessor once, so every family has a series.
void PopulateEverything(Metrics& metrics) {
  metrics.FailoversTotal("ns", "db", "dc-unhealthy")->Increment();
  metrics.FailoverDuration("ns", "db")->Observe(0.2);
  metrics.SetDomainState("ns", "db",
                         {.dc_healthy = 1,
                          .pc_unhealthy = 2,
                          .epoch = 7,
                          .dc_pods = {"db-0"},
                          .conditions = {{"Ready", true}, {"Degraded", false}}});
  metrics.HealthChecksTotal("ns", "db", "success")->Increment();
  metrics.PodRestartsTotal("ns", "db", "health")->Increment();
  metrics.HealthCheckDuration().Observe(0.003);
  metrics.RegisterController("processdomain");
  metrics.ReconcileTotal("processdomain", ReconcileOutcome::kSuccess).Increment();
  metrics.ReconcileTime("processdomain").Observe(0.04);
  metrics.WorkQueueDepth("processdomain").Set(3);
  metrics.WorkQueueAddsTotal("processdomain").Increment();
  metrics.WorkQueueQueueDuration("processdomain").Observe(0.001);
  metrics.WorkQueueWorkDuration("processdomain").Observe(0.01);
  metrics.WorkQueueRetriesTotal("processdomain").Increment();
  metrics.LeaderElectionMasterStatus("dpcm-operator").Set(1);
  metrics.RestClientRequestObserver("10.96.0.1:443")("GET", 200);
}

constexpr std::string_view kDesignFamilies[] = {
    "dpcm_failovers_total",
    "dpcm_failover_duration_seconds",
    "dpcm_domain_active_pods",
    "dpcm_domain_members",
    "dpcm_health_checks_total",
    "dpcm_health_check_duration_seconds",
    "dpcm_pod_restarts_total",
    "dpcm_domain_epoch",
    "dpcm_domain_dc_info",
    "controller_runtime_reconcile_total",
    "controller_runtime_reconcile_errors_total",
    "controller_runtime_reconcile_time_seconds",
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds",
    "workqueue_retries_total",
    "leader_election_master_status",
    "rest_client_requests_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_start_time_seconds",
    "process_open_fds",
};

TEST_CASE("Metrics exposes every DESIGN.md family, and the text passes promtool") {
  Metrics metrics;
  PopulateEverything(metrics);
  const std::string text = metrics.RenderText();
  for (const auto& name : kDesignFamilies) {
    CAPTURE(name);
    CHECK(text.find("# TYPE " + std::string(name) + " ") != std::string::npos);
  }
  CHECK(text.find("dpcm_failover_duration_seconds_bucket{namespace=\"ns\",domain=\"db\","
                  "le=\"0.01\"}") != std::string::npos);

  const auto checked = PromtoolCheckMetrics(text);
  if (!checked) {
    MESSAGE("promtool is not on PATH; only the families were checked");
    return;
  }
  CHECK(checked->exit_code == 0);
  CHECK(checked->output == "");
}

TEST_CASE("Metrics accessors return the same series, and a scrape reads them back") {
  Metrics metrics;
  const auto failovers = metrics.FailoversTotal("ns", "db", "pod-deleted");
  CHECK(failovers == metrics.FailoversTotal("ns", "db", "pod-deleted"));
  failovers->Increment();
  metrics.FailoversTotal("ns", "db", "pod-deleted")->Increment();
  const auto sample = Find(metrics, "dpcm_failovers_total",
                           {{"namespace", "ns"}, {"domain", "db"}, {"reason", "pod-deleted"}});
  REQUIRE(sample);
  CHECK(sample->counter.value == 2);

  metrics.SetDomainState("ns", "db", {.pc_healthy = 2});
  const auto members =
      Find(metrics, "dpcm_domain_members",
           {{"namespace", "ns"}, {"domain", "db"}, {"role", "pc"}, {"healthy", "true"}});
  REQUIRE(members);
  CHECK(members->gauge.value == 2);

  CHECK(&metrics.ReconcileTotal("c", ReconcileOutcome::kError) ==
        &metrics.ReconcileTotal("c", ReconcileOutcome::kError));
}

TEST_CASE("Metrics ForgetDomain drops only that domain's series") {
  Metrics metrics;
  const auto held = metrics.FailoversTotal("ns", "gone", "dc-unhealthy");
  held->Increment();
  metrics.SetDomainState("ns", "gone", {.dc_healthy = 1, .epoch = 4});
  metrics.SetDomainState("ns", "kept", {.epoch = 9});
  metrics.SetDomainState("ns", "gone-too-similar", {.epoch = 2});
  metrics.SetDomainState("other", "gone", {.epoch = 3});

  metrics.ForgetDomain("ns", "gone");
  const std::string text = metrics.RenderText();
  CHECK(text.find("namespace=\"ns\",domain=\"gone\"") == std::string::npos);
  CHECK(text.find("namespace=\"ns\",domain=\"kept\"") != std::string::npos);
  CHECK(Find(metrics, "dpcm_domain_epoch", {{"namespace", "ns"}, {"domain", "kept"}}));
  CHECK(Find(metrics, "dpcm_domain_epoch", {{"namespace", "ns"}, {"domain", "gone-too-similar"}}));
  CHECK(Find(metrics, "dpcm_domain_epoch", {{"namespace", "other"}, {"domain", "gone"}}));
  CHECK_FALSE(HasFamily(metrics, "dpcm_failovers_total"));  // its only series is gone

  held->Increment();  // a holder keeps a valid series, no longer exported
  CHECK_FALSE(HasFamily(metrics, "dpcm_failovers_total"));
  CHECK_FALSE(Find(metrics, "dpcm_domain_epoch", {{"namespace", "ns"}, {"domain", "gone"}}));
  // A domain created again with the same name starts from zero.
  CHECK(metrics.FailoversTotal("ns", "gone", "dc-unhealthy")->Value() == 0);
}

TEST_CASE("RenderText of many domains, a few series at a time, is Collect() serialized whole") {
  Metrics metrics;
  for (int i = 0; i < 150; ++i) {  // more series per family than one slice holds
    const std::string domain = "d-" + std::to_string(i);
    metrics.SetDomainState("ns", domain,
                           {.dc_healthy = 1,
                            .pc_healthy = i % 3 != 0 ? 2 : 0,
                            .pc_unhealthy = i % 3 != 0 ? 0 : 2,
                            .epoch = i,
                            .dc_pods = {domain + "-0"},
                            .conditions = {{"Ready", i % 2 == 0}, {"Degraded", false}}});
    metrics.FailoverDuration("ns", domain)->Observe(0.001 * i);
  }
  // The process_* families come last and change between two reads: compare up to them.
  auto before_process = [](const std::string& text) {
    return text.substr(0, text.find("# HELP process_"));
  };
  std::ostringstream whole;
  prometheus::TextSerializer().Serialize(whole, metrics.Collect());
  const std::string text = metrics.RenderText();
  CHECK(before_process(text) == before_process(whole.str()));
  CHECK(text.find("# HELP process_") != std::string::npos);
  size_t types = 0;
  for (size_t at = 0; (at = text.find("# TYPE dpcm_domain_members ", at)) != std::string::npos;
       ++at) {
    ++types;
  }
  CHECK(types == 1);
}

TEST_CASE("Metrics SetDomainState lists a pod or condition type given twice once") {
  Metrics metrics;
  metrics.SetDomainState(
      "ns", "db",
      {.dc_pods = {"db-1", "db-0", "db-1"}, .conditions = {{"Ready", false}, {"Ready", true}}});
  const std::string text = metrics.RenderText();
  const auto count = [&](const std::string& line) {
    size_t n = 0;
    for (size_t at = 0; (at = text.find(line, at)) != std::string::npos; ++at) ++n;
    return n;
  };
  CHECK(count("dpcm_domain_dc_info{namespace=\"ns\",domain=\"db\",pod=\"db-1\"} 1") == 1);
  CHECK(count("dpcm_domain_dc_info{namespace=\"ns\",domain=\"db\",pod=\"db-0\"} 1") == 1);
  CHECK(count("dpcm_domain_condition{namespace=\"ns\",domain=\"db\",type=\"Ready\"}") == 1);
  const auto ready = Find(metrics, "dpcm_domain_condition",
                          {{"namespace", "ns"}, {"domain", "db"}, {"type", "Ready"}});
  REQUIRE(ready);
  CHECK(ready->gauge.value == 1);  // the last value given
}

TEST_CASE("Metrics dpcm_domain_dc_info names the DC pods, replacing the domain's set") {
  Metrics metrics;
  metrics.SetDomainState("ns", "db", {.dc_pods = {"db-0"}});
  metrics.SetDomainState("ns", "other", {.dc_pods = {"other-1"}});
  const auto dc = Find(metrics, "dpcm_domain_dc_info",
                       {{"namespace", "ns"}, {"domain", "db"}, {"pod", "db-0"}});
  REQUIRE(dc);
  CHECK(dc->gauge.value == 1);

  // The DC moved: only the new one is named, the other domain is untouched.
  metrics.SetDomainState("ns", "db", {.dc_pods = {"db-1"}});
  CHECK_FALSE(Find(metrics, "dpcm_domain_dc_info",
                   {{"namespace", "ns"}, {"domain", "db"}, {"pod", "db-0"}}));
  CHECK(Find(metrics, "dpcm_domain_dc_info",
             {{"namespace", "ns"}, {"domain", "db"}, {"pod", "db-1"}}));
  CHECK(Find(metrics, "dpcm_domain_dc_info",
             {{"namespace", "ns"}, {"domain", "other"}, {"pod", "other-1"}}));

  // No DC: no series for the domain; two: both are named.
  metrics.SetDomainState("ns", "db", {});
  CHECK_FALSE(Find(metrics, "dpcm_domain_dc_info",
                   {{"namespace", "ns"}, {"domain", "db"}, {"pod", "db-1"}}));
  metrics.SetDomainState("ns", "db", {.dc_pods = {"db-1", "db-0"}});
  CHECK(metrics.RenderText().find(
            "dpcm_domain_dc_info{namespace=\"ns\",domain=\"db\",pod=\"db-1\"} 1") !=
        std::string::npos);
  CHECK(Find(metrics, "dpcm_domain_dc_info",
             {{"namespace", "ns"}, {"domain", "db"}, {"pod", "db-0"}}));
  metrics.ForgetDomain("ns", "db");
  CHECK_FALSE(Find(metrics, "dpcm_domain_dc_info",
                   {{"namespace", "ns"}, {"domain", "db"}, {"pod", "db-0"}}));
}

TEST_CASE("Metrics RegisterController creates every reconcile result at zero") {
  Metrics metrics;
  metrics.RegisterController("pd");
  for (const char* result : {"success", "error", "requeue", "requeue_after"}) {
    CAPTURE(result);
    const auto sample = Find(metrics, "controller_runtime_reconcile_total",
                             {{"controller", "pd"}, {"result", result}});
    REQUIRE(sample);
    CHECK(sample->counter.value == 0);
  }
  CHECK(Find(metrics, "controller_runtime_reconcile_errors_total", {{"controller", "pd"}}));
  CHECK(Find(metrics, "controller_runtime_reconcile_time_seconds", {{"controller", "pd"}}));
}

TEST_CASE("Metrics counts REST requests by code, method and host") {
  Metrics metrics;
  const auto observe = metrics.RestClientRequestObserver("api:6443");
  observe("GET", 200);
  observe("GET", 200);
  observe("PUT", 409);
  observe("PATCH", 0);  // no answer
  const auto count = [&](const char* code, const char* method) {
    const auto sample = Find(metrics, "rest_client_requests_total",
                             {{"code", code}, {"method", method}, {"host", "api:6443"}});
    return sample ? sample->counter.value : -1;
  };
  CHECK(count("200", "GET") == 2);
  CHECK(count("409", "PUT") == 1);
  CHECK(count("<error>", "PATCH") == 1);
}

TEST_CASE("Metrics reads the process metrics from /proc/self at each scrape") {
  Metrics metrics;
  const auto rss = Find(metrics, "process_resident_memory_bytes", {});
  REQUIRE(rss);
  CHECK(rss->gauge.value > 1024 * 1024);
  const auto start = Find(metrics, "process_start_time_seconds", {});
  REQUIRE(start);
  const double now = static_cast<double>(std::time(nullptr));
  CHECK(start->gauge.value <= now + 1);
  CHECK(start->gauge.value > now - 24 * 3600);
  const auto cpu = Find(metrics, "process_cpu_seconds_total", {});
  REQUIRE(cpu);
  CHECK(cpu->counter.value >= 0);
  const auto fds = Find(metrics, "process_open_fds", {});
  REQUIRE(fds);
  const double before = fds->gauge.value;
  CHECK(before >= 3);
  const int extra = ::open("/dev/null", O_RDONLY);
  REQUIRE(extra >= 0);
  CHECK(Find(metrics, "process_open_fds", {})->gauge.value == before + 1);
  ::close(extra);
}

TEST_CASE("NewWorkQueueObserver feeds the workqueue families under the queue's name") {
  Metrics metrics;
  FakeClock clock;
  workqueue::WorkQueueOptions options;
  options.name = "pd";
  options.clock = &clock;
  options.observer = NewWorkQueueObserver(metrics, "pd");
  workqueue::WorkQueue queue(std::move(options));
  const std::map<std::string, std::string> pd{{"name", "pd"}};
  CHECK(Find(metrics, "workqueue_adds_total", pd)->counter.value == 0);  // created at zero

  queue.Add("ns/a");
  queue.Add("ns/a");
  queue.Add("ns/b");
  CHECK(Find(metrics, "workqueue_adds_total", pd)->counter.value == 2);
  CHECK(Find(metrics, "workqueue_depth", pd)->gauge.value == 2);
  clock.Advance(250ms);
  REQUIRE(queue.Get() == "ns/a");
  CHECK(Find(metrics, "workqueue_depth", pd)->gauge.value == 1);
  const auto waited = Find(metrics, "workqueue_queue_duration_seconds", pd);
  CHECK(waited->histogram.sample_count == 1);
  CHECK(waited->histogram.sample_sum == doctest::Approx(0.25));
  clock.Advance(2s);
  queue.Done("ns/a");
  const auto worked = Find(metrics, "workqueue_work_duration_seconds", pd);
  CHECK(worked->histogram.sample_count == 1);
  CHECK(worked->histogram.sample_sum == doctest::Approx(2.0));
  queue.AddRateLimited("ns/a");
  CHECK(Find(metrics, "workqueue_retries_total", pd)->counter.value == 1);
}

TEST_CASE("MetricsServer serves /metrics on an ephemeral port and stops") {
  Metrics metrics;
  PopulateEverything(metrics);
  std::atomic<int> scrapes{0};
  auto server = MetricsServer::Start("127.0.0.1:0", metrics, [&scrapes] { ++scrapes; });
  REQUIRE(server.ok());
  const int port = (*server)->port();
  CHECK(port > 0);

  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  client.set_read_timeout(5);
  const auto response = client.Get("/metrics");
  REQUIRE(response);
  CHECK(response->status == 200);
  CHECK(scrapes == 1);  // told before the answer went out
  CHECK(response->body.find("controller_runtime_reconcile_total{") != std::string::npos);
  CHECK(response->body.find("process_resident_memory_bytes ") != std::string::npos);
  if (const auto checked = PromtoolCheckMetrics(response->body)) {
    CHECK(checked->exit_code == 0);
    CHECK(checked->output == "");
  }

  SUBCASE("a second server cannot take the same port") {
    const auto taken = MetricsServer::Start("127.0.0.1:" + std::to_string(port), metrics);
    CHECK(taken.status().IsTransport());
  }
  SUBCASE("a client that keeps its connection open does not hold up Stop") {
    httplib::Client keeper("127.0.0.1", port);
    keeper.set_keep_alive(true);
    REQUIRE(keeper.Get("/metrics"));
    const auto before = std::chrono::steady_clock::now();
    (*server)->Stop();
    CHECK(std::chrono::steady_clock::now() - before < 1s);
  }
  SUBCASE("stopped, it answers no more") {
    (*server)->Stop();
    (*server)->Stop();
    CHECK((*server)->port() == port);
    httplib::Client after("127.0.0.1", port);
    after.set_connection_timeout(1);
    CHECK_FALSE(after.Get("/metrics"));
  }
}

TEST_CASE("MetricsServer rejects a malformed bind address") {
  Metrics metrics;
  for (const char* address : {"8080", "127.0.0.1:", "127.0.0.1:http", ":70000", ":-1", ""}) {
    CAPTURE(address);
    const auto server = MetricsServer::Start(address, metrics);
    CHECK(server.status().code() == StatusCode::kConfig);
  }
}

}  // namespace
}  // namespace dpcm::metrics
