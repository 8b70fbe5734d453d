// Owns the operator's Prometheus metrics: dpcm_* domain series, controller-runtime's, process.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dpcm::metrics {

// The `result` label of controller_runtime_reconcile_total.
enum class ReconcileOutcome { kSuccess, kError, kRequeue, kRequeueAfter };

// "success", "error", "requeue" or "requeue_after".
const char* ReconcileOutcomeLabel(ReconcileOutcome outcome);

// Bucket bounds (seconds) of the histograms, exposed for tests and dashboards.
const prometheus::Histogram::BucketBoundaries& FailoverDurationBuckets();     // 10 ms .. 30 s
const prometheus::Histogram::BucketBoundaries& HealthCheckDurationBuckets();  // 1 ms .. 10 s
const prometheus::Histogram::BucketBoundaries& ReconcileTimeBuckets();      // controller-runtime's
const prometheus::Histogram::BucketBoundaries& WorkQueueDurationBuckets();  // 10 ns .. 10 s

// What a domain's gauges show (Metrics::SetDomainState). One record per domain, not a
// series object per gauge: at 1,000 domains the eleven gauge series each took about 170
// bytes of map node, key and series (issue 12: memory per managed pod).
struct DomainState {
  int dc_healthy = 0;  // members labeled DC, by health
  int dc_unhealthy = 0;
  int pc_healthy = 0;  // members not labeled DC, by health
  int pc_unhealthy = 0;
  int terminating = 0;  // members whose pod is being deleted
  int64_t epoch = 0;
  std::vector<std::string> dc_pods{};                      // the pods labeled DC
  std::vector<std::pair<std::string, bool>> conditions{};  // status condition type -> True?
};

// Every metric family of DESIGN.md, registered once at construction, with typed accessors
// for their series. An accessor creates the series on first use and returns the same one
// afterwards. Thread-safe: any thread may use any accessor, and a scrape may run at once.
//
// Per-domain series (labels namespace and domain) are handed out as shared pointers,
// because ForgetDomain drops them from the exposition when the domain is deleted: a
// holder keeps a valid (but no longer exported) series. All other series are never
// removed, so references to them stay valid for the life of the Metrics.
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // --- Domains (dpcm_*) ---------------------------------------------------------------
  // dpcm_failovers_total{namespace,domain,reason}: DC moves, by why.
  std::shared_ptr<prometheus::Counter> FailoversTotal(const std::string& ns,
                                                      const std::string& domain,
                                                      const std::string& reason);
  // dpcm_failover_duration_seconds{namespace,domain}: failure seen to new DC labeled.
  std::shared_ptr<prometheus::Histogram> FailoverDuration(const std::string& ns,
                                                          const std::string& domain);
  // dpcm_failover_phase_duration_seconds{namespace,domain,phase}: failure seen to the end
  // of each phase of a failover ("decided", "fenced", "leaseWritten", "labeled",
  // "hooksAcknowledged").
  std::shared_ptr<prometheus::Histogram> FailoverPhaseDuration(const std::string& ns,
                                                               const std::string& domain,
                                                               const std::string& phase);
  // dpcm_health_checks_total{namespace,domain,result}: health plugin runs by result
  // (e.g. "success", "failure", "timeout").
  std::shared_ptr<prometheus::Counter> HealthChecksTotal(const std::string& ns,
                                                         const std::string& domain,
                                                         const std::string& result);
  // dpcm_pod_restarts_total{namespace,domain,reason}: pods the operator restarted.
  std::shared_ptr<prometheus::Counter> PodRestartsTotal(const std::string& ns,
                                                        const std::string& domain,
                                                        const std::string& reason);
  // dpcm_role_hooks_total{namespace,domain,result}: role hook deliveries ("success",
  // "failure").
  std::shared_ptr<prometheus::Counter> RoleHooksTotal(const std::string& ns,
                                                      const std::string& domain,
                                                      const std::string& result);
  // The domain's gauges, set as a whole: dpcm_domain_active_pods{namespace,domain} (pods
  // labeled DC, must be 1), dpcm_domain_members{namespace,domain,role,healthy} (member count
  // per role "dc"/"pc" and health), dpcm_domain_epoch{namespace,domain} (the Lease's
  // leaseTransitions), dpcm_domain_condition{namespace,domain,type} (each status condition
  // given, 1 when True), dpcm_domain_terminating_members{namespace,domain} (members whose
  // pod is being deleted) and dpcm_domain_dc_info{namespace,domain,pod} (1 for each pod
  // labeled DC: none when no pod is, two when two are, the safety invariant broken). A
  // scrape sees each family of the old state or of the new one, never a mix within one family.
  void SetDomainState(const std::string& ns, const std::string& domain, DomainState state);
  // Drops every dpcm_* series of the domain `ns`/`domain` from the exposition (call when
  // the ProcessDomain is deleted). A later accessor call starts the series from zero.
  void ForgetDomain(const std::string& ns, const std::string& domain);

  // dpcm_health_check_duration_seconds: time one health plugin run took (all domains).
  prometheus::Histogram& HealthCheckDuration();

  // --- controller-runtime ---------------------------------------------------------------
  // Creates the controller's reconcile series at zero (every result), as controller-
  // runtime does, so that rate() works from the first reconcile.
  void RegisterController(const std::string& controller);
  // controller_runtime_reconcile_total{controller,result}
  prometheus::Counter& ReconcileTotal(const std::string& controller, ReconcileOutcome result);
  // controller_runtime_reconcile_errors_total{controller}
  prometheus::Counter& ReconcileErrorsTotal(const std::string& controller);
  // controller_runtime_reconcile_time_seconds{controller}
  prometheus::Histogram& ReconcileTime(const std::string& controller);

  // --- client-go workqueue (see NewWorkQueueObserver) -----------------------------------
  prometheus::Gauge& WorkQueueDepth(const std::string& name);        // workqueue_depth
  prometheus::Counter& WorkQueueAddsTotal(const std::string& name);  // workqueue_adds_total
  // workqueue_queue_duration_seconds: added to handed to a worker.
  prometheus::Histogram& WorkQueueQueueDuration(const std::string& name);
  // workqueue_work_duration_seconds: handed to a worker to Done.
  prometheus::Histogram& WorkQueueWorkDuration(const std::string& name);
  prometheus::Counter& WorkQueueRetriesTotal(const std::string& name);  // workqueue_retries_total

  // --- client-go leader election and REST client ----------------------------------------
  // leader_election_master_status{name}: 1 while this replica leads lock `name`, else 0.
  prometheus::Gauge& LeaderElectionMasterStatus(const std::string& name);
  // rest_client_requests_total{code,method,host}; code is the HTTP status or "<error>".
  prometheus::Counter& RestClientRequestsTotal(const std::string& code, const std::string& method,
                                               const std::string& host);
  // A callback for client::ApiClient::SetRequestObserver that counts each request in
  // rest_client_requests_total with host `host`; HTTP status 0 counts as code "<error>".
  // The Metrics must outlive the callback.
  std::function<void(std::string_view method, int http_status)> RestClientRequestObserver(
      std::string host);

  // --- Exposition ----------------------------------------------------------------------
  // Everything above plus the process_* metrics (read from /proc/self now).
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the Prometheus text format (version 0.0.4). Renders the per-domain
  // families a few series at a time, so a scrape's transient memory does not grow with
  // the number of domains beyond the text itself.
  std::string RenderText() const;
  // The same, as one collectable for prometheus::Exposer (which holds it weakly).
  std::shared_ptr<prometheus::Collectable> collectable() const;

 private:
  class DomainFamilies;
  class Exposition;

  std::shared_ptr<prometheus::Registry> registry_;
  prometheus::Histogram& health_check_duration_;  // the one unlabelled series
  prometheus::Family<prometheus::Counter>& reconcile_total_;
  prometheus::Family<prometheus::Counter>& reconcile_errors_total_;
  prometheus::Family<prometheus::Histogram>& reconcile_time_;
  prometheus::Family<prometheus::Gauge>& workqueue_depth_;
  prometheus::Family<prometheus::Counter>& workqueue_adds_total_;
  prometheus::Family<prometheus::Histogram>& workqueue_queue_duration_;
  prometheus::Family<prometheus::Histogram>& workqueue_work_duration_;
  prometheus::Family<prometheus::Counter>& workqueue_retries_total_;
  prometheus::Family<prometheus::Gauge>& leader_election_master_status_;
  prometheus::Family<prometheus::Counter>& rest_client_requests_total_;
  std::shared_ptr<DomainFamilies> domains_;
  std::shared_ptr<prometheus::Collectable> process_;
  std::shared_ptr<Exposition> exposition_;
  mutable std::atomic<std::size_t> last_text_size_{0};  // of the last RenderText
};

}  // namespace dpcm::metrics
