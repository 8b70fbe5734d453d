// Failover benchmark: dpcm vs client-go leader election, kill to new active as seen by a watch.
//
// dpcm: a 3-replica ProcessDomain; each trial SIGKILLs the DC's process (or deletes the
// DC pod) and times until an independent pod watch sees another pod labeled DC.
// dpcm with the agent: a 2-replica domain whose members run dpcm-agent; each trial SIGKILLs
// the DC's application and times the failover as above, and the new DC's application
// learning its role: the new DC label seen by the watch -> the answer to the long-poll
// GET /role?after=V&wait=30s that the application had waiting on its agent.
// Peer: three candidates of client-go's leader-election example (15/10/2 s); each trial
// SIGKILLs the leader and times until a Lease watch sees another holder.
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/watch/watcher.h"
#include "tests/support/dc_watcher.h"
#include "tests/support/operator_env.h"
#include "tests/support/process.h"
#include "tests/support/role_api.h"
#include "tests/support/testenv.h"

namespace dpcm::bench {
namespace {

using namespace std::chrono_literals;
using client::Json;
using Millis = std::chrono::duration<double, std::milli>;
using testing::DcWatcher;
using testing::OperatorEnv;
using testing::TestEnv;

struct Options {
  int trials = 20;
  int peer_trials = 5;
  std::string peer_binary;
};

struct Summary {
  std::string name;
  std::vector<double> samples_ms;
  double Quantile(double q) const {
    if (samples_ms.empty()) return NAN;
    std::vector<double> sorted = samples_ms;
    std::sort(sorted.begin(), sorted.end());
    const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
  }
};

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "bench: " << message << "\n";
  std::exit(1);
}

bool AllReady(client::ApiClient& api, const std::string& ns, const std::string& domain,
              int replicas) {
  auto d = api.Get(client::resources::ProcessDomains(), ns, domain);
  return d.ok() &&
         d->value("/status/ready"_json_pointer, "") ==
             std::to_string(replicas) + "/" + std::to_string(replicas) &&
         d->value("/status/phase"_json_pointer, "") == "Running";
}

void WaitAllReady(client::ApiClient& api, const std::string& ns, const std::string& domain,
                  int replicas) {
  const auto deadline = std::chrono::steady_clock::now() + 90s;
  while (!AllReady(api, ns, domain, replicas)) {
    if (std::chrono::steady_clock::now() > deadline) Fail("domain never got all members ready");
    std::this_thread::sleep_for(50ms);
  }
}

// Before a trial: every member ready, the previous trial's writes settled; the DC to hit.
std::string SettledDc(client::ApiClient& api, DcWatcher& watcher, const std::string& ns,
                      const std::string& domain, int replicas) {
  WaitAllReady(api, ns, domain, replicas);
  std::this_thread::sleep_for(300ms);
  std::string dc = watcher.CurrentDc(domain);
  if (dc.empty()) Fail("no DC before trial");
  return dc;
}

// The health-failure domain: health decided by the http plugin alone (period 1 s,
// failureThreshold 3: target 3.5 s), failed members restarted.
constexpr int kHealthPeriodSeconds = 1;
constexpr int kHealthFailureThreshold = 3;
client::Json HealthDomain(const std::string& name) {
  client::Json domain = OperatorEnv::SampleDomain(name, 3);
  domain["spec"]["template"]["spec"]["containers"][0].erase("readinessProbe");
  domain["spec"]["health"] = {{"periodSeconds", kHealthPeriodSeconds},
                              {"failureThreshold", kHealthFailureThreshold},
                              {"http", {{"port", 8080}, {"path", "/healthz"}}}};
  return domain;
}

// kind: "kill" (SIGKILL the DC's process), "delete" (delete the DC pod) or "health" (the
// DC's app starts failing its health endpoint).
Summary RunDpcm(OperatorEnv& env, DcWatcher& watcher, const std::string& ns,
                const std::string& domain, const std::string& kind, int trials) {
  const std::string what = kind == "kill"     ? "process SIGKILLed"
                           : kind == "delete" ? "pod deleted"
                                              : "health check failing (1 s x 3)";
  Summary summary{"dpcm, DC " + what, {}};
  auto& api = env.api();
  for (int i = 0; i < trials; ++i) {
    const std::string dc = SettledDc(api, watcher, ns, domain, 3);
    const auto start = DcWatcher::WallClock::now();
    const Status acted = kind == "kill"     ? env.KillPodProcess(ns, dc)
                         : kind == "delete" ? api.Delete(client::resources::Pods(), ns, dc).status()
                                            : env.PostToApp(ns, dc, "/admin/unhealthy");
    if (!acted.ok()) Fail(acted.ToString());
    auto change = watcher.WaitForNewDc(domain, dc, 60s);
    if (!change) Fail("no failover within 60 s in trial " + std::to_string(i));
    summary.samples_ms.push_back(Millis(change->seen - start).count());
    std::fprintf(stderr, "  %s trial %2d: %s -> %s in %.1f ms\n", kind.c_str(), i + 1, dc.c_str(),
                 change->dc.c_str(), summary.samples_ms.back());
  }
  return summary;
}

// The agent domain: two members, each with dpcm-agent beside the sample app.
client::Json AgentDomain(const std::string& name) {
  client::Json domain = OperatorEnv::SampleDomain(name, 2);
  domain["spec"]["agent"] = {{"enabled", true}};
  return domain;
}

struct AgentRows {
  Summary failover;
  Summary role_api;
};

// Kills the DC's application `trials` times; see the file comment.
AgentRows RunAgent(OperatorEnv& env, DcWatcher& watcher, const std::string& ns,
                   const std::string& domain, int trials) {
  AgentRows rows{{"dpcm with dpcm-agent, DC process SIGKILLed", {}},
                 {"  new DC label -> its app's GET /role long-poll answered", {}}};
  auto& api = env.api();
  for (int i = 0; i < trials; ++i) {
    const std::string dc = SettledDc(api, watcher, ns, domain, 2);
    const std::string pc = dc == domain + "-0" ? domain + "-1" : domain + "-0";
    auto pod = api.Get(client::resources::Pods(), ns, pc);
    if (!pod.ok()) Fail(pod.status().ToString());
    const std::string pc_ip = pod->value("/status/podIP"_json_pointer, "");
    // The PC's application asks its agent for the next role change.
    Json before;
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (!(before = testing::RoleApiGet(pc_ip, "/role")).is_object() ||
           before.value("role", "") != "pc") {
      if (std::chrono::steady_clock::now() > deadline) {
        Fail(pc + "'s agent never said pc: GET /role on " + pc_ip + " answered " + before.dump());
      }
      std::this_thread::sleep_for(50ms);
    }
    auto long_poll = std::async(std::launch::async, [&] {
      Json role = testing::RoleApiGet(
          pc_ip, "/role?after=" + std::to_string(before.value("version", 0)) + "&wait=30s", 30);
      return std::make_pair(std::move(role), DcWatcher::WallClock::now());
    });
    const auto start = DcWatcher::WallClock::now();
    if (Status killed = env.KillPodProcess(ns, dc); !killed.ok()) Fail(killed.ToString());
    auto change = watcher.WaitForNewDc(domain, dc, 60s);
    if (!change) Fail("no failover within 60 s in agent trial " + std::to_string(i));
    rows.failover.samples_ms.push_back(Millis(change->seen - start).count());
    const auto [role, answered] = long_poll.get();
    if (!role.is_object() || role.value("role", "") != "dc" || change->dc != pc) {
      Fail("agent trial " + std::to_string(i) + ": " + pc + "'s long-poll answered " + role.dump() +
           ", new DC " + change->dc);
    }
    rows.role_api.samples_ms.push_back(Millis(answered - change->seen).count());
    std::fprintf(stderr, "  agent trial %2d: %s -> %s in %.1f ms, its GET /role %.1f ms later\n",
                 i + 1, dc.c_str(), change->dc.c_str(), rows.failover.samples_ms.back(),
                 rows.role_api.samples_ms.back());
  }
  return rows;
}

// Watches one Lease and reports holder changes.
class LeaseHolderWatch {
 public:
  LeaseHolderWatch(client::ApiClient& api, const std::string& ns, const std::string& name)
      : watcher_(api, client::resources::Leases(), ns,
                 [&] {
                   watch::WatcherOptions o;
                   o.selectors.field_selector = "metadata.name=" + name;
                   return o;
                 }()),
        thread_([this](const std::stop_token& stop) {
          watcher_.Run(stop, [this](watch::WatcherEvent&& e) {
            if (e.object.is_null()) return;
            std::lock_guard lock(mutex_);
            const std::string holder = e.object.value("/spec/holderIdentity"_json_pointer, "");
            if (holder != holder_) {
              holder_ = holder;
              changed_at_ = DcWatcher::WallClock::now();
            }
            changed_.notify_all();
          });
        }) {}
  std::string Holder() {
    std::lock_guard lock(mutex_);
    return holder_;
  }
  std::optional<DcWatcher::WallClock::time_point> WaitForOther(const std::string& previous,
                                                               std::chrono::seconds timeout) {
    std::unique_lock lock(mutex_);
    if (!changed_.wait_for(lock, timeout,
                           [&] { return !holder_.empty() && holder_ != previous; })) {
      return std::nullopt;
    }
    return changed_at_;
  }

 private:
  watch::Watcher watcher_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::string holder_;
  DcWatcher::WallClock::time_point changed_at_;
  std::jthread thread_;
};

Summary RunPeer(OperatorEnv& env, const std::string& ns, const Options& options) {
  Summary summary{"client-go leader election (15/10/2 s), leader SIGKILLed", {}};
  LeaseHolderWatch lease(env.api(), ns, "peer");
  std::map<std::string, std::unique_ptr<testing::ManagedProcess>> candidates;
  auto start_candidate = [&](const std::string& id) {
    auto started = testing::ManagedProcess::Start(
        {options.peer_binary, "--kubeconfig", TestEnv::Kubeconfig(), "--id", id,
         "--lease-lock-name", "peer", "--lease-lock-namespace", ns},
        env.log_dir() + "/peer-" + id + ".log", {});
    if (!started.ok()) Fail(started.status().ToString());
    candidates[id] = std::move(*started);
  };
  for (const char* id : {"candidate-a", "candidate-b", "candidate-c"}) start_candidate(id);
  if (!lease.WaitForOther("", 60s)) Fail("the peer elected no leader");
  for (int i = 0; i < options.peer_trials; ++i) {
    std::this_thread::sleep_for(3s);  // a few renewals, as in steady state
    const std::string leader = lease.Holder();
    const auto start = DcWatcher::WallClock::now();
    candidates.at(leader)->Kill();
    auto changed = lease.WaitForOther(leader, 90s);
    if (!changed) Fail("the peer did not fail over within 90 s");
    summary.samples_ms.push_back(Millis(*changed - start).count());
    std::fprintf(stderr, "  peer trial %2d: %s -> %s in %.1f ms\n", i + 1, leader.c_str(),
                 lease.Holder().c_str(), summary.samples_ms.back());
    start_candidate(leader);  // back to three candidates
  }
  return summary;
}

void PrintTable(const std::vector<Summary>& rows) {
  std::printf("\n%-58s %4s %10s %10s %10s %10s\n", "failover: kill -> new active seen by a watch",
              "n", "p50 ms", "p90 ms", "p99 ms", "max ms");
  for (const auto& row : rows) {
    std::printf("%-58s %4zu %10.1f %10.1f %10.1f %10.1f\n", row.name.c_str(), row.samples_ms.size(),
                row.Quantile(0.5), row.Quantile(0.9), row.Quantile(0.99), row.Quantile(1.0));
  }
}

int Main(int argc, char** argv) {
  Options options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--trials") {
      options.trials = std::stoi(value);
    } else if (flag == "--peer-trials") {
      options.peer_trials = std::stoi(value);
    } else if (flag == "--peer-binary") {
      options.peer_binary = value;
    } else {
      Fail("unknown flag " + flag + " (--trials N --peer-trials N --peer-binary PATH)");
    }
  }
  OperatorEnv& env = OperatorEnv::Get();
  auto watch_client = TestEnv::Client();
  const std::string ns = TestEnv::CreateNamespace(env.api(), "bench");
  DcWatcher watcher(*watch_client, ns);
  auto created = env.api().Create(client::resources::ProcessDomains(), ns,
                                  OperatorEnv::SampleDomain("bench", 3));
  if (!created.ok()) Fail(created.status().ToString());
  if (!watcher.WaitForNewDc("bench", "", 60s)) Fail("no DC elected");

  std::vector<Summary> rows;
  rows.push_back(RunDpcm(env, watcher, ns, "bench", "kill", options.trials));
  rows.push_back(RunDpcm(env, watcher, ns, "bench", "delete", options.trials));
  env.api().Delete(client::resources::ProcessDomains(), ns, "bench");
  created = env.api().Create(client::resources::ProcessDomains(), ns, HealthDomain("bench-health"));
  if (!created.ok()) Fail(created.status().ToString());
  if (!watcher.WaitForNewDc("bench-health", "", 60s)) Fail("no DC elected");
  rows.push_back(RunDpcm(env, watcher, ns, "bench-health", "health", std::min(options.trials, 10)));
  env.api().Delete(client::resources::ProcessDomains(), ns, "bench-health");
  created = env.api().Create(client::resources::ProcessDomains(), ns, AgentDomain("bench-agent"));
  if (!created.ok()) Fail(created.status().ToString());
  if (!watcher.WaitForNewDc("bench-agent", "", 60s)) Fail("no DC elected");
  AgentRows agent = RunAgent(env, watcher, ns, "bench-agent", options.trials);
  rows.push_back(std::move(agent.failover));
  rows.push_back(std::move(agent.role_api));
  env.api().Delete(client::resources::ProcessDomains(), ns, "bench-agent");
  const size_t peer_row = rows.size();
  if (!options.peer_binary.empty() && options.peer_trials > 0) {
    rows.push_back(RunPeer(env, ns, options));
  }
  PrintTable(rows);
  if (rows.size() > peer_row) {
    std::printf("\npeer p50 / dpcm p50 (process kill): %.0fx; peer p99 / dpcm p99: %.0fx\n",
                rows[peer_row].Quantile(0.5) / rows[0].Quantile(0.5),
                rows[peer_row].Quantile(0.99) / rows[0].Quantile(0.99));
  }
  std::printf(
      "targets: confirmed death (kill, delete) p50 <= 50 ms, p99 <= 150 ms; health failure <= %d "
      "ms; the app learns "
      "its role through GET /role <= 100 ms after the label\n",
      kHealthFailureThreshold * kHealthPeriodSeconds * 1000 + 500);
  const auto violations = watcher.Violations();
  for (const auto& v : violations) std::printf("SAFETY VIOLATION: %s\n", v.c_str());
  std::printf("independent watcher: %d pod events, %zu safety violations\n", watcher.events(),
              violations.size());
  return violations.empty() ? 0 : 1;
}

}  // namespace
}  // namespace dpcm::bench

int main(int argc, char** argv) { return dpcm::bench::Main(argc, argv); }
