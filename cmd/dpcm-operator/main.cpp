// dpcm-operator: wiring only — flags, configuration, caches, the domain controller, endpoints.
#include <httplib.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <iostream>
#include <set>
#include <thread>

#include "cmd/dpcm-operator/domain_metrics.h"
#include "cmd/dpcm-operator/leadership.h"
#include "cmd/dpcm-operator/options.h"
#include "pkg/cache/informer.h"
#include "pkg/client/api_client.h"
#include "pkg/clock/clock.h"
#include "pkg/controller/controller.h"
#include "pkg/domain/adoption.h"
#include "pkg/domain/member.h"
#include "pkg/domain/pod_events.h"
#include "pkg/domain/reconciler.h"
#include "pkg/domain/spec.h"
#include "pkg/events/event_recorder.h"
#include "pkg/health/monitor.h"
#include "pkg/listen/listen_address.h"
#include "pkg/logging/logging.h"
#include "pkg/memory/memory.h"
#include "pkg/metrics/metrics.h"
#include "pkg/metrics/metrics_server.h"
#include "pkg/metrics/plugin_observers.h"
#include "pkg/metrics/reconcile_observer.h"
#include "pkg/object/object.h"
#include "pkg/restconfig/rest_config.h"
#include "pkg/rolehook/runner.h"

namespace dpcm::operator_main {
namespace {

using nlohmann::json;

// malloc arenas (pkg/memory). One: idle it makes no difference (hack/bench-rss.sh, README
// "Memory"); converged at 1,000 x 3 (dpcm-bench-scale --unrelated 0 --qps 200) one arena
// held 14.8 and 14.8 MiB where two held 14.8 and 15.9, and an earlier pair of runs grew
// by 1.87 against 2.17 MiB per 1,000 pods (likely: the objects that stay share fewer pages
// with the convergence's transients). The ~30 threads mostly wait.
constexpr int kMallocArenas = 1;

// Gives memory back to the system after the heap churned. glibc keeps freed heap pages
// mapped: a cache that held 5,000 pods and dropped them still holds their pages, and a
// burst of reconciles (1,000 domains converging) or a /metrics scrape leaves free pages
// between the objects that stay, which only malloc_trim hands back. At most once every
// `period`, and only after churn, so an idle operator does no work.
class MemoryReturner {
 public:
  explicit MemoryReturner(std::chrono::seconds period)
      : thread_([this, period](const std::stop_token& stop) { Run(stop, period); }) {}

  // Notes that the heap churned (cached objects added, changed or dropped; a /metrics
  // scrape); thread-safe and cheap.
  void Changed() { changes_.fetch_add(1, std::memory_order_relaxed); }

 private:
  void Run(const std::stop_token& stop, std::chrono::seconds period) {
    uint64_t trimmed_at = 0;
    while (RealClock::Instance().SleepFor(period, stop)) {
      const uint64_t changes = changes_.load(std::memory_order_relaxed);
      if (changes == trimmed_at) continue;
      trimmed_at = changes;
      const memory::HeapStats heap = memory::ReadHeapStats();
      memory::ReturnFreeMemory();
      constexpr double kMiB = 1024.0 * 1024.0;
      spdlog::debug("heap before trimming: {:.1f} MiB in use, {:.1f} MiB free, {:.1f} MiB mapped",
                    static_cast<double>(heap.in_use) / kMiB, static_cast<double>(heap.free) / kMiB,
                    static_cast<double>(heap.mapped) / kMiB);
    }
  }

  std::atomic<uint64_t> changes_{0};
  std::jthread thread_;  // last: starts after changes_ exists
};

// Serves /healthz (the process is alive) and /readyz (caches are synced) on its own thread.
class HealthServer {
 public:
  HealthServer(std::function<bool()> ready) : ready_(std::move(ready)) {
    server_.new_task_queue = [] { return new httplib::ThreadPool(2); };  // probes are rare
    server_.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
      res.set_content("ok", "text/plain");
    });
    server_.Get("/readyz", [this](const httplib::Request&, httplib::Response& res) {
      const bool ready = ready_();
      res.status = ready ? 200 : 503;
      res.set_content(ready ? "ok" : "caches not synced", "text/plain");
    });
  }
  ~HealthServer() {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }
  HealthServer(const HealthServer&) = delete;
  HealthServer& operator=(const HealthServer&) = delete;

  // Binds "host:port", ":port" (every interface, IPv6 and IPv4) or "[v6]:port"; "0" or ""
  // disables the server. A malformed address is kConfig, one that cannot be bound
  // kTransport.
  Status Start(const std::string& address) {
    if (address == "0" || address.empty()) return Status::Ok();
    auto parsed = listen::Parse(address, "--health-probe-bind-address");
    if (!parsed.ok()) return parsed.status();
    auto bound = listen::Bind(server_, *parsed);
    if (!bound.ok()) return Status::Transport("health probes: " + bound.status().message());
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    return Status::Ok();
  }

 private:
  std::function<bool()> ready_;
  httplib::Server server_;
  std::thread thread_;
};

int Run(int argc, char** argv) {
  // One malloc arena for ~30 mostly waiting threads (pkg/memory): before any thread starts.
  memory::LimitArenas(kMallocArenas);
  // Signals go to one thread that turns them into a stop request. Blocked first, so that
  // every thread started later (spdlog's flusher too) inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::stop_source stop;

  auto options = ParseOptions(argc, argv);
  if (!options.ok()) {
    std::cerr << "dpcm-operator: " << options.status().message() << "\n";
    return 2;
  }
  if (options->help) {
    std::cout << Usage();
    return 0;
  }
  if (Status s = logging::Configure(options->log_level, options->log_format); !s.ok()) {
    std::cerr << "dpcm-operator: " << s.message() << "\n";
    return 2;
  }

  auto config = restconfig::LoadDefault(options->kubeconfig);
  if (!config.ok()) {
    spdlog::critical("kubernetes configuration: {}", config.status().message());
    return 1;
  }
  metrics::Metrics metrics;
  client::ClientOptions client_options;
  client_options.qps = options->kube_api_qps;
  client_options.burst = options->kube_api_burst;
  auto client = client::ApiClient::Create(*config, client_options);
  if (!client.ok()) {
    spdlog::critical("kubernetes client: {}", client.status().message());
    return 1;
  }
  (*client)->SetRequestObserver(metrics.RestClientRequestObserver(config->server));
  // The controller runs until `run` stops: on a signal, or when leadership is lost.
  std::stop_source run;
  std::stop_callback stop_run(stop.get_token(), [&run] { run.request_stop(); });
  auto leadership = Leadership::Create(*options, *config, metrics, run);
  if (!leadership.ok()) {
    spdlog::critical("{}", leadership.status().message());
    return leadership.status().code() == StatusCode::kConfig ? 2 : 1;
  }
  (*leadership)->GuardWrites(**client);

  // --namespace: one list+watch per namespace, so that a Role in each is all the RBAC the
  // operator needs (nothing cluster-wide); none: one cluster-wide watch per resource.
  const std::set<std::string> namespace_set(options->namespaces.begin(), options->namespaces.end());
  const std::vector<std::string> namespaces(namespace_set.begin(), namespace_set.end());
  // Pods, Leases and Services of domains: only those with dpcm.io/domain, found by it (the
  // only label the reconciler looks them up by; issue 12: each indexed label costs memory
  // per object).
  auto selected = [](const std::string& selector) {
    cache::InformerOptions o;
    o.watcher.selectors.label_selector = selector;
    o.indexed_labels = std::set<std::string>{domain::kDomainLabel};
    return o;
  };
  // Only pods that carry dpcm.io/domain are cached (unrelated pods cost nothing);
  // adopt-mode candidates without it are found by AdoptionWatches.
  cache::InformerOptions pod_options = selected(domain::kDomainLabel);
  pod_options.transform = domain::TrimPod;
  cache::InformerOptions domain_options;
  domain_options.transform = domain::TrimDomain;
  domain_options.indexed_labels = std::set<std::string>{};  // never looked up by label
  cache::Informer domains(**client, client::resources::ProcessDomains(), namespaces,
                          domain_options);
  cache::Informer pods(**client, client::resources::Pods(), namespaces, pod_options);
  cache::Informer leases(**client, client::resources::Leases(), namespaces,
                         selected(domain::kDomainLabel));
  cache::Informer services(**client, client::resources::Services(), namespaces,
                           selected(domain::kDomainLabel));

  // Events get their own client and rate limit (as client-go's event broadcaster does),
  // so a burst of Events never delays a failover's writes.
  client::ClientOptions event_options = client_options;
  event_options.urgent_reserve = 0;  // Events are never urgent
  auto event_client = client::ApiClient::Create(*config, event_options);
  if (!event_client.ok()) {
    spdlog::critical("kubernetes client: {}", event_client.status().message());
    return 1;
  }
  (*event_client)->SetRequestObserver(metrics.RestClientRequestObserver(config->server));
  (*leadership)->GuardWrites(**event_client);
  events::EventRecorder recorder(**event_client, "dpcm-operator");
  // Health checks and role hooks run on their own threads and wake the domain's
  // reconcile when something changes.
  std::atomic<controller::Controller*> wake_target{nullptr};
  auto wake = [&wake_target](const std::string& ns, const std::string& name) {
    if (auto* target = wake_target.load()) target->Enqueue({ns, name});
  };
  const auto health_observer = metrics::NewHealthCheckObserver(metrics);
  health::MonitorOptions monitor_options;
  monitor_options.observer = health_observer.get();
  health::HealthMonitor health_monitor(wake, monitor_options);
  const auto hook_observer = metrics::NewRoleHookObserver(metrics);
  rolehook::RunnerOptions hook_options;
  hook_options.observer = hook_observer.get();
  rolehook::RoleHookRunner role_hooks(wake, hook_options);
  domain::AdoptionWatches adoption(**client,
                                   [&wake](const controller::Request& r) { wake(r.ns, r.name); });
  MetricsDomainObserver domain_metrics(metrics);
  domain::DomainReconciler reconciler(
      **client, {domains.store(), pods.store(), leases.store(), services.store(), &adoption},
      recorder,
      {&health_monitor, &role_hooks, &domain_metrics,
       domain::AgentInjection{options->agent_image, options->agent_role_bind_address}});
  controller::ControllerOptions controller_options;
  controller_options.name = "processdomain";
  controller_options.workers = options->workers;
  metrics::ObserveController(metrics, controller_options);
  controller::Controller controller(std::move(controller_options), reconciler);
  wake_target = &controller;

  auto enqueue_named = [&](const cache::ObjectPtr& object) {
    const std::string ns = object::Meta(*object, "namespace");
    const std::string name = object::Meta(*object, "name");
    if (!name.empty()) controller.Enqueue({ns, name});
  };
  auto enqueue_by_label = [&](const cache::ObjectPtr& object) {
    const auto request = domain::DomainOf(*object);
    if (request) controller.Enqueue(*request);
  };
  // A pod event wakes its domain; one that shows the DC failing jumps the queue.
  auto enqueue_pod = [&](const cache::ObjectPtr& pod, bool gone,
                         const nlohmann::json* before = nullptr) {
    const auto request = domain::DomainOf(*pod);
    if (!request) return;
    if (domain::SignalsDcFailure(*pod, gone, before)) {
      controller.EnqueueUrgent(*request);
    } else {
      controller.Enqueue(*request);
    }
  };
  auto on_any = [](auto enqueue) {
    return cache::InformerHandlers{
        .on_add = enqueue,
        .on_update =
            [enqueue](const cache::ObjectPtr& old_object, const cache::ObjectPtr& new_object) {
              enqueue(new_object);
              enqueue(old_object);  // a pod whose labels changed may leave a domain
            },
        .on_delete = enqueue};
  };
  domains.AddHandlers(on_any(enqueue_named));
  pods.AddHandlers(cache::InformerHandlers{
      .on_add = [&](const cache::ObjectPtr& pod) { enqueue_pod(pod, false); },
      .on_update =
          [&](const cache::ObjectPtr& old_pod, const cache::ObjectPtr& new_pod) {
            enqueue_pod(new_pod, false, old_pod.get());
            const auto was = domain::DomainOf(*old_pod);
            const auto is = domain::DomainOf(*new_pod);
            if (was && (!is || !(*was == *is))) enqueue_pod(old_pod, false);  // left a domain
          },
      .on_delete = [&](const cache::ObjectPtr& pod) { enqueue_pod(pod, true); }});
  leases.AddHandlers(on_any(enqueue_by_label));
  services.AddHandlers(on_any(enqueue_by_label));
  MemoryReturner memory_returner(std::chrono::seconds(30));
  const auto note_change = [&memory_returner](const cache::ObjectPtr&) {
    memory_returner.Changed();
  };
  for (auto* informer : {&domains, &pods, &leases, &services}) {
    informer->AddHandlers(cache::InformerHandlers{
        .on_add = note_change,
        .on_update = [&memory_returner](const cache::ObjectPtr&,
                                        const cache::ObjectPtr&) { memory_returner.Changed(); },
        .on_delete = note_change});
  }

  auto synced = [&] {
    return domains.HasSynced() && pods.HasSynced() && leases.HasSynced() && services.HasSynced();
  };
  HealthServer health(synced);
  if (Status s = health.Start(options->health_probe_bind_address); !s.ok()) {
    spdlog::critical("{}", s.message());
    return 1;
  }
  std::unique_ptr<metrics::MetricsServer> metrics_server;
  if (options->metrics_bind_address != "0") {
    // A scrape renders every domain's series: at 1,000 domains it left 4.4 MiB more RSS
    // until the next cache change.
    auto started = metrics::MetricsServer::Start(options->metrics_bind_address, metrics,
                                                 [&memory_returner] { memory_returner.Changed(); });
    if (!started.ok()) {
      spdlog::critical("metrics: {}", started.status().message());
      return 1;
    }
    metrics_server = std::move(*started);
  }

  std::jthread signal_thread([&signals, &stop] {
    int received = 0;
    sigwait(&signals, &received);
    spdlog::info("received {}, shutting down", received == SIGTERM ? "SIGTERM" : "SIGINT");
    stop.request_stop();
  });

  std::string watched = namespaces.empty() ? "all" : "";
  for (const auto& ns : namespaces) watched += (watched.empty() ? "" : ",") + ns;
  spdlog::info("dpcm-operator starting: server {}, namespaces {}, {} workers", config->server,
               watched, options->workers);
  for (auto* informer : {&domains, &pods, &leases, &services}) informer->Start();
  (*leadership)->Start();  // standbys keep their caches warm and serve the probes
  Status ran;
  if ((*leadership)->AwaitLeading(run.get_token())) {
    for (auto* informer : {&domains, &pods, &leases, &services}) {
      while (!informer->WaitForSync(std::chrono::seconds(5), run.get_token())) {
        if (run.stop_requested()) break;
        spdlog::info("waiting for the {} cache to sync (a refused list is logged as an error)",
                     informer->Describe());
      }
    }
    if (!run.stop_requested()) spdlog::info("caches synced; reconciling");
    memory::ReturnFreeMemory();  // the initial lists' pages
    ran = controller.Run(run.get_token());
  }
  wake_target = nullptr;
  adoption.StopAll();
  health_monitor.Stop();  // no checks or role hooks once this replica stops reconciling
  role_hooks.Stop();
  // The controller has stopped writing: now the Lease may go to a standby.
  const bool led_to_the_end = (*leadership)->Finish();
  for (auto* informer : {&domains, &pods, &leases, &services}) informer->Stop();
  if (signal_thread.joinable() && !stop.stop_requested()) {
    stop.request_stop();
    kill(getpid(), SIGTERM);  // wakes the signal thread's sigwait (SIGTERM is blocked here)
  }
  spdlog::info("dpcm-operator stopped");
  spdlog::default_logger()->flush();
  return ran.ok() && led_to_the_end ? 0 : 1;
}

}  // namespace
}  // namespace dpcm::operator_main

int main(int argc, char** argv) { return dpcm::operator_main::Run(argc, argv); }
