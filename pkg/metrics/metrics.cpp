#include "pkg/metrics/metrics.h"

#include <prometheus/text_serializer.h>

#include <algorithm>
#include <initializer_list>
#include <map>
#include <mutex>
#include <sstream>

#include "pkg/metrics/process_collector.h"

namespace dpcm::metrics {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Series per slice of a family's text (DomainFamily::WriteText).
constexpr std::size_t kTextSlice = 64;

// Appends `slice` in the text format to `out` and empties it; the HELP and TYPE lines only
// when `first` (then clears it): once per family however many slices it takes.
void FlushText(MetricFamily& slice, bool& first, std::string& out) {
  std::ostringstream text;
  prometheus::TextSerializer().Serialize(text, {slice});
  std::string_view lines = text.view();
  while (!first && lines.starts_with('#')) {
    const auto end = lines.find('\n');
    lines.remove_prefix(end == std::string_view::npos ? lines.size() : end + 1);
  }
  out.append(lines);
  first = false;
  slice.metric.clear();
}

// A family whose series all carry the labels namespace and domain first, owned shared so
// that ForgetDomain can unlist them while a caller still holds one.
template <typename T>
class DomainFamily {
 public:
  DomainFamily(std::string name, std::string help, MetricType type,
               std::vector<std::string> extra_label_names, std::function<std::shared_ptr<T>()> make)
      : name_(std::move(name)),
        help_(std::move(help)),
        type_(type),
        label_names_(std::move(extra_label_names)),
        make_(std::move(make)) {
    label_names_.insert(label_names_.begin(), {"namespace", "domain"});
  }

  // `values` are the label values in label_names_ order.
  std::shared_ptr<T> Get(const std::vector<std::string>& values) {
    std::lock_guard lock(mutex_);
    auto& series = series_[KeyOf(values)];
    if (series == nullptr) series = make_();
    return series;
  }

  void Forget(const std::string& ns, const std::string& domain) {
    std::lock_guard lock(mutex_);
    ForgetLocked(ns, domain);
  }

  void CollectInto(std::vector<MetricFamily>& out) const {
    std::lock_guard lock(mutex_);
    if (series_.empty()) return;
    MetricFamily family{name_, help_, type_, {}};
    family.metric.reserve(series_.size());
    for (const auto& [values, series] : series_) family.metric.push_back(MetricOf(values, *series));
    out.push_back(std::move(family));
  }

  // Appends the family in the text format to `out`, kTextSlice series at a time: a family of
  // thousands of domains never exists as one vector of metrics with their label strings
  // (a scrape at 300 domains built ~1 MiB of them, the largest transient of a converging
  // operator, interleaved with what the caches keep; issue 12).
  void WriteText(std::string& out) const {
    std::lock_guard lock(mutex_);
    MetricFamily slice{name_, help_, type_, {}};
    slice.metric.reserve(std::min(kTextSlice, series_.size()));
    bool first = true;
    for (const auto& [values, series] : series_) {
      slice.metric.push_back(MetricOf(values, *series));
      if (slice.metric.size() == kTextSlice) FlushText(slice, first, out);
    }
    if (!slice.metric.empty()) FlushText(slice, first, out);
  }

 private:
  const std::string name_;
  const std::string help_;
  const MetricType type_;
  std::vector<std::string> label_names_;
  const std::function<std::shared_ptr<T>()> make_;
  void ForgetLocked(const std::string& ns, const std::string& domain) {
    // Keys sort lexicographically, so one domain's series are contiguous.
    const std::string prefix = KeyOf({ns, domain});
    auto it = series_.lower_bound(prefix);
    while (it != series_.end() && it->first.starts_with(prefix)) {
      it = series_.erase(it);
    }
  }

  // A series' key: its label values, each followed by kEnd. One string instead of a vector
  // of them (a third of the memory of a domain's series; issue 12). Names, roles and
  // condition types never contain '\0', and as the smallest byte it keeps the keys in the
  // order of their value lists, so one domain's series stay contiguous.
  static constexpr char kEnd = '\0';
  static std::string KeyOf(const std::vector<std::string>& values) {
    std::string key;
    for (const auto& value : values) key.append(value).push_back(kEnd);
    return key;
  }

  prometheus::ClientMetric MetricOf(std::string_view key, const T& series) const {
    auto metric = series.Collect();
    for (std::size_t i = 0; i < label_names_.size() && !key.empty(); ++i) {
      const std::size_t end = key.find(kEnd);
      metric.label.push_back({label_names_[i], std::string(key.substr(0, end))});
      key.remove_prefix(end + 1);
    }
    return metric;
  }

  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<T>, std::less<>> series_;  // guarded by mutex_
};

// The domains' gauge states (Metrics::SetDomainState), by the key "namespace\0domain\0"
// (the DomainFamily key of the two labels, so both list domains in the same order).
class DomainStates {
 public:
  void Set(const std::string& ns, const std::string& domain, DomainState state) {
    std::string key = KeyOf(ns, domain);
    std::lock_guard lock(mutex_);
    states_.insert_or_assign(std::move(key), std::move(state));
  }

  void Forget(const std::string& ns, const std::string& domain) {
    const std::string key = KeyOf(ns, domain);
    std::lock_guard lock(mutex_);
    states_.erase(key);
  }

  // Calls `visit(key, state)` for every domain in key order, holding the lock.
  template <typename Visit>
  void ForEach(Visit visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& [key, state] : states_) visit(key, state);
  }

 private:
  static std::string KeyOf(const std::string& ns, const std::string& domain) {
    std::string key = ns;
    key.push_back('\0');
    key.append(domain).push_back('\0');
    return key;
  }

  mutable std::mutex mutex_;
  std::map<std::string, DomainState, std::less<>> states_;  // guarded by mutex_
};

// A gauge family read from the domains' states at scrape time: `series(state, emit)` calls
// `emit(extra label values, value)` for each of the domain's series, in label order.
class StateFamily {
 public:
  using Emit = std::function<void(std::initializer_list<std::string_view>, double)>;
  using Series = std::function<void(const DomainState&, const Emit&)>;

  StateFamily(const DomainStates& states, std::string name, std::string help,
              std::vector<std::string> extra_label_names, Series series)
      : states_(states),
        name_(std::move(name)),
        help_(std::move(help)),
        label_names_(std::move(extra_label_names)),
        series_(std::move(series)) {
    label_names_.insert(label_names_.begin(), {"namespace", "domain"});
  }

  // The states are forgotten once for all the families that read them.
  void Forget(const std::string& /*ns*/, const std::string& /*domain*/) {}

  void CollectInto(std::vector<MetricFamily>& out) const {
    MetricFamily family{name_, help_, MetricType::Gauge, {}};
    states_.ForEach(
        [&](std::string_view key, const DomainState& state) { Append(key, state, family.metric); });
    if (!family.metric.empty()) out.push_back(std::move(family));
  }

  // Appends the family in the text format to `out`, about kTextSlice series at a time (see
  // DomainFamily::WriteText).
  void WriteText(std::string& out) const {
    MetricFamily slice{name_, help_, MetricType::Gauge, {}};
    bool first = true;
    states_.ForEach([&](std::string_view key, const DomainState& state) {
      Append(key, state, slice.metric);
      if (slice.metric.size() >= kTextSlice) FlushText(slice, first, out);
    });
    if (!slice.metric.empty()) FlushText(slice, first, out);
  }

 private:
  void Append(std::string_view key, const DomainState& state,
              std::vector<prometheus::ClientMetric>& out) const {
    const std::size_t ns_end = key.find('\0');
    const std::string_view ns = key.substr(0, ns_end);
    const std::string_view domain = key.substr(ns_end + 1, key.size() - ns_end - 2);
    series_(state, [&](std::initializer_list<std::string_view> extra, double value) {
      prometheus::ClientMetric metric;
      metric.gauge.value = value;
      metric.label.push_back({label_names_[0], std::string(ns)});
      metric.label.push_back({label_names_[1], std::string(domain)});
      std::size_t i = 2;
      for (const auto value_of_label : extra) {
        metric.label.push_back({label_names_.at(i++), std::string(value_of_label)});
      }
      out.push_back(std::move(metric));
    });
  }

  const DomainStates& states_;
  const std::string name_;
  const std::string help_;
  std::vector<std::string> label_names_;
  const Series series_;
};

std::function<std::shared_ptr<Histogram>()> MakeHistogram(
    const Histogram::BucketBoundaries& buckets) {
  return [&buckets] { return std::make_shared<Histogram>(buckets); };
}

template <typename T>
std::function<std::shared_ptr<T>()> Make() {
  return [] { return std::make_shared<T>(); };
}

Histogram::BucketBoundaries ExponentialBuckets(double start, double factor, int count) {
  Histogram::BucketBoundaries buckets;
  for (int i = 0; i < count; ++i, start *= factor) buckets.push_back(start);
  return buckets;
}

}  // namespace

const char* ReconcileOutcomeLabel(ReconcileOutcome outcome) {
  switch (outcome) {
    case ReconcileOutcome::kSuccess:
      return "success";
    case ReconcileOutcome::kError:
      return "error";
    case ReconcileOutcome::kRequeue:
      return "requeue";
    case ReconcileOutcome::kRequeueAfter:
      return "requeue_after";
  }
  return "unknown";
}

const Histogram::BucketBoundaries& FailoverDurationBuckets() {
  static const Histogram::BucketBoundaries buckets{0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                   1,    2.5,   5,    10,  20,   30};
  return buckets;
}

const Histogram::BucketBoundaries& HealthCheckDurationBuckets() {
  static const Histogram::BucketBoundaries buckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                   0.25,  0.5,    1,     2.5,  5,     10};
  return buckets;
}

const Histogram::BucketBoundaries& ReconcileTimeBuckets() {
  static const Histogram::BucketBoundaries buckets{
      0.005, 0.01, 0.025, 0.05, 0.1,  0.15, 0.2,  0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6,
      0.7,   0.8,  0.9,   1.0,  1.25, 1.5,  1.75, 2.0,  2.5, 3.0,  3.5, 4.0,  4.5, 5,
      6,     7,    8,     9,    10,   15,   20,   25,   30,  40,   50,  60};
  return buckets;
}

const Histogram::BucketBoundaries& WorkQueueDurationBuckets() {
  static const Histogram::BucketBoundaries buckets = ExponentialBuckets(10e-9, 10, 10);
  return buckets;
}

class Metrics::DomainFamilies {
 public:
  DomainStates states;  // first: the gauge families read it
  DomainFamily<Counter> failovers_total{
      "dpcm_failovers_total",
      "Times the domain controller (DC) of a domain moved, by reason.",
      MetricType::Counter,
      {"reason"},
      Make<Counter>()};
  DomainFamily<Histogram> failover_duration{
      "dpcm_failover_duration_seconds",
      "Time from a failure of the DC being seen to the new DC being labeled.",
      MetricType::Histogram,
      {},
      MakeHistogram(FailoverDurationBuckets())};
  DomainFamily<Histogram> failover_phase_duration{
      "dpcm_failover_phase_duration_seconds",
      "Time from a failure of the DC being seen to the end of each phase of its failover "
      "(decided, fenced, leaseWritten, labeled, hooksAcknowledged).",
      MetricType::Histogram,
      {"phase"},
      MakeHistogram(FailoverDurationBuckets())};
  StateFamily active_pods{states,
                          "dpcm_domain_active_pods",
                          "Pods of the domain labeled as DC (1 when healthy).",
                          {},
                          [](const DomainState& state, const StateFamily::Emit& emit) {
                            emit({}, state.dc_healthy + state.dc_unhealthy);
                          }};
  StateFamily members{states,
                      "dpcm_domain_members",
                      "Members of the domain by role and health.",
                      {"role", "healthy"},
                      [](const DomainState& state, const StateFamily::Emit& emit) {
                        emit({"dc", "false"}, state.dc_unhealthy);
                        emit({"dc", "true"}, state.dc_healthy);
                        emit({"pc", "false"}, state.pc_unhealthy);
                        emit({"pc", "true"}, state.pc_healthy);
                      }};
  DomainFamily<Counter> health_checks_total{"dpcm_health_checks_total",
                                            "Health plugin runs by result.",
                                            MetricType::Counter,
                                            {"result"},
                                            Make<Counter>()};
  DomainFamily<Counter> pod_restarts_total{"dpcm_pod_restarts_total",
                                           "Pods restarted by the operator, by reason.",
                                           MetricType::Counter,
                                           {"reason"},
                                           Make<Counter>()};
  DomainFamily<Counter> role_hooks_total{"dpcm_role_hooks_total",
                                         "Role hook deliveries by result.",
                                         MetricType::Counter,
                                         {"result"},
                                         Make<Counter>()};
  StateFamily condition{states,
                        "dpcm_domain_condition",
                        "The domain's status conditions: 1 when True, 0 when False.",
                        {"type"},
                        [](const DomainState& state, const StateFamily::Emit& emit) {
                          for (const auto& [type, status] : state.conditions) {
                            emit({type}, status ? 1 : 0);
                          }
                        }};
  StateFamily terminating{
      states,
      "dpcm_domain_terminating_members",
      "Members of the domain whose pod is being deleted.",
      {},
      [](const DomainState& state, const StateFamily::Emit& emit) { emit({}, state.terminating); }};
  StateFamily dc_info{states,
                      "dpcm_domain_dc_info",
                      "The pods of the domain labeled DC: 1 for each (one when healthy).",
                      {"pod"},
                      [](const DomainState& state, const StateFamily::Emit& emit) {
                        for (const auto& pod : state.dc_pods) emit({pod}, 1);
                      }};
  StateFamily epoch{states,
                    "dpcm_domain_epoch",
                    "The domain's epoch (its Lease's leaseTransitions).",
                    {},
                    [](const DomainState& state, const StateFamily::Emit& emit) {
                      emit({}, static_cast<double>(state.epoch));
                    }};

  void Forget(const std::string& ns, const std::string& domain) {
    states.Forget(ns, domain);
    ForEach(*this, [&](auto& family) { family.Forget(ns, domain); });
  }

  void WriteText(std::string& out) const {
    ForEach(*this, [&](const auto& family) { family.WriteText(out); });
  }

  void CollectInto(std::vector<MetricFamily>& out) const {
    ForEach(*this, [&](const auto& family) { family.CollectInto(out); });
  }

 private:
  // Calls `visit` with every family of `self` (const or not), in the exposition's order.
  template <typename Self, typename Visit>
  static void ForEach(Self& self, Visit visit) {
    visit(self.failovers_total);
    visit(self.failover_duration);
    visit(self.failover_phase_duration);
    visit(self.active_pods);
    visit(self.members);
    visit(self.health_checks_total);
    visit(self.pod_restarts_total);
    visit(self.role_hooks_total);
    visit(self.epoch);
    visit(self.condition);
    visit(self.terminating);
    visit(self.dc_info);
  }
};

// The registry, the domain families and the process collector as one collectable.
class Metrics::Exposition final : public prometheus::Collectable {
 public:
  Exposition(std::shared_ptr<prometheus::Registry> registry,
             std::shared_ptr<DomainFamilies> domains,
             std::shared_ptr<prometheus::Collectable> process)
      : registry_(std::move(registry)),
        domains_(std::move(domains)),
        process_(std::move(process)) {}

  std::vector<MetricFamily> Collect() const override {
    std::vector<MetricFamily> out = registry_->Collect();
    domains_->CollectInto(out);
    auto process = process_->Collect();
    out.insert(out.end(), std::make_move_iterator(process.begin()),
               std::make_move_iterator(process.end()));
    return out;
  }

  // Collect() as text, in the same order; the domain families a slice at a time.
  void WriteText(std::string& out) const {
    std::ostringstream text;
    prometheus::TextSerializer serializer;
    serializer.Serialize(text, registry_->Collect());
    out.append(text.view());
    domains_->WriteText(out);
    text.str("");
    serializer.Serialize(text, process_->Collect());
    out.append(text.view());
  }

 private:
  const std::shared_ptr<prometheus::Registry> registry_;
  const std::shared_ptr<DomainFamilies> domains_;
  const std::shared_ptr<prometheus::Collectable> process_;
};

Metrics::Metrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      health_check_duration_(prometheus::BuildHistogram()
                                 .Name("dpcm_health_check_duration_seconds")
                                 .Help("Time one health plugin run took.")
                                 .Register(*registry_)
                                 .Add({}, HealthCheckDurationBuckets())),
      reconcile_total_(prometheus::BuildCounter()
                           .Name("controller_runtime_reconcile_total")
                           .Help("Total number of reconciliations per controller")
                           .Register(*registry_)),
      reconcile_errors_total_(prometheus::BuildCounter()
                                  .Name("controller_runtime_reconcile_errors_total")
                                  .Help("Total number of reconciliation errors per controller")
                                  .Register(*registry_)),
      reconcile_time_(prometheus::BuildHistogram()
                          .Name("controller_runtime_reconcile_time_seconds")
                          .Help("Length of time per reconciliation per controller")
                          .Register(*registry_)),
      workqueue_depth_(prometheus::BuildGauge()
                           .Name("workqueue_depth")
                           .Help("Current depth of workqueue")
                           .Register(*registry_)),
      workqueue_adds_total_(prometheus::BuildCounter()
                                .Name("workqueue_adds_total")
                                .Help("Total number of adds handled by workqueue")
                                .Register(*registry_)),
      workqueue_queue_duration_(
          prometheus::BuildHistogram()
              .Name("workqueue_queue_duration_seconds")
              .Help("How long in seconds an item stays in workqueue before being requested")
              .Register(*registry_)),
      workqueue_work_duration_(
          prometheus::BuildHistogram()
              .Name("workqueue_work_duration_seconds")
              .Help("How long in seconds processing an item from workqueue takes.")
              .Register(*registry_)),
      workqueue_retries_total_(prometheus::BuildCounter()
                                   .Name("workqueue_retries_total")
                                   .Help("Total number of retries handled by workqueue")
                                   .Register(*registry_)),
      leader_election_master_status_(
          prometheus::BuildGauge()
              .Name("leader_election_master_status")
              .Help("Gauge of if the reporting system is master of the relevant lease, 0 "
                    "indicates backup, 1 indicates master. 'name' is the string used to "
                    "identify the lease.")
              .Register(*registry_)),
      rest_client_requests_total_(
          prometheus::BuildCounter()
              .Name("rest_client_requests_total")
              .Help("Number of HTTP requests, partitioned by status code, method, and host.")
              .Register(*registry_)),
      domains_(std::make_shared<DomainFamilies>()),
      process_(std::make_shared<ProcessCollector>()),
      exposition_(std::make_shared<Exposition>(registry_, domains_, process_)) {}

Metrics::~Metrics() = default;

std::shared_ptr<Counter> Metrics::FailoversTotal(const std::string& ns, const std::string& domain,
                                                 const std::string& reason) {
  return domains_->failovers_total.Get({ns, domain, reason});
}

std::shared_ptr<Histogram> Metrics::FailoverDuration(const std::string& ns,
                                                     const std::string& domain) {
  return domains_->failover_duration.Get({ns, domain});
}

std::shared_ptr<Histogram> Metrics::FailoverPhaseDuration(const std::string& ns,
                                                          const std::string& domain,
                                                          const std::string& phase) {
  return domains_->failover_phase_duration.Get({ns, domain, phase});
}

std::shared_ptr<Counter> Metrics::HealthChecksTotal(const std::string& ns,
                                                    const std::string& domain,
                                                    const std::string& result) {
  return domains_->health_checks_total.Get({ns, domain, result});
}

std::shared_ptr<Counter> Metrics::PodRestartsTotal(const std::string& ns, const std::string& domain,
                                                   const std::string& reason) {
  return domains_->pod_restarts_total.Get({ns, domain, reason});
}

std::shared_ptr<Counter> Metrics::RoleHooksTotal(const std::string& ns, const std::string& domain,
                                                 const std::string& result) {
  return domains_->role_hooks_total.Get({ns, domain, result});
}

void Metrics::SetDomainState(const std::string& ns, const std::string& domain, DomainState state) {
  // Sorted as the series' keys sort (DomainFamily): the exposition lists them in order,
  // each once (a type given twice: the last value counts, as a series set twice).
  std::sort(state.dc_pods.begin(), state.dc_pods.end());
  state.dc_pods.erase(std::unique(state.dc_pods.begin(), state.dc_pods.end()), state.dc_pods.end());
  const std::map<std::string, bool> conditions(state.conditions.rbegin(), state.conditions.rend());
  state.conditions.assign(conditions.begin(), conditions.end());
  state.dc_pods.shrink_to_fit();
  state.conditions.shrink_to_fit();
  domains_->states.Set(ns, domain, std::move(state));
}
void Metrics::ForgetDomain(const std::string& ns, const std::string& domain) {
  domains_->Forget(ns, domain);
}

Histogram& Metrics::HealthCheckDuration() { return health_check_duration_; }

void Metrics::RegisterController(const std::string& controller) {
  for (const auto outcome : {ReconcileOutcome::kSuccess, ReconcileOutcome::kError,
                             ReconcileOutcome::kRequeue, ReconcileOutcome::kRequeueAfter}) {
    ReconcileTotal(controller, outcome);
  }
  ReconcileErrorsTotal(controller);
  ReconcileTime(controller);
}

Counter& Metrics::ReconcileTotal(const std::string& controller, ReconcileOutcome result) {
  return reconcile_total_.Add(
      {{"controller", controller}, {"result", ReconcileOutcomeLabel(result)}});
}

Counter& Metrics::ReconcileErrorsTotal(const std::string& controller) {
  return reconcile_errors_total_.Add({{"controller", controller}});
}

Histogram& Metrics::ReconcileTime(const std::string& controller) {
  return reconcile_time_.Add({{"controller", controller}}, ReconcileTimeBuckets());
}

Gauge& Metrics::WorkQueueDepth(const std::string& name) {
  return workqueue_depth_.Add({{"name", name}});
}

Counter& Metrics::WorkQueueAddsTotal(const std::string& name) {
  return workqueue_adds_total_.Add({{"name", name}});
}

Histogram& Metrics::WorkQueueQueueDuration(const std::string& name) {
  return workqueue_queue_duration_.Add({{"name", name}}, WorkQueueDurationBuckets());
}

Histogram& Metrics::WorkQueueWorkDuration(const std::string& name) {
  return workqueue_work_duration_.Add({{"name", name}}, WorkQueueDurationBuckets());
}

Counter& Metrics::WorkQueueRetriesTotal(const std::string& name) {
  return workqueue_retries_total_.Add({{"name", name}});
}

Gauge& Metrics::LeaderElectionMasterStatus(const std::string& name) {
  return leader_election_master_status_.Add({{"name", name}});
}

Counter& Metrics::RestClientRequestsTotal(const std::string& code, const std::string& method,
                                          const std::string& host) {
  return rest_client_requests_total_.Add({{"code", code}, {"method", method}, {"host", host}});
}

std::function<void(std::string_view, int)> Metrics::RestClientRequestObserver(std::string host) {
  return [this, host = std::move(host)](std::string_view method, int http_status) {
    const std::string code = http_status > 0 ? std::to_string(http_status) : "<error>";
    RestClientRequestsTotal(code, std::string(method), host).Increment();
  };
}

std::vector<MetricFamily> Metrics::Collect() const { return exposition_->Collect(); }

std::shared_ptr<prometheus::Collectable> Metrics::collectable() const { return exposition_; }

std::string Metrics::RenderText() const {
  std::string out;
  // One allocation of about the last size: a text that grows by doubling leaves its
  // smaller copies behind in the heap.
  out.reserve(last_text_size_.load(std::memory_order_relaxed) * 9 / 8);
  exposition_->WriteText(out);
  last_text_size_.store(out.size(), std::memory_order_relaxed);
  return out;
}

}  // namespace dpcm::metrics
