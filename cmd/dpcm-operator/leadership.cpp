#include "cmd/dpcm-operator/leadership.h"

#include <spdlog/spdlog.h>

#include "pkg/metrics/leadership_observer.h"

namespace dpcm::operator_main {

Result<std::unique_ptr<Leadership>> Leadership::Create(const OperatorOptions& options,
                                                       const restconfig::RestConfig& config,
                                                       metrics::Metrics& metrics,
                                                       std::stop_source run_stop) {
  std::unique_ptr<Leadership> leadership(new Leadership());
  leadership->run_stop_ = std::move(run_stop);
  if (!options.leader_elect) return leadership;

  auto ns = LeaderElectionNamespace(options);
  if (!ns.ok()) return ns.status();
  election::LeaseElectorOptions elector_options;
  elector_options.name = options.leader_election_id;
  elector_options.identity = election::DefaultIdentity();
  elector_options.lease_duration = std::chrono::seconds(options.lease_duration_seconds);
  elector_options.renew_deadline = std::chrono::seconds(options.renew_deadline_seconds);
  elector_options.retry_period = std::chrono::seconds(options.retry_period_seconds);
  leadership->observer_ = metrics::NewLeadershipObserver(metrics);
  elector_options.observer = leadership->observer_.get();

  // Its own client: no retries (the elector retries every retry period) and no request
  // outliving the renew deadline.
  client::ClientOptions client_options;
  client_options.max_retries = 0;
  client_options.request_timeout = elector_options.renew_deadline;
  auto client = client::ApiClient::Create(config, client_options);
  if (!client.ok()) return client.status();
  leadership->client_ = std::move(*client);
  leadership->client_->SetRequestObserver(metrics.RestClientRequestObserver(config.server));
  leadership->lock_ = std::make_unique<election::ApiLeaseLock>(*leadership->client_, *ns,
                                                               options.leader_election_id);

  Leadership* self = leadership.get();
  election::LeaderCallbacks callbacks;
  callbacks.on_stopped_leading = [self] { self->run_stop_.request_stop(); };
  auto elector = election::LeaseElector::Create(elector_options, *leadership->lock_, callbacks);
  if (!elector.ok()) {
    return Status::Config(elector.status().message() +
                          " (--leader-election-lease-duration > --leader-election-renew-deadline "
                          "> 1.2 x --leader-election-retry-period)");
  }
  leadership->elector_ = std::move(*elector);
  return leadership;
}

Leadership::~Leadership() { Finish(); }

void Leadership::GuardWrites(client::ApiClient& client) {
  if (!elector_) return;
  client.SetWriteGuard([elector = elector_.get()] { return elector->CheckLeading(); });
}

void Leadership::Start() {
  if (!elector_ || thread_.joinable()) return;
  spdlog::info("leader election: Lease {}, identity {}; a standby until it leads",
               lock_->Describe(), elector_->identity());
  thread_ = std::thread([this] { ran_ = elector_->Run(elector_stop_.get_token()); });
}

bool Leadership::AwaitLeading(const std::stop_token& stop) {
  if (!elector_) return !stop.stop_requested();
  return elector_->AwaitLeading(stop);
}

bool Leadership::Finish() {
  if (!elector_ || finished_) return !lost_;
  finished_ = true;
  elector_stop_.request_stop();
  if (thread_.joinable()) thread_.join();
  if (!ran_.ok()) {
    lost_ = true;
    spdlog::error("{}; exiting so that this replica restarts as a standby", ran_.message());
    return false;
  }
  if (Status released = elector_->Release(); !released.ok()) {
    spdlog::warn("{}; a standby takes over when the Lease expires", released.message());
  }
  return true;
}

}  // namespace dpcm::operator_main
