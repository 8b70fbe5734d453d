// The operator's leader election: acquire, renew, take over, lose, release, and the write guard.
#include "pkg/election/lease_elector.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/metrics/leadership_observer.h"
#include "pkg/metrics/metrics.h"
#include "tests/support/eventually.h"
#include "tests/support/scripted_api_server.h"

namespace dpcm::election {
namespace {

using namespace std::chrono_literals;

// One Lease in memory, shared by the locks of several replicas: resourceVersions,
// conditional writes, and scripted failures.
struct FakeLeaseStore {
  std::optional<LeaseRecord> lease;
  int64_t version = 0;
  std::deque<Status> read_failures;   // the next Gets fail with these, in order
  std::deque<Status> write_failures;  // the next Creates and Updates fail with these
  std::atomic<bool> fail_all{false};  // every call fails with a 500 while set
  int gets = 0;
  int writes = 0;

  // Replaces the Lease as another writer would (e.g. another replica's Update).
  void Overwrite(LeaseRecord record) {
    record.resource_version = std::to_string(++version);
    lease = record;
  }
};

class FakeLeaseLock final : public LeaseLock {
 public:
  explicit FakeLeaseLock(FakeLeaseStore& store) : store_(store) {}

  Result<LeaseRecord> Get() override {
    ++store_.gets;
    if (Status failed = NextFailure(store_.read_failures); !failed.ok()) return failed;
    if (!store_.lease) return Status::NotFound("leases \"dpcm-operator\" not found");
    return *store_.lease;
  }
  Result<LeaseRecord> Create(const LeaseRecord& record) override {
    ++store_.writes;
    if (Status failed = NextFailure(store_.write_failures); !failed.ok()) return failed;
    if (store_.lease) return Status(StatusCode::kAlreadyExists, "already exists");
    store_.Overwrite(record);
    return *store_.lease;
  }
  Result<LeaseRecord> Update(const LeaseRecord& record) override {
    ++store_.writes;
    if (Status failed = NextFailure(store_.write_failures); !failed.ok()) return failed;
    if (!store_.lease) return Status::NotFound("leases \"dpcm-operator\" not found");
    if (record.resource_version != store_.lease->resource_version) {
      return Status::Conflict("the object has been modified");
    }
    store_.Overwrite(record);
    return *store_.lease;
  }
  std::string Describe() const override { return "ns/dpcm-operator"; }

 private:
  Status NextFailure(std::deque<Status>& failures) {
    if (store_.fail_all) return Status(StatusCode::kServerError, "etcd is down");
    if (failures.empty()) return Status::Ok();
    Status next = failures.front();
    failures.pop_front();
    return next;
  }
  FakeLeaseStore& store_;
};

// What the callbacks saw.
struct Seen {
  std::atomic<int> started{0};
  std::atomic<int> stopped{0};
  std::vector<std::string> leaders;
};

// One replica: its own clock, lock (on the shared store) and elector, with 4/3/1 s timings.
struct Replica {
  FakeClock clock;
  FakeLeaseLock lock;
  Seen seen;
  metrics::Metrics metrics;
  std::unique_ptr<LeadershipObserver> observer = metrics::NewLeadershipObserver(metrics);
  std::unique_ptr<LeaseElector> elector;

  Replica(FakeLeaseStore& store, const std::string& identity) : lock(store) {
    LeaseElectorOptions options;
    options.name = "dpcm-operator";
    options.identity = identity;
    options.lease_duration = 4s;
    options.renew_deadline = 3s;
    options.retry_period = 1s;
    options.clock = &clock;
    options.observer = observer.get();
    auto created = LeaseElector::Create(
        options, lock,
        {.on_started_leading = [this] { ++seen.started; },
         .on_stopped_leading = [this] { ++seen.stopped; },
         .on_new_leader = [this](const std::string& who) { seen.leaders.push_back(who); }});
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
    elector = std::move(*created);
  }
  double MasterStatus() { return metrics.LeaderElectionMasterStatus("dpcm-operator").Value(); }
};

Result<std::unique_ptr<LeaseElector>> CreateWith(LeaseLock& lock, std::chrono::milliseconds lease,
                                                 std::chrono::milliseconds renew,
                                                 std::chrono::milliseconds retry,
                                                 std::string identity = "a") {
  LeaseElectorOptions options;
  options.name = "dpcm-operator";
  options.identity = std::move(identity);
  options.lease_duration = lease;
  options.renew_deadline = renew;
  options.retry_period = retry;
  return LeaseElector::Create(options, lock);
}

TEST_CASE("LeaseElector validates LeaseDuration > RenewDeadline > 1.2 x RetryPeriod") {
  FakeLeaseStore store;
  FakeLeaseLock lock(store);
  CHECK(CreateWith(lock, 15s, 10s, 2s).ok());
  CHECK(CreateWith(lock, 4s, 3s, 1s).ok());

  auto equal = CreateWith(lock, 10s, 10s, 2s);
  REQUIRE_FALSE(equal.ok());
  CHECK(equal.status().code() == StatusCode::kConfig);
  CHECK(equal.status().message().find("lease duration (10s) must be greater than the renew "
                                      "deadline (10s)") != std::string::npos);
  CHECK_FALSE(CreateWith(lock, 5s, 10s, 2s).ok());

  auto jitter = CreateWith(lock, 15s, 1200ms, 1s);  // 1.2 s is not > 1.2 x 1 s
  REQUIRE_FALSE(jitter.ok());
  CHECK(jitter.status().code() == StatusCode::kConfig);
  CHECK(jitter.status().message().find("1.2 x the retry period (1s)") != std::string::npos);
  CHECK(CreateWith(lock, 15s, 1201ms, 1s).ok());

  CHECK_FALSE(CreateWith(lock, 15s, 10s, 0s).ok());
  CHECK_FALSE(CreateWith(lock, 15s, 10s, 2s, "").ok());
  CHECK(store.gets + store.writes == 0);  // validation never touches the Lease
}

TEST_CASE("DefaultIdentity is the host name and a random suffix, unique per call") {
  const std::string a = DefaultIdentity();
  const std::string b = DefaultIdentity();
  CHECK(a != b);
  REQUIRE(a.find('_') != std::string::npos);
  CHECK(a.size() > a.find('_') + 8);
}

TEST_CASE("a candidate creates an absent Lease and leads") {
  FakeLeaseStore store;
  Replica a(store, "a");
  CHECK_FALSE(a.elector->IsLeader());
  CHECK(a.MasterStatus() == 0);
  CHECK(a.elector->TryAcquireOrRenew());
  CHECK(a.elector->IsLeader());
  CHECK(a.elector->CheckLeading().ok());
  CHECK(a.elector->leader() == "a");
  REQUIRE(store.lease.has_value());
  CHECK(store.lease->holder == "a");
  CHECK(store.lease->lease_duration_seconds == 4);
  CHECK(store.lease->transitions == 0);
  CHECK(store.lease->renew_time == a.clock.WallNow());
  CHECK(a.seen.started == 1);
  CHECK(a.seen.leaders == std::vector<std::string>{"a"});
  CHECK(a.MasterStatus() == 1);
}

TEST_CASE(
    "the leader renews: renewTime moves, acquireTime and transitions stay, the guard extends") {
  FakeLeaseStore store;
  Replica a(store, "a");
  REQUIRE(a.elector->TryAcquireOrRenew());
  const auto acquired = store.lease->acquire_time;
  for (int i = 0; i < 5; ++i) {
    a.clock.Advance(1s);
    REQUIRE(a.elector->TryAcquireOrRenew());
  }
  CHECK(store.lease->acquire_time == acquired);
  CHECK(store.lease->renew_time == a.clock.WallNow());
  CHECK(store.lease->transitions == 0);
  CHECK(a.seen.started == 1);  // one term, not one per renewal
  a.clock.Advance(2999ms);     // just short of RenewDeadline since the last renewal
  CHECK(a.elector->IsLeader());
  a.clock.Advance(1ms);
  CHECK_FALSE(a.elector->IsLeader());
}

TEST_CASE("a standby observes the leader and does not take a Lease that is being renewed") {
  FakeLeaseStore store;
  Replica a(store, "a");
  Replica b(store, "b");
  REQUIRE(a.elector->TryAcquireOrRenew());
  for (int i = 0; i < 10; ++i) {
    CHECK_FALSE(b.elector->TryAcquireOrRenew());
    a.clock.Advance(1s);
    b.clock.Advance(1s);
    REQUIRE(a.elector->TryAcquireOrRenew());
  }
  CHECK(b.elector->leader() == "a");
  CHECK(b.seen.leaders == std::vector<std::string>{"a"});
  CHECK(b.seen.started == 0);
  CHECK_FALSE(b.elector->IsLeader());
  CHECK_FALSE(b.elector->CheckLeading().ok());
  CHECK(store.lease->holder == "a");
}

TEST_CASE("a standby takes over only after LeaseDuration without change on its own clock") {
  FakeLeaseStore store;
  Replica a(store, "a");
  REQUIRE(a.elector->TryAcquireOrRenew());
  // The leader's renewTime says it is long expired by any wall clock: the standby must
  // not trust it, only its own observation.
  LeaseRecord stale = *store.lease;
  stale.renew_time = *stale.renew_time - 24h;
  store.Overwrite(stale);

  Replica b(store, "b");
  CHECK_FALSE(b.elector->TryAcquireOrRenew());  // first seen now
  b.clock.Advance(3999ms);
  CHECK_FALSE(b.elector->TryAcquireOrRenew());
  CHECK(store.lease->holder == "a");

  SUBCASE("the leader renews just in time: the standby's wait starts over") {
    a.clock.Advance(3500ms);
    LeaseRecord renewed = *store.lease;
    renewed.renew_time = a.clock.WallNow();
    store.Overwrite(renewed);  // any change of the record restarts the standby's wait
    b.clock.Advance(1ms);
    CHECK_FALSE(b.elector->TryAcquireOrRenew());
    b.clock.Advance(3999ms);
    CHECK_FALSE(b.elector->TryAcquireOrRenew());
    b.clock.Advance(1ms);
    CHECK(b.elector->TryAcquireOrRenew());
  }
  SUBCASE("no change for LeaseDuration: the standby takes over") {
    b.clock.Advance(1ms);
    CHECK(b.elector->TryAcquireOrRenew());
  }
  CHECK(b.elector->IsLeader());
  CHECK(store.lease->holder == "b");
  CHECK(store.lease->transitions == 1);
  CHECK(store.lease->acquire_time == b.clock.WallNow());
  CHECK(b.seen.started == 1);
  CHECK(b.seen.leaders == std::vector<std::string>{"a", "b"});
  CHECK(b.MasterStatus() == 1);

  // The deposed leader's next round sees the new holder and stops at once.
  a.clock.Advance(1s);
  CHECK_FALSE(a.elector->TryAcquireOrRenew());
  CHECK_FALSE(a.elector->IsLeader());
  CHECK(a.seen.stopped == 1);
  CHECK(a.MasterStatus() == 0);
}

TEST_CASE("a leader whose renewals fail loses leadership when RenewDeadline passes") {
  FakeLeaseStore store;
  Replica a(store, "a");
  REQUIRE(a.elector->TryAcquireOrRenew());
  SUBCASE("the API answers 500") { store.fail_all = true; }
  SUBCASE("every update conflicts") {
    store.write_failures.assign(6, Status::Conflict("the object has been modified"));
  }
  for (int i = 0; i < 2; ++i) {
    a.clock.Advance(1s);
    CHECK_FALSE(a.elector->TryAcquireOrRenew());
    CHECK(a.elector->IsLeader());  // within the deadline the leader keeps working
  }
  a.clock.Advance(999ms);
  CHECK(a.elector->IsLeader());
  a.clock.Advance(1ms);  // RenewDeadline after the last successful renewal started
  CHECK_FALSE(a.elector->IsLeader());
  auto refused = a.elector->CheckLeading();
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.message().find("does not hold the leader Lease dpcm-operator") !=
        std::string::npos);
}

TEST_CASE("Run returns an error and calls OnStoppedLeading when renewals fail past the deadline") {
  FakeLeaseStore store;
  Replica a(store, "a");
  std::stop_source stop;
  Status ran = Status::Internal("not run");
  std::thread runner([&] { ran = a.elector->Run(stop.get_token()); });
  REQUIRE(a.elector->AwaitLeading(stop.get_token()));
  CHECK(testing::Eventually([&] { return a.seen.started == 1; }));  // the callback's thread
  store.fail_all = true;
  // Drive the clock until Run gives up; each step lets the elector's sleep end.
  CHECK(testing::Eventually(
      [&] {
        a.clock.Advance(100ms);
        return !a.elector->IsLeader() && a.seen.stopped == 1;
      },
      10s, 1ms));
  runner.join();
  CHECK(ran.code() == StatusCode::kCancelled);
  CHECK(ran.message().find("leadership lost") != std::string::npos);
  CHECK(a.MasterStatus() == 0);
  CHECK_FALSE(a.elector->AwaitLeading(stop.get_token()));  // Run has ended
}

TEST_CASE("Run stops on request still holding the Lease and Release hands it over at once") {
  FakeLeaseStore store;
  Replica a(store, "a");
  Replica b(store, "b");
  std::stop_source stop;
  Status ran = Status::Internal("not run");
  std::thread runner([&] { ran = a.elector->Run(stop.get_token()); });
  REQUIRE(a.elector->AwaitLeading(stop.get_token()));
  CHECK_FALSE(b.elector->TryAcquireOrRenew());
  stop.request_stop();
  runner.join();
  CHECK(ran.ok());
  CHECK(a.elector->IsLeader());  // until Release: the caller stops its work first
  CHECK(store.lease->holder == "a");

  REQUIRE(a.elector->Release().ok());
  CHECK_FALSE(a.elector->IsLeader());
  CHECK(a.seen.stopped == 1);
  CHECK(a.MasterStatus() == 0);
  CHECK(store.lease->holder.empty());
  CHECK(store.lease->lease_duration_seconds == 1);

  // The standby takes the released Lease on its next round, without waiting.
  CHECK(b.elector->TryAcquireOrRenew());
  CHECK(store.lease->holder == "b");
  CHECK(store.lease->transitions == 1);
  CHECK(b.seen.leaders == std::vector<std::string>{"a", "", "b"});

  // Releasing a Lease one does not hold writes nothing.
  const int writes = store.writes;
  CHECK(a.elector->Release().ok());
  CHECK(store.writes == writes);
}

TEST_CASE("a Create race lost to another replica is not leadership") {
  FakeLeaseStore store;
  Replica a(store, "a");
  Replica b(store, "b");
  store.read_failures = {Status::NotFound("not yet")};  // a's read predates b's create
  LeaseRecord by_b;
  by_b.holder = "b";
  by_b.lease_duration_seconds = 4;
  by_b.renew_time = b.clock.WallNow();
  store.Overwrite(by_b);
  CHECK_FALSE(a.elector->TryAcquireOrRenew());
  CHECK_FALSE(a.elector->IsLeader());
  CHECK(a.seen.started == 0);
  CHECK(store.lease->holder == "b");
}

// Answers every request with 200 "{}" and counts them by method.
class CountingServer {
 public:
  CountingServer() {
    auto handler = [this](const httplib::Request& request, httplib::Response& response) {
      {
        std::lock_guard lock(mutex_);
        ++counts_[request.method];
      }
      response.set_content("{}", "application/json");
    };
    const std::string any = ".*";
    server_.Get(any, handler);
    server_.Post(any, handler);
    server_.Put(any, handler);
    server_.Patch(any, handler);
    server_.Delete(any, handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~CountingServer() {
    server_.stop();
    thread_.join();
  }
  CountingServer(const CountingServer&) = delete;
  CountingServer& operator=(const CountingServer&) = delete;

  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int count(const std::string& method) {
    std::lock_guard lock(mutex_);
    return counts_[method];
  }
  int writes() { return count("POST") + count("PUT") + count("PATCH") + count("DELETE"); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, int> counts_;  // guarded by mutex_
};

TEST_CASE("the write guard keeps a non-leader's ApiClient from sending any write") {
  CountingServer server;
  restconfig::RestConfig config;
  config.server = server.url();
  client::ClientOptions client_options;
  client_options.qps = 0;
  client_options.max_retries = 0;
  auto api = client::ApiClient::Create(config, client_options);
  REQUIRE(api.ok());

  FakeLeaseStore store;
  Replica a(store, "a");
  (*api)->SetWriteGuard([&] { return a.elector->CheckLeading(); });
  const client::Json map = testing::ConfigMapObject("x", "1");
  const auto configmaps = client::resources::ConfigMaps();
  // Every mutating verb, each returning whether it was refused by the guard.
  auto refused = [&] {
    std::vector<Status> results = {
        (*api)->Create(configmaps, "ns", map).status(),
        (*api)->Update(configmaps, "ns", map).status(),
        (*api)->Patch(configmaps, "ns", "x", client::PatchType::kMerge, map).status(),
        (*api)->Delete(configmaps, "ns", "x").status()};
    int count = 0;
    for (const auto& status : results) count += status.code() == StatusCode::kCancelled ? 1 : 0;
    return count;
  };

  auto created = (*api)->Create(configmaps, "ns", map);
  REQUIRE_FALSE(created.ok());
  CHECK(created.status().code() == StatusCode::kCancelled);
  CHECK(created.status().message().find("POST /api/v1/namespaces/ns/configmaps") !=
        std::string::npos);
  CHECK(refused() == 4);
  CHECK(server.writes() == 0);                     // nothing went on the wire
  CHECK((*api)->Get(configmaps, "ns", "x").ok());  // reads are never guarded
  CHECK(server.count("GET") == 1);

  REQUIRE(a.elector->TryAcquireOrRenew());
  CHECK(refused() == 0);
  CHECK(server.writes() == 4);

  // Past the renew deadline the guard closes again, before the elector even notices.
  a.clock.Advance(3s);
  CHECK(refused() == 4);
  CHECK(server.writes() == 4);
  api->reset();
}

}  // namespace
}  // namespace dpcm::election
