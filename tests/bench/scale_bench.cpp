// Scale benchmark: D domains x R sleeping pods beside B unrelated pods; convergence, traffic,
// memory, failover.
//
// Each pass (one per --kube-api-qps value) starts its own pod simulator, operator and Go
// informer (client-go's workqueue example watching every pod, the memory anchor) and:
//   1. idle: no domains, no unrelated pods;           memory point "idle"
//   2. one domain: 20 DC kills, timed by the independent watch ("failover idle");
//   3. B unrelated pods (another namespace the simulator is not told about: they are
//      never run; each gets a Running status like a real pod's);  memory "unrelated"
//   4. the other D-1 domains: time until all D have exactly one DC, operator requests in
//      that time against the QPS limit; then until the operator sent nothing for 10 s
//      (status updates and Events after the labels);  memory "converged". Meanwhile,
//      up to 20 DC kills in the first domains once each has its DC and all members ready
//      ("failover while the others converge": the operator's rate limit in full use);
//   5. a steady window: requests per domain per minute (the operator's own counter by
//      method, the API server's by verb and resource), the work queue, stale Leases;
//                                                     memory "steady"
//   6. 20 DC kills in 20 different domains, all D present ("failover under load"); for
//      each kill also the operator's own part, failure seen -> labeled (status.lastFailover),
//      and kill -> the exit seen by the independent watch (every failover row has both);
//   7. the unrelated pods deleted;                    memory "unrelated deleted"
// then tears its world down, namespaces included. A table per pass, then one summary of all
// passes. Memory points wait for the operator to return a /metrics scrape's pages.
#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pkg/client/api_client.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/process.h"
#include "tests/support/testenv.h"

namespace dpcm::bench {
namespace {

using namespace std::chrono_literals;
using client::Json;
using Clock = std::chrono::steady_clock;
using Millis = std::chrono::duration<double, std::milli>;
using Seconds = std::chrono::duration<double>;
using testing::DcWatcher;
using testing::ManagedProcess;
using testing::TestEnv;

struct Options {
  int domains = 1000;
  int replicas = 3;
  int unrelated = 5000;
  std::vector<double> qps = {20, 200};  // one pass each
  int steady_seconds = 600;
  int trials = 20;
  int failover_timeout_seconds = 30;
  int converge_timeout_seconds = 3600;
  int threads = 4;  // the bench's own creators and deleters
  std::string ip_base = "127.20.0.0";
  std::string go_informer;  // client-go's workqueue example; empty: no anchor
};

// Ends the current pass (its figures so far are still printed, its processes stopped).
[[noreturn]] void Fail(const std::string& message) { throw std::runtime_error(message); }

void Progress(const char* format, auto... args) {
  char line[512];
  std::snprintf(line, sizeof line, format, args...);  // NOLINT(cppcoreguidelines-pro-type-vararg)
  std::fprintf(stderr, "  %s\n", line);               // one write: two threads may report at once
}

// --- quantiles ---------------------------------------------------------------------

// The q-quantile of `values` plus `infinite` values that are +inf (nearest rank).
double Quantile(std::vector<double> values, int infinite, double q) {
  const size_t n = values.size() + static_cast<size_t>(infinite);
  if (n == 0) return NAN;
  std::sort(values.begin(), values.end());
  values.resize(n, INFINITY);
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(n)));
  return values[std::clamp<size_t>(rank, 1, n) - 1];
}

struct Samples {
  std::vector<double> ms;  // successful trials
  int timeouts = 0;        // trials with no new DC within the timeout
  int skipped = 0;         // the domain had no DC to kill
  // The operator's own part of each successful trial whose status.lastFailover was read:
  // from the failure first seen to the new DC labeled (the flight recorder's "labeled").
  std::vector<double> operator_ms;
  // Kill -> the DC's exit (its pod no longer Ready) seen by the independent watch: the way
  // from the kill to any watcher (the simulated kubelet, the API server's watch delivery).
  std::vector<double> exit_seen_ms;
  // Timeouts count as +inf: a p99 over them is "timeout".
  double Quantile(double q) const { return bench::Quantile(ms, timeouts, q); }
};

std::string Ms(double v) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return "timeout";
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f", v);
  return buffer;
}

// --- Prometheus text ---------------------------------------------------------------

struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
using Scrape = std::vector<MetricSample>;

Scrape ParseMetrics(const std::string& text) {
  Scrape out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    MetricSample s;
    size_t i = line.find_first_of("{ ");
    if (i == std::string::npos) continue;
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string::npos || eq + 1 >= line.size() || line[eq + 1] != '"') break;
        std::string key = line.substr(i, eq - i);
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) ++j;
          value.push_back(line[j]);
        }
        s.labels[std::move(key)] = std::move(value);
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      i = line.find(' ', i);
      if (i == std::string::npos) continue;
    }
    try {
      s.value = std::stod(line.substr(i + 1));
    } catch (const std::exception&) {
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

// Sums `name` over the samples whose labels match `where`, grouped by the values of `by`
// (joined with " ").
std::map<std::string, double> Group(const Scrape& scrape, const std::string& name,
                                    const std::vector<std::string>& by,
                                    const std::map<std::string, std::string>& where = {}) {
  std::map<std::string, double> out;
  for (const auto& s : scrape) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : where) {
      const auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (!match) continue;
    std::string key;
    for (const auto& label : by) {
      const auto it = s.labels.find(label);
      std::string value = it == s.labels.end() ? "" : it->second;
      key += (key.empty() ? "" : " ") + (value.empty() ? "-" : value);
    }
    out[key] += s.value;
  }
  return out;
}

double Total(const Scrape& scrape, const std::string& name,
             const std::map<std::string, std::string>& where = {}) {
  double sum = 0;
  for (const auto& [_, v] : Group(scrape, name, {}, where)) sum += v;
  return sum;
}

std::map<std::string, double> Delta(const std::map<std::string, double>& before,
                                    const std::map<std::string, double>& after) {
  std::map<std::string, double> out;
  for (const auto& [k, v] : after) {
    const auto it = before.find(k);
    const double d = v - (it == before.end() ? 0 : it->second);
    if (d > 0) out[k] = d;
  }
  return out;
}

std::string ScrapeHttp(int port) {
  httplib::Client metrics("127.0.0.1", port);
  metrics.set_connection_timeout(2);
  metrics.set_read_timeout(10);
  auto response = metrics.Get("/metrics");
  return response && response->status == 200 ? response->body : "";
}

Scrape ScrapeApiServer() {
  auto text = TestEnv::Kubectl({"get", "--raw", "/metrics"});
  if (!text.ok()) Fail("API server /metrics: " + text.status().ToString());
  Scrape all = ParseMetrics(*text);
  Scrape out;
  for (auto& s : all) {
    if (s.name == "apiserver_request_total") out.push_back(std::move(s));
  }
  return out;
}

// --- processes ----------------------------------------------------------------------

struct ProcStat {
  double rss_mib = NAN;
  double anon_mib = NAN;
  double file_mib = NAN;
  int threads = 0;
};

ProcStat ReadProc(pid_t pid) {
  ProcStat out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string key;
    double value = 0;
    fields >> key >> value;
    if (key == "VmRSS:") out.rss_mib = value / 1024;
    if (key == "RssAnon:") out.anon_mib = value / 1024;
    if (key == "RssFile:") out.file_mib = value / 1024;
    if (key == "Threads:") out.threads = static_cast<int>(value);
  }
  return out;
}

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof address;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    Fail("no free port");
  }
  close(fd);
  return ntohs(address.sin_port);
}

std::unique_ptr<ManagedProcess> Start(const std::vector<std::string>& argv, const std::string& log,
                                      const std::vector<std::string>& env = {}) {
  auto started = ManagedProcess::Start(argv, log, env);
  if (!started.ok()) Fail(argv[0] + ": " + started.status().ToString());
  return std::move(*started);
}

// Extra environment for the operator only, from DPCM_SCALE_OPERATOR_ENV ("NAME=value ...",
// split at spaces): to profile it, e.g. with heaptrack's preload library and
// DUMP_HEAPTRACK_OUTPUT, or to try allocator settings, without touching the other processes.
std::vector<std::string> OperatorEnv() {
  std::vector<std::string> env;
  const char* text = std::getenv("DPCM_SCALE_OPERATOR_ENV");
  std::istringstream words(text != nullptr ? text : "");
  for (std::string word; words >> word;) env.push_back(word);
  return env;
}

// --- objects -------------------------------------------------------------------------

std::string Name(const char* prefix, int i) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%s-%05d", prefix, i);
  return buffer;
}

// A managed domain of `replicas` pods that only sleep; no probes, no health plugin, no
// Service: the cheapest domain there is.
Json SleepDomain(const std::string& name, int replicas) {
  return {{"apiVersion", "dpcm.io/v1alpha1"},
          {"kind", "ProcessDomain"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", replicas},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec",
               {{"containers", Json::array({{{"name", "app"},
                                             {"image", "debian:bookworm-slim"},
                                             {"command", Json::array({"/bin/sleep"})},
                                             {"args", Json::array({"infinity"})}}})}}}}}}}};
}

// An unrelated pod shaped like a Deployment's: labels, an owner, resources, env, a probe.
Json UnrelatedPod(const std::string& name, int i) {
  const std::string app = "web-" + std::to_string(i % 50);
  return {
      {"apiVersion", "v1"},
      {"kind", "Pod"},
      {"metadata",
       {{"name", name},
        {"labels", {{"app", app}, {"pod-template-hash", "7d4b9c8f6"}, {"tier", "frontend"}}}}},
      {"spec",
       {{"containers",
         Json::array(
             {{{"name", "web"},
               {"image", "registry.example/" + app + ":1.4.2"},
               {"command", Json::array({"/bin/sleep", "infinity"})},
               {"ports", Json::array({{{"name", "http"}, {"containerPort", 8080}}})},
               {"env", Json::array({{{"name", "APP"}, {"value", app}},
                                    {{"name", "LOG_LEVEL"}, {"value", "info"}},
                                    {{"name", "LISTEN"}, {"value", ":8080"}}})},
               {"resources",
                {{"requests", {{"cpu", "100m"}, {"memory", "128Mi"}}},
                 {"limits", {{"cpu", "500m"}, {"memory", "256Mi"}}}}},
               {"readinessProbe",
                {{"httpGet", {{"path", "/healthz"}, {"port", 8080}}}, {"periodSeconds", 10}}}}})},
        {"restartPolicy", "Always"}}}};
}

Json RunningStatus(int i) {
  const std::string now = "2026-01-01T00:00:00Z";
  const std::string ip = "10.244." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1);
  Json conditions = Json::array();
  for (const char* type : {"Initialized", "Ready", "ContainersReady", "PodScheduled"}) {
    conditions.push_back({{"type", type}, {"status", "True"}, {"lastTransitionTime", now}});
  }
  return {{"status",
           {{"phase", "Running"},
            {"hostIP", "10.0.0.1"},
            {"podIP", ip},
            {"podIPs", Json::array({{{"ip", ip}}})},
            {"startTime", now},
            {"conditions", conditions},
            {"containerStatuses",
             Json::array({{{"name", "web"},
                           {"ready", true},
                           {"restartCount", 0},
                           {"image", "registry.example/web:1.4.2"},
                           {"imageID", "registry.example/web@sha256:0123456789abcdef"},
                           {"containerID", "containerd://" + std::to_string(1000000 + i)},
                           {"started", true},
                           {"state", {{"running", {{"startedAt", now}}}}}}})}}}};
}

// Runs body(i) for i in [0, n) on `threads` threads, each with its own client; the
// first failure stops the others and is rethrown.
void Parallel(int n, int threads, const std::function<void(client::ApiClient&, int)>& body) {
  std::atomic<int> next{0};
  std::mutex mutex;
  std::string error;
  {
    std::vector<std::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&] {
        try {
          auto api = TestEnv::Client("kubeconfig", {.qps = 0, .burst = 1});
          for (int i; (i = next.fetch_add(1)) < n;) body(*api, i);
        } catch (const std::exception& e) {
          next = n;
          std::lock_guard lock(mutex);
          if (error.empty()) error = e.what();
        }
      });
    }
  }
  if (!error.empty()) Fail(error);
}

// Deletes the pods named name(i), i in [0, n), at once (grace period 0).
void DeletePods(const std::string& ns, int n, int threads,
                const std::function<std::string(int)>& name) {
  Parallel(n, threads, [&](client::ApiClient& api, int i) {
    client::DeleteOptions now;
    now.grace_period_seconds = 0;
    auto deleted = api.Delete(client::resources::Pods(), ns, name(i), now);
    if (!deleted.ok() && !deleted.status().IsNotFound()) {
      Fail("delete pod " + name(i) + ": " + deleted.status().ToString());
    }
  });
}

void DeleteCollection(client::ApiClient& api, const client::ResourceRef& ref,
                      const std::string& ns) {
  client::DeleteOptions now;
  now.grace_period_seconds = 0;
  auto deleted = api.Delete(ref, ns, "", now);
  if (!deleted.ok() && !deleted.status().IsNotFound()) {
    Progress("delete collection in %s: %s", ns.c_str(), deleted.status().ToString().c_str());
  }
}

bool Empty(client::ApiClient& api, const client::ResourceRef& ref, const std::string& ns) {
  client::ListOptions one;
  one.limit = 1;
  auto list = api.List(ref, ns, one);
  return list.ok() && (*list)["items"].empty();
}

// RFC 3339 with optional fraction ("2026-12-02T07:09:03.123456Z") to wall clock.
std::optional<std::chrono::system_clock::time_point> ParseTime(const std::string& text) {
  std::tm tm{};
  std::istringstream in(text);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  if (in.fail()) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// --- one pass ----------------------------------------------------------------------------

struct MemoryPoint {
  std::string name;
  ProcStat op;
  ProcStat go;
};

struct PassResult {
  double qps = 0;
  int domains = 0;
  int converged = 0;
  double converge_seconds = NAN;
  double converge_requests = 0;
  // From convergence (one DC each) until the operator sent nothing for kQuietFor: the
  // status updates and Events that follow the DC labels.
  double settle_seconds = NAN;
  double settle_requests = 0;
  std::map<std::string, double> converge_by_method_code;
  double steady_seconds = 0;
  double steady_requests = 0;
  std::map<std::string, double> steady_by_method;
  std::map<std::string, double> steady_by_method_code;
  std::map<std::string, double> steady_reconciles;  // by result
  double steady_queue_retries = 0;
  std::map<std::string, double> steady_apiserver;  // "VERB resource/subresource"
  double steady_queue_adds = 0;
  double steady_queue_depth = 0;
  double steady_queue_seconds_avg = NAN;
  int stale_leases = 0;
  int leases = 0;
  size_t unrelated_pod_bytes = 0;  // one unrelated pod's JSON as the API serves it
  size_t domain_pod_bytes = 0;     // one domain pod's
  std::vector<MemoryPoint> memory;
  Samples idle;
  Samples busy;  // while the other domains converge
  Samples loaded;
  std::vector<std::string> violations;
  std::string error;  // why the pass stopped early, if it did
};

class Pass {
 public:
  Pass(const Options& options, double qps) : options_(options) { result_.qps = qps; }

  // Every step; a failure ends the pass early, keeping the figures so far.
  PassResult Run() {
    try {
      Steps();
    } catch (const std::exception& e) {
      result_.error = e.what();
      Progress("pass qps %g stopped early: %s", result_.qps, e.what());
    }
    try {
      Teardown();
    } catch (const std::exception& e) {
      Progress("teardown: %s", e.what());
    }
    return result_;
  }

 private:
  void Steps() {
    Setup();
    Measure("idle (no domains)");
    CreateDomains(0, 1);
    if (!watcher_->WaitForNewDc(Name("d", 0), "", 120s)) Fail("the first domain got no DC");
    result_.idle = Failovers({0}, true);
    // Apart from the unrelated pods: what one domain and its failovers leave behind (threads
    // that started, their malloc arenas, the Lease and Event caches).
    Measure("1 domain, after its failovers");
    CreateUnrelated();
    Measure("+" + std::to_string(options_.unrelated) + " unrelated pods");
    Converge();
    Settle();
    ReadBusyParts();
    Measure("converged (" + std::to_string(result_.converged) + " domains)");
    Steady();
    Measure("after " + std::to_string(options_.steady_seconds) + " s steady");
    std::vector<int> targets;
    for (int t = 0; t < options_.trials && options_.domains > 1; ++t) {
      targets.push_back(1 + static_cast<int>(static_cast<int64_t>(t) * (options_.domains - 1) /
                                             std::max(options_.trials, 1)));
    }
    result_.loaded = Failovers(targets, false);
    DeleteUnrelated();
    Measure("unrelated pods deleted");
    for (const auto& v : watcher_->Violations()) result_.violations.push_back(v);
  }

  void Setup() {
    admin_ = TestEnv::Client("kubeconfig", {.qps = 0, .burst = 1});
    RefuseLeftovers();
    ns_ = TestEnv::CreateNamespace(*admin_, "scale");
    unrelated_ns_ = TestEnv::CreateNamespace(*admin_, "unrelated");
    dir_ = TestEnv::Dir() + "/scale-bench/" + ns_;
    std::filesystem::create_directories(dir_ + "/podsim");
    Progress("pass qps %.0f: namespace %s, logs in %s", result_.qps, ns_.c_str(), dir_.c_str());
    const std::string bin = TestEnv::BinDir();
    const std::string kubeconfig = TestEnv::Kubeconfig();
    podsim_ =
        Start({bin + "/dpcm-podsim", "--kubeconfig", kubeconfig, "--state-dir", dir_ + "/podsim",
               "--node-name", "scale-" + ns_, "--namespace", ns_, "--ip-base", options_.ip_base,
               "--kube-api-qps", "1000", "--kube-api-burst", "1000", "--workers", "8"},
              dir_ + "/podsim.log", {TestEnv::PathWithBinDir()});
    metrics_port_ = FreePort();
    char qps[32];
    std::snprintf(qps, sizeof qps, "%g", result_.qps);
    operator_ = Start({bin + "/dpcm-operator", "--kubeconfig", kubeconfig, "--metrics-bind-address",
                       "127.0.0.1:" + std::to_string(metrics_port_), "--health-probe-bind-address",
                       "0", "--kube-api-qps", qps},
                      dir_ + "/operator.log", OperatorEnv());
    if (!options_.go_informer.empty()) {
      go_ = Start({options_.go_informer, "--kubeconfig", kubeconfig}, dir_ + "/go-informer.log");
    }
    watch_client_ = TestEnv::Client("kubeconfig", {.qps = 0, .burst = 1});
    // No "no DC for too long" verdicts: at the default QPS a new domain legitimately waits
    // its turn. Two DCs at once is still a violation.
    watcher_ = std::make_unique<DcWatcher>(*watch_client_, ns_, std::chrono::hours(24));
    const auto deadline = Clock::now() + 60s;
    while (ScrapeHttp(metrics_port_).empty()) {
      if (Clock::now() > deadline) Fail("the operator's /metrics never answered");
      std::this_thread::sleep_for(200ms);
    }
  }

  // A bench that was killed leaves its domains (and maybe its operator and podsim) behind;
  // this run's operator would reconcile them too and every figure would be off: refused.
  // (Its pods outlive their namespace's deletion: their node's podsim is gone, so nothing
  // confirms that they stopped.) Other tests' domains are only reported.
  void RefuseLeftovers() {
    auto domains = admin_->ListAll(client::resources::ProcessDomains(), "", {});
    client::ListOptions domain_pods;
    domain_pods.label_selector = "dpcm.io/domain";
    auto pods = admin_->ListAll(client::resources::Pods(), "", domain_pods);
    if (!domains.ok()) Fail("list ProcessDomains: " + domains.status().ToString());
    if (!pods.ok()) Fail("list pods: " + pods.status().ToString());
    std::map<std::string, int> per_namespace;
    for (const auto* list : {&*domains, &*pods}) {
      for (const auto& item : (*list)["items"]) {
        ++per_namespace[item["metadata"].value("namespace", "")];
      }
    }
    std::string ours;
    std::string others;
    for (const auto& [ns, count] : per_namespace) {
      (ns.rfind("scale-", 0) == 0 ? ours : others) += " " + ns + " (" + std::to_string(count) + ")";
    }
    if (!others.empty()) {
      Progress(
          "note: ProcessDomains or domain pods in other namespaces:%s; this run's operator "
          "reconciles them too",
          others.c_str());
    }
    if (!ours.empty()) {
      Fail(
          "ProcessDomains or domain pods of an earlier run that did not finish exist "
          "(namespace (objects):" +
          ours +
          "): stop its dpcm-operator and dpcm-podsim, delete those namespaces and force-delete "
          "their pods (kubectl delete pods -n NS --all --force --grace-period=0), or start a "
          "fresh test environment");
    }
  }

  Scrape Operator() {
    last_scrape_ = Clock::now();
    return ParseMetrics(ScrapeHttp(metrics_port_));
  }

  void FailIfOperatorExited() {
    if (!operator_->Running()) Fail("the operator exited (log: " + operator_->log_path() + ")");
  }

  // Waits until both processes' RSS stayed put for 3 s (at most 30 s) and the operator had
  // the time to return the pages of the bench's last /metrics scrape (it trims at most every
  // 30 s after the heap churned, and rendering 1,000 domains' series takes a few MiB), then
  // records it.
  void Measure(const std::string& point) {
    static constexpr auto kTrimPeriod = 30s;
    const auto trimmed = last_scrape_ + kTrimPeriod + 2s;
    if (Clock::now() < trimmed) std::this_thread::sleep_until(trimmed);
    const auto deadline = Clock::now() + 30s;
    auto stable_since = Clock::now();
    ProcStat op = ReadProc(operator_->pid());
    ProcStat go = go_ ? ReadProc(go_->pid()) : ProcStat{};
    while (Clock::now() < deadline && Clock::now() - stable_since < 3s) {
      std::this_thread::sleep_for(500ms);
      const ProcStat op2 = ReadProc(operator_->pid());
      const ProcStat go2 = go_ ? ReadProc(go_->pid()) : ProcStat{};
      if (std::abs(op2.rss_mib - op.rss_mib) > 0.05 ||
          (go_ && std::abs(go2.rss_mib - go.rss_mib) > 0.05)) {
        stable_since = Clock::now();
      }
      op = op2;
      go = go2;
    }
    result_.memory.push_back({point, op, go});
    Progress("memory %s: operator %.1f MiB (%d threads), go informer %.1f MiB", point.c_str(),
             op.rss_mib, op.threads, go.rss_mib);
  }

  void CreateDomains(int from, int to) {
    Parallel(to - from, options_.threads, [&](client::ApiClient& api, int i) {
      auto created = api.Create(client::resources::ProcessDomains(), ns_,
                                SleepDomain(Name("d", from + i), options_.replicas));
      if (!created.ok()) Fail("create domain: " + created.status().ToString());
    });
  }

  void CreateUnrelated() {
    const auto start = Clock::now();
    Parallel(options_.unrelated, options_.threads, [&](client::ApiClient& api, int i) {
      const std::string name = Name("unrelated", i);
      auto created = api.Create(client::resources::Pods(), unrelated_ns_, UnrelatedPod(name, i));
      if (!created.ok()) Fail("create pod: " + created.status().ToString());
      auto patched = api.Patch(client::resources::Pods(), unrelated_ns_, name,
                               client::PatchType::kMerge, RunningStatus(i), "status");
      if (!patched.ok()) Fail("pod status: " + patched.status().ToString());
    });
    result_.unrelated_pod_bytes = PodBytes(unrelated_ns_, Name("unrelated", 0));
    Progress("%d unrelated pods created in %.1f s", options_.unrelated,
             Seconds(Clock::now() - start).count());
  }

  size_t PodBytes(const std::string& ns, const std::string& name) {
    auto pod = admin_->Get(client::resources::Pods(), ns, name);
    return pod.ok() ? pod->dump().size() : 0;
  }

  int CountConverged() {
    int n = 0;
    for (int i = 0; i < options_.domains; ++i) {
      if (!watcher_->CurrentDc(Name("d", i)).empty()) ++n;
    }
    return n;
  }

  void Converge() {
    const Scrape before = Operator();
    const auto start = Clock::now();
    CreateDomains(1, options_.domains);
    Progress("%d domains created in %.1f s", options_.domains - 1,
             Seconds(Clock::now() - start).count());
    const auto deadline = start + std::chrono::seconds(options_.converge_timeout_seconds);
    auto next_report = start + 10s;
    std::atomic<bool> converging{true};
    std::jthread busy_trials([&] { FailoversWhileConverging(converging); });
    // Stops the trials before the thread is joined, however this function ends.
    struct StopTrials {
      std::atomic<bool>& converging;
      ~StopTrials() { converging = false; }
    } stop_trials{converging};
    int converged = CountConverged();
    while (converged < options_.domains && Clock::now() < deadline) {
      std::this_thread::sleep_for(250ms);
      FailIfOperatorExited();
      converged = CountConverged();
      if (Clock::now() >= next_report) {
        next_report += 10s;
        Progress("converging: %d/%d domains with one DC after %.0f s", converged, options_.domains,
                 Seconds(Clock::now() - start).count());
      }
    }
    const auto end = Clock::now();
    converging = false;
    busy_trials.join();
    const Scrape after = Operator();
    converged_at_ = end;
    requests_at_convergence_ = Total(after, "rest_client_requests_total");
    result_.domain_pod_bytes = PodBytes(ns_, Name("d", 0) + "-0");
    result_.domains = options_.domains;
    result_.converged = converged;
    result_.converge_seconds = Seconds(end - start).count();
    result_.converge_requests =
        Total(after, "rest_client_requests_total") - Total(before, "rest_client_requests_total");
    result_.converge_by_method_code =
        Delta(Group(before, "rest_client_requests_total", {"method", "code"}),
              Group(after, "rest_client_requests_total", {"method", "code"}));
  }

  // Waits (at most --converge-timeout) until the operator's work queue is empty and it sent
  // no request for kQuietFor, so that the steady window measures a cluster where nothing
  // changes rather than the tail of convergence.
  void Settle() {
    static constexpr auto kQuietFor = 10s;
    const auto start = converged_at_;
    const auto deadline = start + std::chrono::seconds(options_.converge_timeout_seconds);
    const double before = requests_at_convergence_;
    double last = Total(Operator(), "rest_client_requests_total");
    auto quiet_since = Clock::now();
    while (Clock::now() - quiet_since < kQuietFor) {
      if (Clock::now() > deadline) {
        Progress("not settled after %.0f s", Seconds(Clock::now() - start).count());
        return;
      }
      std::this_thread::sleep_for(500ms);
      FailIfOperatorExited();
      const Scrape now = Operator();
      const double requests = Total(now, "rest_client_requests_total");
      if (requests != last || Total(now, "workqueue_depth") > 0) quiet_since = Clock::now();
      last = requests;
    }
    result_.settle_seconds = Seconds(quiet_since - start).count();
    result_.settle_requests = last - before;
    Progress("settled %.1f s after convergence (%.0f operator requests meanwhile)",
             result_.settle_seconds, result_.settle_requests);
  }

  void Steady() {
    const Scrape op_before = Operator();
    const Scrape api_before = ScrapeApiServer();
    const auto start = Clock::now();
    const auto end = start + std::chrono::seconds(options_.steady_seconds);
    while (Clock::now() < end) {
      std::this_thread::sleep_for(std::min<Clock::duration>(60s, end - Clock::now()));
      FailIfOperatorExited();
      const ProcStat op = ReadProc(operator_->pid());
      const Scrape now = Operator();
      Progress(
          "steady %.0f s: operator %.1f MiB, %.0f requests and %.0f queue adds so far, "
          "queue depth %.0f",
          Seconds(Clock::now() - start).count(), op.rss_mib,
          Total(now, "rest_client_requests_total") - Total(op_before, "rest_client_requests_total"),
          Total(now, "workqueue_adds_total") - Total(op_before, "workqueue_adds_total"),
          Total(now, "workqueue_depth"));
    }
    const Scrape op_after = Operator();
    const Scrape api_after = ScrapeApiServer();
    result_.steady_seconds = Seconds(Clock::now() - start).count();
    result_.steady_requests = Total(op_after, "rest_client_requests_total") -
                              Total(op_before, "rest_client_requests_total");
    result_.steady_by_method = Delta(Group(op_before, "rest_client_requests_total", {"method"}),
                                     Group(op_after, "rest_client_requests_total", {"method"}));
    result_.steady_by_method_code =
        Delta(Group(op_before, "rest_client_requests_total", {"method", "code"}),
              Group(op_after, "rest_client_requests_total", {"method", "code"}));
    result_.steady_reconciles =
        Delta(Group(op_before, "controller_runtime_reconcile_total", {"result"}),
              Group(op_after, "controller_runtime_reconcile_total", {"result"}));
    result_.steady_queue_retries =
        Total(op_after, "workqueue_retries_total") - Total(op_before, "workqueue_retries_total");
    result_.steady_apiserver =
        Delta(Group(api_before, "apiserver_request_total", {"verb", "resource", "subresource"}),
              Group(api_after, "apiserver_request_total", {"verb", "resource", "subresource"}));
    result_.steady_queue_adds =
        Total(op_after, "workqueue_adds_total") - Total(op_before, "workqueue_adds_total");
    result_.steady_queue_depth = Total(op_after, "workqueue_depth");
    const double count = Total(op_after, "workqueue_queue_duration_seconds_count") -
                         Total(op_before, "workqueue_queue_duration_seconds_count");
    const double sum = Total(op_after, "workqueue_queue_duration_seconds_sum") -
                       Total(op_before, "workqueue_queue_duration_seconds_sum");
    if (count > 0) result_.steady_queue_seconds_avg = sum / count;
    CountStaleLeases();
  }

  void CountStaleLeases() {
    auto leases = admin_->ListAll(client::resources::Leases(), ns_, {});
    if (!leases.ok()) return;
    const auto now = std::chrono::system_clock::now();
    for (const auto& lease : (*leases)["items"]) {
      ++result_.leases;
      const auto renewed = ParseTime(lease.value("/spec/renewTime"_json_pointer, ""));
      const int duration = lease.value("/spec/leaseDurationSeconds"_json_pointer, 0);
      if (!renewed || *renewed + std::chrono::seconds(duration) < now) ++result_.stale_leases;
    }
  }

  bool AllReady(int domain) {
    auto d = admin_->Get(client::resources::ProcessDomains(), ns_, Name("d", domain));
    const std::string want =
        std::to_string(options_.replicas) + "/" + std::to_string(options_.replicas);
    return d.ok() && d->value("/status/ready"_json_pointer, "") == want &&
           d->value("/status/phase"_json_pointer, "") == "Running";
  }

  // SIGKILLs the DC's process in each domain of `targets` (cycling through them for
  // options_.trials trials) and times kill -> a new DC seen by the independent watch.
  Samples Failovers(const std::vector<int>& targets, bool wait_ready) {
    Samples out;
    if (targets.empty()) return out;
    for (int t = 0; t < options_.trials; ++t) {
      const int domain = targets[static_cast<size_t>(t) % targets.size()];
      if (wait_ready) {
        const auto deadline = Clock::now() + 90s;
        while (!AllReady(domain)) {
          if (Clock::now() > deadline) Fail(Name("d", domain) + " never got all members ready");
          std::this_thread::sleep_for(50ms);
        }
      }
      std::this_thread::sleep_for(300ms);  // let the previous trial's writes settle
      (void)Trial(domain, wait_ready ? "idle" : "load", t, out, true);
    }
    return out;
  }

  // While the other domains converge (the operator's rate limit in full use by their pod
  // creations, Lease and status writes): one DC kill in each of the first domains, once it
  // has its DC and every member ready. Runs beside Converge() on a thread of its own; the
  // operator's part of each is read afterwards (ReadBusyParts), as its status update waits
  // behind the other domains' then.
  void FailoversWhileConverging(const std::atomic<bool>& converging) {
    Samples& out = result_.busy;
    for (int t = 0; t < options_.trials && converging; ++t) {
      const int domain = 1 + t;
      if (domain >= options_.domains) break;
      const std::string name = Name("d", domain);
      while (converging && (watcher_->CurrentDc(name).empty() || !AllReady(domain))) {
        std::this_thread::sleep_for(100ms);
      }
      if (!converging) break;
      const std::string to = Trial(domain, "busy", t, out, false);
      if (!to.empty()) busy_moves_.emplace_back(name, to);
    }
  }

  // The operator's part of each failover FailoversWhileConverging timed.
  void ReadBusyParts() {
    for (const auto& [domain, to] : busy_moves_) {
      const double labeled = LabeledMs(domain, to);
      if (!std::isnan(labeled)) result_.busy.operator_ms.push_back(labeled);
    }
  }

  // One trial: SIGKILLs the process of `domain`'s DC and times kill -> a new DC seen by the
  // independent watch, into `out` (with the operator's part when `read_part`). Returns the
  // new DC, or "" when the domain had none to kill or none came within the timeout.
  std::string Trial(int domain, const char* label, int t, Samples& out, bool read_part) {
    const std::string name = Name("d", domain);
    const std::string dc = watcher_->CurrentDc(name);
    pid_t pid = 0;
    std::ifstream(dir_ + "/podsim/" + ns_ + "/" + dc + ".pid") >> pid;
    if (dc.empty() || pid <= 1) {
      ++out.skipped;
      Progress("%s trial %2d: %s has no DC process to kill", label, t + 1, name.c_str());
      return "";
    }
    const auto start = DcWatcher::WallClock::now();
    kill(pid, SIGKILL);
    auto change =
        watcher_->WaitForNewDc(name, dc, std::chrono::seconds(options_.failover_timeout_seconds));
    if (!change) {
      ++out.timeouts;
      Progress("%s trial %2d: %s: no new DC within %d s", label, t + 1, name.c_str(),
               options_.failover_timeout_seconds);
      return "";
    }
    out.ms.push_back(Millis(change->seen - start).count());
    if (const auto exit_seen = watcher_->DcFailureSeen(dc); exit_seen && *exit_seen >= start) {
      out.exit_seen_ms.push_back(Millis(*exit_seen - start).count());
    }
    if (!read_part) {
      Progress("%s trial %2d: %s -> %s in %.1f ms", label, t + 1, dc.c_str(), change->dc.c_str(),
               out.ms.back());
      return change->dc;
    }
    const double labeled = LabeledMs(name, change->dc);
    if (!std::isnan(labeled)) out.operator_ms.push_back(labeled);
    Progress("%s trial %2d: %s -> %s in %.1f ms (operator: failure seen -> labeled %.1f ms)", label,
             t + 1, dc.c_str(), change->dc.c_str(), out.ms.back(), labeled);
    return change->dc;
  }

  // The "labeled" phase of the domain's status.lastFailover once it records the failover to
  // `dc` (its status is written after the label), or NaN if it does not within 5 s.
  double LabeledMs(const std::string& domain, const std::string& dc) {
    const auto deadline = Clock::now() + 5s;
    while (Clock::now() < deadline) {
      auto d = admin_->Get(client::resources::ProcessDomains(), ns_, domain);
      if (d.ok()) {
        const nlohmann::json last = d->value("/status/lastFailover"_json_pointer, nlohmann::json());
        if (last.is_object() && last.value("to", "") == dc) {
          for (const auto& phase : last.value("phases", nlohmann::json::array())) {
            if (phase.value("name", "") == "labeled") return phase.value("ms", NAN);
          }
          return NAN;
        }
      }
      std::this_thread::sleep_for(50ms);
    }
    return NAN;
  }

  void DeleteUnrelated() {
    const auto start = Clock::now();
    DeletePods(unrelated_ns_, options_.unrelated, options_.threads,
               [](int i) { return Name("unrelated", i); });
    while (!Empty(*admin_, client::resources::Pods(), unrelated_ns_)) {
      if (Clock::now() > start + 300s) Fail("the unrelated pods were not gone in 300 s");
      std::this_thread::sleep_for(200ms);
    }
    Progress("%d unrelated pods deleted in %.1f s", options_.unrelated,
             Seconds(Clock::now() - start).count());
  }

  void Teardown() {
    if (operator_) operator_->Stop();
    if (go_) go_->Stop();
    watcher_.reset();
    if (podsim_) podsim_->Stop(60000);   // it stops every pod process first
    if (!admin_ || ns_.empty()) return;  // stopped before it created anything
    // The pass's Node goes with its podsim: the scheduler would otherwise bind the next
    // pass's pods to it until the node-lifecycle controller finds it silent.
    (void)admin_->Delete(client::resources::Nodes(), "", "scale-" + ns_);
    const int replicas = options_.replicas;
    DeletePods(ns_, options_.domains * replicas, options_.threads, [replicas](int i) {
      return Name("d", i / replicas) + "-" + std::to_string(i % replicas);
    });
    for (const auto& ref : {client::resources::ProcessDomains(), client::resources::Pods(),
                            client::resources::Leases(), client::resources::Events()}) {
      DeleteCollection(*admin_, ref, ns_);
    }
    if (!unrelated_ns_.empty() && !Empty(*admin_, client::resources::Pods(), unrelated_ns_)) {
      DeletePods(unrelated_ns_, options_.unrelated, options_.threads,
                 [](int i) { return Name("unrelated", i); });
    }
    const auto deadline = Clock::now() + 300s;
    while (!Empty(*admin_, client::resources::Pods(), ns_)) {
      if (Clock::now() > deadline) Fail("the domains' pods were not gone in 300 s");
      std::this_thread::sleep_for(200ms);
    }
    // The namespaces go too (their Services and whatever the steps above missed): a later
    // run must not find this one's objects.
    for (const auto& ns : {ns_, unrelated_ns_}) {
      if (!ns.empty()) (void)admin_->Delete(client::resources::Namespaces(), "", ns);
    }
  }

  const Options& options_;
  PassResult result_;
  std::unique_ptr<client::ApiClient> admin_;
  std::unique_ptr<client::ApiClient> watch_client_;
  std::string ns_;
  std::string unrelated_ns_;
  std::string dir_;
  int metrics_port_ = 0;
  Clock::time_point converged_at_;
  Clock::time_point last_scrape_;
  double requests_at_convergence_ = 0;
  // (domain, new DC) of each failover timed while the others converged.
  std::vector<std::pair<std::string, std::string>> busy_moves_;
  std::unique_ptr<ManagedProcess> podsim_;
  std::unique_ptr<ManagedProcess> operator_;
  std::unique_ptr<ManagedProcess> go_;
  std::unique_ptr<DcWatcher> watcher_;
};

// --- printing --------------------------------------------------------------------------

void PrintPass(const Options& o, const PassResult& r) {
  std::printf("\n=== --kube-api-qps %g: %d domains x %d pods, %d unrelated pods ===\n", r.qps,
              o.domains, o.replicas, o.unrelated);
  std::printf("convergence: %d/%d domains with exactly one DC in %.1f s\n", r.converged, r.domains,
              r.converge_seconds);
  std::printf("  operator requests meanwhile: %.0f = %.1f req/s (limit %g/s, burst 30)\n",
              r.converge_requests, r.converge_requests / r.converge_seconds, r.qps);
  std::printf("  by method and code:");
  for (const auto& [k, v] : r.converge_by_method_code) std::printf("  %s: %.0f", k.c_str(), v);
  std::printf("\n");
  if (std::isnan(r.settle_seconds)) {
    std::printf("settling: the operator did not go quiet after convergence\n");
  } else {
    std::printf(
        "settling: quiet %.1f s after convergence, %.0f operator requests meanwhile "
        "(%.2f per domain: status updates and Events after the DC labels)\n",
        r.settle_seconds, r.settle_requests, r.settle_requests / std::max(1, r.domains));
  }

  const double minutes = r.steady_seconds / 60;
  const double per = 1.0 / std::max(1, r.domains) / std::max(minutes, 1e-9);
  std::printf("\nsteady state (%.0f s, nothing changing): operator %.2f req/s (limit %g/s)\n",
              r.steady_seconds, r.steady_requests / r.steady_seconds, r.qps);
  std::printf("  operator requests per domain per minute, by method (rest_client_requests_total):");
  for (const auto& [k, v] : r.steady_by_method) std::printf("  %s %.3f", k.c_str(), v * per);
  std::printf(
      "\n  API server requests per domain per minute, by verb and resource "
      "(apiserver_request_total: every client; in the window the\n"
      "  operator is the only writer apart from the API server's own housekeeping of\n"
      "  endpoints, namespaces and flow control):\n");
  for (const auto& [k, v] : r.steady_apiserver) {
    std::istringstream words(k);
    std::string verb;
    std::string resource;
    words >> verb >> resource;
    if (resource == "-") continue;  // non-resource URLs (/metrics, /readyz)
    std::printf("    %-40s %8.3f   (%.0f in the window)\n", k.c_str(), v * per, v);
  }
  std::printf(
      "  work queue: %.0f adds in the window, depth %.0f at its end, mean queue time %.2f s\n",
      r.steady_queue_adds, r.steady_queue_depth, r.steady_queue_seconds_avg);
  std::printf("  work queue retries (rate-limited re-adds) in the window: %.0f\n",
              r.steady_queue_retries);
  std::printf("  operator requests in the window by method and code:");
  for (const auto& [k, v] : r.steady_by_method_code) std::printf("  %s: %.0f", k.c_str(), v);
  std::printf("\n  reconciles in the window by result:");
  for (const auto& [k, v] : r.steady_reconciles) std::printf("  %s: %.0f", k.c_str(), v);
  std::printf("\n  Leases past their duration at the end: %d of %d\n", r.stale_leases, r.leases);
  std::printf("  pod sizes as served (JSON): unrelated %zu bytes, domain member %zu bytes\n",
              r.unrelated_pod_bytes, r.domain_pod_bytes);

  std::printf("\n%-34s %9s %9s %9s %7s | %9s %9s %9s %7s\n", "memory (MiB)", "op RSS", "anon",
              "file", "threads", "go RSS", "anon", "file", "threads");
  for (const auto& m : r.memory) {
    std::printf("%-34s %9.1f %9.1f %9.1f %7d | %9.1f %9.1f %9.1f %7d\n", m.name.c_str(),
                m.op.rss_mib, m.op.anon_mib, m.op.file_mib, m.op.threads, m.go.rss_mib,
                m.go.anon_mib, m.go.file_mib, m.go.threads);
  }
  // The targets' two slopes: unrelated pods (against the point before them) and managed
  // pods (converged against +unrelated), per 1,000 pods.
  if (r.memory.size() >= 4 && o.unrelated > 0 && r.converged > 1) {
    const double managed_pods = static_cast<double>(r.converged - 1) * o.replicas;
    std::printf(
        "  operator RSS per 1,000 unrelated pods: %+.2f MiB; per 1,000 managed pods: %+.2f "
        "MiB\n",
        (r.memory[2].op.rss_mib - r.memory[1].op.rss_mib) * 1000 / o.unrelated,
        (r.memory[3].op.rss_mib - r.memory[2].op.rss_mib) * 1000 / managed_pods);
  }

  std::printf("\n%-44s %4s %4s %10s %10s %10s %10s\n",
              "failover: DC SIGKILL -> new DC seen by watch", "ok", "t/o", "p50 ms", "p90 ms",
              "p99 ms", "max ms");
  auto row = [](const std::string& name, const Samples& s) {
    std::printf("%-44s %4zu %4d %10s %10s %10s %10s\n", name.c_str(), s.ms.size(), s.timeouts,
                Ms(s.Quantile(0.5)).c_str(), Ms(s.Quantile(0.9)).c_str(),
                Ms(s.Quantile(0.99)).c_str(), Ms(s.Quantile(1.0)).c_str());
  };
  row("idle (1 domain)", r.idle);
  row("while the others converge", r.busy);
  row("under load (" + std::to_string(r.domains) + " domains)", r.loaded);
  // The rest of each trial is outside the operator: podsim seeing the exit and writing the
  // pod status, the API server, the operator's pod watch, and the label's way to the
  // independent watch.
  auto part = [](const std::string& name, const std::vector<double>& ms) {
    std::printf("%-44s %4zu %4s %10s %10s %10s %10s\n", name.c_str(), ms.size(), "",
                Ms(Quantile(ms, 0, 0.5)).c_str(), Ms(Quantile(ms, 0, 0.9)).c_str(),
                Ms(Quantile(ms, 0, 0.99)).c_str(), Ms(Quantile(ms, 0, 1.0)).c_str());
  };
  std::printf("of which the operator, failure seen -> labeled (status.lastFailover):\n");
  part("  idle", r.idle.operator_ms);
  part("  while the others converge", r.busy.operator_ms);
  part("  under load", r.loaded.operator_ms);
  // Before the operator could see anything: if this is most of a slow trial, the time went
  // to the simulated kubelet or the API server, not to the operator's watch.
  std::printf("of which before it, kill -> exit seen by the independent watch:\n");
  part("  idle", r.idle.exit_seen_ms);
  part("  while the others converge", r.busy.exit_seen_ms);
  part("  under load", r.loaded.exit_seen_ms);
  if (!r.error.empty()) std::printf("PASS STOPPED EARLY: %s\n", r.error.c_str());
  std::printf("safety: %zu violations (two DCs at once) seen by the independent watch\n",
              r.violations.size());
  for (const auto& v : r.violations) std::printf("  SAFETY VIOLATION: %s\n", v.c_str());
  std::fflush(stdout);
}

void PrintSummary(const Options& o, const std::vector<PassResult>& passes) {
  std::printf("\n=== summary: %d domains x %d pods + %d unrelated pods, steady %d s ===\n",
              o.domains, o.replicas, o.unrelated, o.steady_seconds);
  std::printf("%-6s %9s %11s %11s %12s %11s %11s %11s %11s %11s %11s\n", "qps", "converge",
              "req/s conv", "req/s stdy", "writes/d/min", "idle p50", "idle p99", "busy p50",
              "busy p99", "load p50", "load p99");
  for (const auto& r : passes) {
    double writes = 0;
    for (const auto& [method, v] : r.steady_by_method) {
      if (method != "GET" && method != "LIST" && method != "WATCH") writes += v;
    }
    std::printf("%-6g %8.1fs %11.1f %11.2f %12.3f %11s %11s %11s %11s %11s %11s\n", r.qps,
                r.converge_seconds, r.converge_requests / r.converge_seconds,
                r.steady_requests / r.steady_seconds,
                writes / std::max(1, r.domains) / std::max(r.steady_seconds / 60, 1e-9),
                Ms(r.idle.Quantile(0.5)).c_str(), Ms(r.idle.Quantile(0.99)).c_str(),
                Ms(r.busy.Quantile(0.5)).c_str(), Ms(r.busy.Quantile(0.99)).c_str(),
                Ms(r.loaded.Quantile(0.5)).c_str(), Ms(r.loaded.Quantile(0.99)).c_str());
  }
  std::printf("\n%-6s %-34s %14s %14s\n", "qps", "memory point", "operator MiB", "go informer");
  for (const auto& r : passes) {
    for (const auto& m : r.memory) {
      std::printf("%-6g %-34s %6.1f (%4.1f a) %6.1f (%4.1f a)\n", r.qps, m.name.c_str(),
                  m.op.rss_mib, m.op.anon_mib, m.go.rss_mib, m.go.anon_mib);
    }
  }
  std::printf(
      "targets: converge limited by the QPS budget; load p99 <= 2x idle p99; no writes "
      "for unchanged domains; operator <= 12 MiB idle, <= 2 MiB more per 1,000 managed "
      "pods; unrelated pods cost nothing\n");
}

int Run(int argc, char** argv) {
  Options o;
  double qps = 20;
  double raised = 200;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) Fail(flag + " needs a value");
    const std::string value = argv[i + 1];
    if (flag == "--domains") {
      o.domains = std::max(1, std::stoi(value));
    } else if (flag == "--replicas") {
      o.replicas = std::max(2, std::stoi(value));
    } else if (flag == "--unrelated") {
      o.unrelated = std::max(0, std::stoi(value));
    } else if (flag == "--qps") {
      qps = std::stod(value);
    } else if (flag == "--raised-qps") {
      raised = std::stod(value);
    } else if (flag == "--steady") {
      o.steady_seconds = std::max(1, std::stoi(value));
    } else if (flag == "--trials") {
      o.trials = std::max(1, std::stoi(value));
    } else if (flag == "--failover-timeout") {
      o.failover_timeout_seconds = std::max(1, std::stoi(value));
    } else if (flag == "--converge-timeout") {
      o.converge_timeout_seconds = std::max(1, std::stoi(value));
    } else if (flag == "--ip-base") {
      o.ip_base = value;
    } else if (flag == "--go-informer") {
      o.go_informer = value;
    } else {
      Fail("unknown flag " + flag +
           " (--domains N --replicas N --unrelated N --qps Q --raised-qps Q|0 --steady S "
           "--trials N --failover-timeout S --converge-timeout S --ip-base A --go-informer PATH)");
    }
  }
  o.qps = {qps};
  if (raised > 0 && raised != qps) o.qps.push_back(raised);
  if (Status s = TestEnv::InstallCrd(); !s.ok()) Fail(s.ToString());
  std::vector<PassResult> passes;
  for (const double q : o.qps) {
    Pass pass(o, q);
    passes.push_back(pass.Run());
    PrintPass(o, passes.back());
  }
  PrintSummary(o, passes);
  for (const auto& r : passes) {
    if (!r.violations.empty()) return 1;
  }
  return 0;
}

int Main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "bench: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace
}  // namespace dpcm::bench

int main(int argc, char** argv) { return dpcm::bench::Main(argc, argv); }
