// ApiClient against a scripted server: error decoding, paging, stale keep-alive connections,
// the urgent lane of the rate limiter.
#include "pkg/client/api_client.h"

#include <doctest/doctest.h>

#include <future>
#include <memory>
#include <string>
#include <thread>

#include "tests/support/observed_clock.h"
#include "tests/support/scripted_api_server.h"

namespace dpcm::client {
namespace {

using namespace std::chrono_literals;
using testing::ConfigMapList;
using testing::ConfigMapObject;
using testing::ListReply;
using testing::ScriptedApiServer;
using testing::ScriptedApiServerOptions;

std::unique_ptr<ApiClient> ClientFor(const std::string& server,
                                     std::chrono::milliseconds connect_timeout = 5000ms) {
  restconfig::RestConfig config;
  config.server = server;
  ClientOptions options;
  options.qps = 0;
  options.max_retries = 0;
  options.connect_timeout = connect_timeout;
  auto api = ApiClient::Create(config, options);
  REQUIRE_MESSAGE(api.ok(), api.status().ToString());
  return std::move(*api);
}

std::vector<std::string> Names(const Json& list) {
  std::vector<std::string> names;
  for (const auto& item : list["items"]) names.push_back(item["metadata"]["name"]);
  return names;
}

TEST_CASE("ApiClient returns the server's 404 Status as NotFound naming the request") {
  ScriptedApiServer server;
  auto api = ClientFor(server.url());
  const auto got = api->Get(resources::Pods(), "ns", "missing");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().IsNotFound());
  CHECK(got.status().http_status() == 404);
  CHECK(got.status().message().find("GET /api/v1/namespaces/ns/pods/missing") != std::string::npos);
  api.reset();  // close the keep-alive connection before the server stops
}

TEST_CASE("ApiClient reports a refused connection as a transport error") {
  int port = 0;
  {
    ScriptedApiServer server;  // find a free port, then free it again
    port = std::stoi(server.url().substr(server.url().rfind(':') + 1));
  }
  auto api = ClientFor("http://127.0.0.1:" + std::to_string(port), 500ms);
  const auto got = api->Get(resources::Pods(), "ns", "x");
  REQUIRE_FALSE(got.ok());
  CHECK(got.status().IsTransport());
}

TEST_CASE("ApiClient reuses nothing stale: a keep-alive connection the server closed") {
  ScriptedApiServerOptions options;
  options.keep_alive_timeout = std::chrono::seconds(0);  // the server drops idle connections
  ScriptedApiServer server(options);
  auto api = ClientFor(server.url());
  CHECK(api->Get(resources::ConfigMaps(), "ns", "a").status().IsNotFound());
  std::this_thread::sleep_for(50ms);  // the server closes the pooled connection meanwhile
  const auto again = api->Get(resources::ConfigMaps(), "ns", "a");
  CHECK_MESSAGE(again.status().IsNotFound(), again.status().ToString());
  api.reset();
}

// A client of `server` on `clock` with one token per 100 ms and a burst of one, which the
// request "first" has just used.
std::unique_ptr<ApiClient> ClientWithoutTokens(ScriptedApiServer& server,
                                               testing::ObservedClock& clock) {
  restconfig::RestConfig config;
  config.server = server.url();
  ClientOptions options;
  options.qps = 10;
  options.burst = 1;
  options.max_retries = 0;
  options.clock = &clock;
  auto created = ApiClient::Create(config, options);
  REQUIRE_MESSAGE(created.ok(), created.status().ToString());
  CHECK((*created)->Get(resources::ConfigMaps(), "ns", "first").status().IsNotFound());
  return std::move(*created);
}

TEST_CASE("ApiClient: a request in an UrgentScope goes before a normal one waiting for a token") {
  ScriptedApiServer server;
  testing::ObservedClock clock;
  auto created = ClientWithoutTokens(server, clock);
  ApiClient& api = *created;
  std::future<Result<Json>> normal;
  std::future<bool> urgent;
  // Runs before the futures' destructors: a failed REQUIRE must not leave a request asleep
  // in the rate limiter on a clock nobody moves (the test would hang instead of failing).
  const std::shared_ptr<void> wake_at_exit(nullptr, [&](void*) { clock.Advance(1h); });
  normal = std::async(std::launch::async,
                      [&] { return api.Get(resources::ConfigMaps(), "ns", "normal"); });
  REQUIRE(clock.WaitForSleepers(1));
  urgent = std::async(std::launch::async, [&] {
    const UrgentScope scope;
    const bool active = UrgentScope::Active();
    api.Get(resources::ConfigMaps(), "ns", "urgent");
    return active;
  });
  REQUIRE(clock.WaitForSleepers(2));
  clock.Advance(100ms);
  REQUIRE(urgent.wait_for(5s) == std::future_status::ready);
  CHECK(urgent.get());
  CHECK(normal.wait_for(20ms) == std::future_status::timeout);  // pushed back a token
  clock.Advance(100ms);
  REQUIRE(normal.wait_for(5s) == std::future_status::ready);
  CHECK(normal.get().status().IsNotFound());
  CHECK_FALSE(UrgentScope::Active());  // the scope was the other thread's
  std::vector<std::string> order;
  for (const auto& request : server.requests()) order.push_back(request.path);
  CHECK(order == std::vector<std::string>{"/api/v1/namespaces/ns/configmaps/first",
                                          "/api/v1/namespaces/ns/configmaps/urgent",
                                          "/api/v1/namespaces/ns/configmaps/normal"});
  created.reset();
}

TEST_CASE("ApiClient: a CancelWaitsScope's stop cuts a normal request's wait for a token short") {
  ScriptedApiServer server;
  testing::ObservedClock clock;
  auto created = ClientWithoutTokens(server, clock);
  ApiClient& api = *created;
  const std::shared_ptr<void> wake_at_exit(nullptr, [&](void*) { clock.Advance(1h); });
  std::stop_source preempt;
  auto normal = std::async(std::launch::async, [&] {
    const CancelWaitsScope scope(preempt.get_token());
    return api.Get(resources::ConfigMaps(), "ns", "normal");
  });
  REQUIRE(clock.WaitForSleepers(1));
  preempt.request_stop();
  REQUIRE(normal.wait_for(5s) == std::future_status::ready);  // the clock did not move
  const auto cut = normal.get();
  CHECK_MESSAGE(cut.status().code() == StatusCode::kCancelled, cut.status().ToString());
  // An urgent request is never cut short: it waits for the next token.
  std::stop_source stopped;
  stopped.request_stop();
  auto urgent = std::async(std::launch::async, [&] {
    const CancelWaitsScope scope(stopped.get_token());
    const UrgentScope lane;
    return api.Get(resources::ConfigMaps(), "ns", "urgent");
  });
  REQUIRE(clock.WaitForSleepers(1));
  clock.Advance(100ms);
  REQUIRE(urgent.wait_for(5s) == std::future_status::ready);
  CHECK(urgent.get().status().IsNotFound());
  std::vector<std::string> sent;
  for (const auto& request : server.requests()) sent.push_back(request.path);
  CHECK(sent == std::vector<std::string>{"/api/v1/namespaces/ns/configmaps/first",
                                         "/api/v1/namespaces/ns/configmaps/urgent"});
  created.reset();
}

TEST_CASE("ApiClient::ListAll follows continue tokens and joins the pages") {
  ScriptedApiServer server;
  Json first = ConfigMapList("5", {ConfigMapObject("a", "1"), ConfigMapObject("b", "2")});
  first["metadata"]["continue"] = "token-1";
  Json second = ConfigMapList("5", {ConfigMapObject("c", "3")});
  second["metadata"]["continue"] = "token/2+=";
  server.ScriptList({200, first});
  server.ScriptList({200, second});
  server.ScriptList({200, ConfigMapList("5", {ConfigMapObject("d", "4")})});
  auto api = ClientFor(server.url());
  ListOptions options;
  options.limit = 2;
  options.label_selector = "app=web";
  const auto all = api->ListAll(resources::ConfigMaps(), "ns", options);
  REQUIRE_MESSAGE(all.ok(), all.status().ToString());
  CHECK(Names(*all) == std::vector<std::string>{"a", "b", "c", "d"});
  CHECK((*all)["metadata"]["resourceVersion"] == "5");  // the snapshot to watch from
  CHECK_FALSE((*all)["metadata"].contains("continue"));
  const auto lists = server.list_requests();
  REQUIRE(lists.size() == 3);
  CHECK_FALSE(lists[0].HasParam("continue"));
  CHECK(lists[1].Param("continue") == "token-1");
  CHECK(lists[2].Param("continue") == "token/2+=");
  for (const auto& request : lists) {
    CHECK(request.Param("limit") == "2");
    CHECK(request.Param("labelSelector") == "app=web");
  }
  api.reset();
}

TEST_CASE("ApiClient::ListAll survives a list whose fields have the wrong types") {
  ScriptedApiServer server;
  auto api = ClientFor(server.url());
  SUBCASE("a continue token that is not a string ends the paging") {
    Json odd = ConfigMapList("5", {ConfigMapObject("a", "1")});
    odd["metadata"]["continue"] = 7;
    server.ScriptList({200, odd});
    const auto all = api->ListAll(resources::ConfigMaps(), "ns", {});
    REQUIRE_MESSAGE(all.ok(), all.status().ToString());
    CHECK(Names(*all) == std::vector<std::string>{"a"});
  }
  SUBCASE("items that are not a list give an empty list") {
    server.ScriptList({200, Json{{"kind", "ConfigMapList"}, {"items", "nope"}}});
    const auto all = api->ListAll(resources::ConfigMaps(), "ns", {});
    REQUIRE_MESSAGE(all.ok(), all.status().ToString());
    CHECK((*all)["items"].empty());
  }
  SUBCASE("a response that is not an object is a decode error") {
    server.ScriptList({200, Json::array({1, 2})});
    const auto all = api->ListAll(resources::ConfigMaps(), "ns", {});
    REQUIRE_FALSE(all.ok());
    CHECK(all.status().code() == StatusCode::kDecode);
  }
  api.reset();
}

}  // namespace
}  // namespace dpcm::client
