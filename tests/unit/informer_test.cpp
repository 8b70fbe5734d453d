// Watcher and Informer against a scripted API server: ordering, resume, relist, retries.
#include "pkg/cache/informer.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/watch/watcher.h"
#include "tests/support/scripted_api_server.h"

namespace dpcm::cache {
namespace {

using namespace std::chrono_literals;
using Json = nlohmann::json;
using testing::BookmarkLine;
using testing::ConfigMapList;
using testing::ConfigMapObject;
using testing::EventLine;
using testing::GoneLine;
using testing::ListReply;
using testing::ScriptedApiServer;
using testing::StatusObject;
using testing::WatchReply;

constexpr auto kWait = 5s;  // an upper bound for things that take milliseconds

// A scripted server and a client for it. Members are destroyed client first, so no
// keep-alive connection outlives the server.
struct Api {
  Api() {
    restconfig::RestConfig config;
    config.server = server.url();
    client::ClientOptions options;
    options.qps = 0;          // no client-side limiting in unit tests
    options.max_retries = 0;  // the watcher's own backoff is under test, not the client's
    options.request_timeout = 5000ms;
    auto created = client::ApiClient::Create(config, options);
    REQUIRE_MESSAGE(created.ok(), created.status().ToString());
    client = std::move(*created);
  }
  ScriptedApiServer server;
  std::unique_ptr<client::ApiClient> client;
};

InformerOptions FastOptions() {
  InformerOptions options;
  options.watcher.initial_backoff = 10ms;
  options.watcher.max_backoff = 50ms;
  return options;
}

std::string Describe(const ObjectPtr& object) {
  const Json& metadata = (*object)["metadata"];
  const auto rv = metadata.find("resourceVersion");
  return metadata.value("name", "") + "@" +
         (rv == metadata.end() ? ""
          : rv->is_string()    ? rv->get<std::string>()
                               : rv->dump());
}

// Records handler calls as "add a@1", "update a@1->a@7", "delete b@8".
class HandlerLog {
 public:
  InformerHandlers Handlers() {
    return {
        [this](const ObjectPtr& object) { Add("add " + Describe(object)); },
        [this](const ObjectPtr& old_object, const ObjectPtr& new_object) {
          Add("update " + Describe(old_object) + "->" + Describe(new_object));
        },
        [this](const ObjectPtr& object) { Add("delete " + Describe(object)); },
    };
  }
  // Waits until `count` calls were recorded; returns them (fewer on timeout).
  std::vector<std::string> WaitFor(size_t count, std::chrono::milliseconds timeout = kWait) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, timeout, [&] { return lines_.size() >= count; });
    return lines_;
  }
  std::vector<std::string> Lines() {
    std::lock_guard lock(mutex_);
    return lines_;
  }

 private:
  void Add(std::string line) {
    {
      std::lock_guard lock(mutex_);
      lines_.push_back(std::move(line));
    }
    changed_.notify_all();
  }
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::string> lines_;
};

using Lines = std::vector<std::string>;

TEST_CASE("informer lists, then applies ADDED, MODIFIED and DELETED in order") {
  Api api;
  Json a = ConfigMapObject("a", "1");
  a["metadata"]["managedFields"] = Json::array({{{"manager", "kubectl"}}});
  api.server.ScriptList({200, ConfigMapList("5", {a, ConfigMapObject("b", "2")})});
  WatchReply stream;
  stream.lines = {EventLine("ADDED", ConfigMapObject("c", "6")),
                  EventLine("MODIFIED", ConfigMapObject("a", "7")),
                  EventLine("DELETED", ConfigMapObject("b", "8"))};
  stream.pause = 2ms;
  stream.hold_open = true;
  api.server.ScriptWatch(stream);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(informer.WaitForSync(kWait));
  const auto lines = log.WaitFor(5);
  CHECK(lines == Lines{"add a@1", "add b@2", "add c@6", "update a@1->a@7", "delete b@8"});

  const Store& store = informer.store();
  CHECK(store.size() == 2);
  REQUIRE(store.Get("ns", "a") != nullptr);
  CHECK((*store.Get("ns", "a"))["metadata"]["resourceVersion"] == "7");
  CHECK(store.Get("ns", "b") == nullptr);
  CHECK(store.Get("ns", "c") != nullptr);
  CHECK(informer.watcher().resource_version() == "8");
  informer.Stop();

  // The list is a paged, quorum read; the watch starts at the list's resourceVersion.
  const auto lists = api.server.list_requests();
  REQUIRE(lists.size() == 1);
  CHECK_FALSE(lists[0].HasParam("watch"));
  CHECK_FALSE(lists[0].HasParam("resourceVersion"));
  CHECK(lists[0].Param("limit") == "500");
  const auto watches = api.server.watch_requests();
  REQUIRE(watches.size() == 1);
  CHECK(watches[0].Param("resourceVersion") == "5");
  CHECK(watches[0].Param("allowWatchBookmarks") == "true");
  CHECK_FALSE(watches[0].HasParam("limit"));
  const int timeout = std::stoi(watches[0].Param("timeoutSeconds"));
  CHECK(timeout >= 300);
  CHECK(timeout <= 600);
}

TEST_CASE("informer drops managedFields before caching") {
  Api api;
  Json a = ConfigMapObject("a", "1");
  a["metadata"]["managedFields"] = Json::array({{{"manager", "kubectl"}}});
  api.server.ScriptList({200, ConfigMapList("5", {a})});
  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  informer.Start();
  REQUIRE(informer.WaitForSync(kWait));
  const auto cached = informer.store().Get("ns", "a");
  REQUIRE(cached != nullptr);
  CHECK_FALSE((*cached)["metadata"].contains("managedFields"));
  CHECK((*cached)["metadata"]["name"] == "a");
  informer.Stop();
}

TEST_CASE("informer HasSynced and WaitForSync wait for the first successful list") {
  Api api;
  api.server.ScriptList({503, StatusObject(503, "ServiceUnavailable", "etcd is down")});
  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  CHECK_FALSE(informer.HasSynced());

  // A stopped wait returns at once.
  std::stop_source stopped;
  stopped.request_stop();
  const auto before = std::chrono::steady_clock::now();
  CHECK_FALSE(informer.WaitForSync(kWait, stopped.get_token()));
  CHECK(std::chrono::steady_clock::now() - before < 1s);

  informer.Start();
  REQUIRE(api.server.WaitForListRequests(2, kWait));  // failing, and retrying
  CHECK_FALSE(informer.WaitForSync(20ms));
  CHECK_FALSE(informer.HasSynced());
  CHECK(informer.store().size() == 0);

  api.server.ScriptList({200, ConfigMapList("9", {ConfigMapObject("a", "9")})});
  CHECK(informer.WaitForSync(kWait));
  CHECK(informer.HasSynced());
  CHECK(informer.store().Get("ns", "a") != nullptr);
  CHECK(log.WaitFor(1) == Lines{"add a@9"});
  informer.Stop();
}

TEST_CASE("a watch stream that ends is resumed from the last resourceVersion") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});
  WatchReply first;  // ends by itself, as at timeoutSeconds
  first.lines = {EventLine("ADDED", ConfigMapObject("b", "6")),
                 EventLine("MODIFIED", ConfigMapObject("a", "7"))};
  api.server.ScriptWatch(first);
  WatchReply second;
  second.lines = {EventLine("ADDED", ConfigMapObject("c", "8"))};
  second.hold_open = true;
  api.server.ScriptWatch(second);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(log.WaitFor(4) == Lines{"add a@1", "add b@6", "update a@1->a@7", "add c@8"});
  informer.Stop();

  const auto watches = api.server.watch_requests();
  REQUIRE(watches.size() == 2);
  CHECK(watches[0].Param("resourceVersion") == "5");
  CHECK(watches[1].Param("resourceVersion") == "7");
  CHECK(api.server.list_requests().size() == 1);  // resumed, not relisted
  CHECK(informer.watcher().lists() == 1);
}

TEST_CASE("a 410 ERROR event relists and the new list replaces the store") {
  Api api;
  api.server.ScriptList(
      {200, ConfigMapList("5", {ConfigMapObject("a", "1"), ConfigMapObject("b", "2")})});
  api.server.ScriptList(
      {200, ConfigMapList("20", {ConfigMapObject("b", "12"), ConfigMapObject("d", "15")})});
  WatchReply first;
  first.lines = {EventLine("ADDED", ConfigMapObject("c", "6")), GoneLine(),
                 EventLine("ADDED", ConfigMapObject("never", "7"))};  // after the error: unread
  first.hold_open = true;
  api.server.ScriptWatch(first);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  const auto lines = log.WaitFor(7);
  // After the relist only the differences are reported: b changed, d is new, a and c
  // vanished while the watch was broken.
  CHECK(lines == Lines{"add a@1", "add b@2", "add c@6", "update b@2->b@12", "add d@15",
                       "delete a@1", "delete c@6"});
  REQUIRE(api.server.WaitForWatchRequests(2, kWait));
  const Store& store = informer.store();
  CHECK(store.size() == 2);
  CHECK(store.Get("ns", "a") == nullptr);
  CHECK(store.Get("ns", "c") == nullptr);
  CHECK(store.Get("ns", "never") == nullptr);
  REQUIRE(store.Get("ns", "b") != nullptr);
  CHECK((*store.Get("ns", "b"))["metadata"]["resourceVersion"] == "12");
  CHECK(store.Get("ns", "d") != nullptr);
  informer.Stop();

  CHECK(api.server.list_requests().size() == 2);
  const auto watches = api.server.watch_requests();
  CHECK(watches[0].Param("resourceVersion") == "5");
  CHECK(watches[1].Param("resourceVersion") == "20");
}

TEST_CASE("an HTTP 410 answer to a watch relists too") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});
  api.server.ScriptList({200, ConfigMapList("30", {ConfigMapObject("b", "25")})});
  WatchReply gone;
  gone.http_status = 410;
  gone.error_body = StatusObject(410, "Expired", "too old resource version: 5 (25)");
  api.server.ScriptWatch(gone);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(log.WaitFor(3) == Lines{"add a@1", "add b@25", "delete a@1"});
  REQUIRE(api.server.WaitForWatchRequests(2, kWait));
  CHECK(informer.store().size() == 1);
  CHECK(informer.store().Get("ns", "b") != nullptr);
  informer.Stop();
  CHECK(informer.watcher().lists() == 2);
  CHECK(api.server.watch_requests()[1].Param("resourceVersion") == "30");
}

TEST_CASE("a garbage line in a watch stream is skipped and later events still arrive") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {})});
  WatchReply stream;
  stream.lines = {EventLine("ADDED", ConfigMapObject("a", "6")), "<html>proxy error</html>",
                  R"({"type":"ADDED","object":)", EventLine("SURPRISE", ConfigMapObject("x", "7")),
                  EventLine("ADDED", ConfigMapObject("b", "8"))};
  stream.hold_open = true;
  api.server.ScriptWatch(stream);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(log.WaitFor(2) == Lines{"add a@6", "add b@8"});
  CHECK(informer.store().size() == 2);
  CHECK(informer.watcher().resource_version() == "8");
  informer.Stop();
  // Skipping a line is not a reason to reconnect or relist.
  CHECK(api.server.watch_requests().size() == 1);
  CHECK(api.server.list_requests().size() == 1);
}

TEST_CASE("a BOOKMARK advances the resourceVersion without a handler call") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});
  WatchReply first;
  first.lines = {BookmarkLine("50")};
  api.server.ScriptWatch(first);  // then ends

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  REQUIRE(api.server.WaitForWatchRequests(2, kWait));
  CHECK(informer.watcher().resource_version() == "50");
  informer.Stop();
  CHECK(log.Lines() == Lines{"add a@1"});
  CHECK(informer.store().size() == 1);
  CHECK(api.server.watch_requests()[1].Param("resourceVersion") == "50");
}

TEST_CASE("a failing list is retried with backoff until it succeeds") {
  Api api;
  const auto error = StatusObject(500, "InternalError", "etcdserver: request timed out");
  api.server.ScriptList({500, error});
  api.server.ScriptList({500, error});
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(informer.WaitForSync(kWait));
  CHECK(log.WaitFor(1) == Lines{"add a@1"});
  REQUIRE(api.server.WaitForWatchRequests(1, kWait));
  informer.Stop();

  const auto lists = api.server.list_requests();
  REQUIRE(lists.size() == 3);
  CHECK(informer.watcher().lists() == 3);
  // Backoff with jitter on the upper half: >= 5 ms after the first failure (initial
  // 10 ms), >= 10 ms after the second (doubled).
  CHECK(lists[1].received_at - lists[0].received_at >= 5ms);
  CHECK(lists[2].received_at - lists[1].received_at >= 10ms);
  CHECK(api.server.watch_requests()[0].Param("resourceVersion") == "5");
}

TEST_CASE("a watch answered with 500 is retried from the same resourceVersion") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});
  WatchReply failing;
  failing.http_status = 500;
  failing.error_body = StatusObject(500, "InternalError", "boom");
  api.server.ScriptWatch(failing);
  WatchReply recovered;
  recovered.lines = {EventLine("ADDED", ConfigMapObject("b", "6"))};
  recovered.hold_open = true;
  api.server.ScriptWatch(recovered);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(log.WaitFor(2) == Lines{"add a@1", "add b@6"});
  informer.Stop();
  const auto watches = api.server.watch_requests();
  REQUIRE(watches.size() == 2);
  CHECK(watches[1].Param("resourceVersion") == "5");
  CHECK(watches[1].received_at - watches[0].received_at >= 5ms);
  CHECK(api.server.list_requests().size() == 1);  // a 500 is not a reason to relist
}

TEST_CASE("an ERROR event that is not a well-formed Status is retried, not fatal") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});
  WatchReply odd;
  odd.lines = {EventLine(
      "ERROR",
      {{"kind", "Status"}, {"code", "500"}, {"reason", Json::array({"x"})}, {"message", 7}})};
  odd.hold_open = true;
  api.server.ScriptWatch(odd);
  WatchReply recovered;
  recovered.lines = {EventLine("ADDED", ConfigMapObject("b", "6"))};
  recovered.hold_open = true;
  api.server.ScriptWatch(recovered);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  CHECK(log.WaitFor(2) == Lines{"add a@1", "add b@6"});
  informer.Stop();
  const auto watches = api.server.watch_requests();
  REQUIRE(watches.size() == 2);
  CHECK(watches[1].Param("resourceVersion") == "5");
  CHECK(api.server.list_requests().size() == 1);
}

TEST_CASE("a relist of objects whose resourceVersion is not a string does not crash") {
  Api api;
  Json a = ConfigMapObject("a", "");
  a["metadata"]["resourceVersion"] = 5;
  api.server.ScriptList({200, ConfigMapList("5", {a})});
  WatchReply gone;
  gone.lines = {GoneLine()};
  api.server.ScriptWatch(gone);

  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  HandlerLog log;
  informer.AddHandlers(log.Handlers());
  informer.Start();
  REQUIRE(api.server.WaitForWatchRequests(2, kWait));  // relisted, then watching again
  informer.Stop();
  CHECK(api.server.list_requests().size() == 2);
  CHECK(log.Lines() == Lines{"add a@5"});
  CHECK(informer.store().Get("ns", "a") != nullptr);
}

TEST_CASE("informer Stop returns promptly while a watch is open and idle") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {})});
  Informer informer(*api.client, client::resources::ConfigMaps(), "ns", FastOptions());
  informer.Start();
  REQUIRE(informer.WaitForSync(kWait));
  REQUIRE(api.server.WaitForWatchRequests(1, kWait));
  const auto before = std::chrono::steady_clock::now();
  informer.Stop();
  CHECK(std::chrono::steady_clock::now() - before < 1s);
  informer.Stop();  // a second Stop is harmless
}

// --- Watcher on its own: the events a cache builds on ---

struct RecordedWatcherEvent {
  watch::WatcherEventType type;
  std::string name;
};

// Runs a Watcher on its own thread and records its events.
class RunningWatcher {
 public:
  RunningWatcher(client::ApiClient& api, watch::WatcherOptions options)
      : watcher_(api, client::resources::ConfigMaps(), "ns", std::move(options)) {
    thread_ = std::jthread([this](const std::stop_token& stop) {
      watcher_.Run(stop, [this](watch::WatcherEvent&& event) {
        std::string name;
        if (event.object.is_object()) name = event.object["metadata"].value("name", "");
        {
          std::lock_guard lock(mutex_);
          events_.push_back({event.type, name});
        }
        changed_.notify_all();
      });
    });
  }
  std::vector<RecordedWatcherEvent> WaitFor(size_t count) {
    std::unique_lock lock(mutex_);
    changed_.wait_for(lock, kWait, [&] { return events_.size() >= count; });
    return events_;
  }
  void Stop() {
    thread_.request_stop();
    if (thread_.joinable()) thread_.join();
  }
  const watch::Watcher& watcher() const { return watcher_; }

 private:
  watch::Watcher watcher_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<RecordedWatcherEvent> events_;
  std::jthread thread_;  // last: joined before the rest is destroyed
};

std::vector<std::string> Summary(const std::vector<RecordedWatcherEvent>& events) {
  static constexpr const char* kNames[] = {"InitStart", "InitApply", "InitDone", "Apply", "Delete"};
  std::vector<std::string> out;
  for (const auto& event : events) {
    std::string line = kNames[static_cast<int>(event.type)];
    if (!event.name.empty()) line += " " + event.name;
    out.push_back(line);
  }
  return out;
}

TEST_CASE("watcher brackets every list with InitStart and InitDone") {
  Api api;
  api.server.ScriptList(
      {200, ConfigMapList("5", {ConfigMapObject("a", "1"), ConfigMapObject("b", "2")})});
  api.server.ScriptList({200, ConfigMapList("9", {ConfigMapObject("c", "9")})});
  WatchReply first;
  first.lines = {EventLine("DELETED", ConfigMapObject("a", "6")), GoneLine()};
  api.server.ScriptWatch(first);

  watch::WatcherOptions options;
  options.initial_backoff = 10ms;
  options.max_backoff = 50ms;
  RunningWatcher running(*api.client, options);
  const auto events = running.WaitFor(8);
  running.Stop();
  CHECK(Summary(events) == Lines{"InitStart", "InitApply a", "InitApply b", "InitDone", "Delete a",
                                 "InitStart", "InitApply c", "InitDone"});
}

TEST_CASE("watcher lists page by page and starts over when a page's snapshot expired") {
  Api api;
  auto page = [](const std::string& rv, const std::vector<Json>& items, const std::string& next) {
    Json list = ConfigMapList(rv, items);
    if (!next.empty()) list["metadata"]["continue"] = next;
    return list;
  };
  api.server.ScriptList(
      {200, page("5", {ConfigMapObject("a", "1"), ConfigMapObject("b", "2")}, "t1")});
  api.server.ScriptList({410, StatusObject(410, "Expired", "the continue token expired")});
  api.server.ScriptList({200, page("7", {ConfigMapObject("a", "1")}, "t2")});
  api.server.ScriptList({200, page("7", {ConfigMapObject("c", "7")}, "")});

  watch::WatcherOptions options;
  options.initial_backoff = 10ms;
  options.max_backoff = 50ms;
  RunningWatcher running(*api.client, options);
  const auto events = running.WaitFor(7);
  running.Stop();
  // The expired page ends the first list without an InitDone (a cache keeps its old
  // contents); the second list is whole.
  CHECK(Summary(events) == Lines{"InitStart", "InitApply a", "InitApply b", "InitStart",
                                 "InitApply a", "InitApply c", "InitDone"});
  CHECK(running.watcher().resource_version() == "7");
  std::vector<std::string> continues;
  for (const auto& request : api.server.requests()) {
    if (request.IsWatch()) continue;
    CHECK(request.Param("limit") == "500");
    continues.push_back(request.Param("continue"));
  }
  REQUIRE(continues.size() >= 4);
  CHECK(continues[0].empty());
  CHECK(continues[1] == "t1");
  CHECK(continues[2].empty());
  CHECK(continues[3] == "t2");
}

TEST_CASE("watcher starts its backoff over once a watch opens, even one without events") {
  // An API server that restarts again and again: each watch fails, then one opens and
  // ends quietly (as a restart cuts a watch that had nothing to say), then fails again.
  // The reopening must take the first backoff step, not the grown one.
  Api api;
  api.server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("a", "1")})});
  WatchReply failing;
  failing.http_status = 500;
  failing.error_body = StatusObject(500, "", "restarting");
  for (int i = 0; i < 6; ++i) api.server.ScriptWatch(failing);
  api.server.ScriptWatch(WatchReply{});  // opens (200), no events, ends
  api.server.ScriptWatch(failing);
  WatchReply last;
  last.lines = {EventLine("ADDED", ConfigMapObject("b", "6"))};
  last.hold_open = true;
  api.server.ScriptWatch(last);

  watch::WatcherOptions options;
  options.initial_backoff = 10ms;  // grows 10, 20, 40, 80, 160, 320 ms over six failures
  options.max_backoff = 10000ms;
  RunningWatcher running(*api.client, options);
  REQUIRE(Summary(running.WaitFor(4)).back() == "Apply b");
  running.Stop();
  std::vector<std::chrono::steady_clock::time_point> watches;
  for (const auto& request : api.server.requests()) {
    if (request.IsWatch()) watches.push_back(request.received_at);
  }
  REQUIRE(watches.size() >= 9);
  // Without the reset, the waits after the quiet stream and after the next failure
  // would be at least 160 ms and 320 ms (half the doubled backoff, with jitter).
  CHECK(watches[7] - watches[6] < 120ms);
  CHECK(watches[8] - watches[7] < 120ms);
  CHECK(watches[6] - watches[5] >= 150ms);  // the backoff did grow before
}

TEST_CASE("watcher resumes from a given resourceVersion and lists when it is gone") {
  Api api;
  api.server.ScriptList({200, ConfigMapList("200", {ConfigMapObject("a", "150")})});
  WatchReply gone;
  gone.http_status = 410;
  gone.error_body = StatusObject(410, "Expired", "too old resource version: 100 (150)");
  api.server.ScriptWatch(gone);

  watch::WatcherOptions options;
  options.resume_resource_version = "100";
  options.initial_backoff = 10ms;
  options.max_backoff = 50ms;
  RunningWatcher running(*api.client, options);
  const auto events = running.WaitFor(3);
  REQUIRE(api.server.WaitForWatchRequests(2, kWait));
  running.Stop();
  CHECK(Summary(events) == Lines{"InitStart", "InitApply a", "InitDone"});
  const auto requests = api.server.requests();
  REQUIRE(requests.size() >= 3);
  // The first request is the resumed watch, not a list.
  CHECK(requests[0].IsWatch());
  CHECK(requests[0].Param("resourceVersion") == "100");
  CHECK_FALSE(requests[1].IsWatch());
  CHECK(requests[2].Param("resourceVersion") == "200");
}

// A stop that lands between the watcher's last stop check and the socket opening must
// still end the watch; before the fix in HttpTransport::Stream it hung until the server
// closed the stream (minutes, on a quiet resource).
TEST_CASE("watcher stops promptly even when stopped while its watch is opening") {
  Api api;
  watch::WatcherOptions options;
  options.resume_resource_version = "5";  // go straight to the watch
  int hung = 0;
  std::mt19937 random(42);
  for (int i = 0; i < 300 && hung == 0; ++i) {
    watch::Watcher watcher(*api.client, client::resources::ConfigMaps(), "ns", options);
    std::mutex mutex;
    std::condition_variable finished_cv;
    bool finished = false;
    std::jthread thread([&](const std::stop_token& stop) {
      watcher.Run(stop, [](watch::WatcherEvent&&) {});
      std::lock_guard lock(mutex);
      finished = true;
      finished_cv.notify_all();
    });
    const auto spin = std::chrono::microseconds(random() % 400);
    const auto until = std::chrono::steady_clock::now() + spin;
    while (std::chrono::steady_clock::now() < until) {
    }
    thread.request_stop();
    std::unique_lock lock(mutex);
    if (!finished_cv.wait_for(lock, 2s, [&] { return finished; })) {
      ++hung;
      lock.unlock();
      api.server.Stop();  // ends the stream, so the thread can be joined
    }
  }
  CHECK(hung == 0);
}

}  // namespace
}  // namespace dpcm::cache
