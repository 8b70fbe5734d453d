// ApiEventSink against a local HTTP server: POST of the whole Event, a merge patch of count and
// lastTimestamp, and NotFound for an Event the API has expired.
#include "pkg/events/event_sink.h"

#include <doctest/doctest.h>
#include <httplib.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "pkg/events/event.h"
#include "tests/support/local_http_server.h"

namespace dpcm::events {
namespace {

using namespace std::chrono_literals;

struct Received {
  std::string method;
  std::string path;
  std::string content_type;
  nlohmann::json body;
};

// The events collection of namespace "default": answers 201 to a POST, 200 to a PATCH of
// "known", 404 to any other PATCH; records every request.
class EventsApi {
 public:
  std::string url() const { return "http://127.0.0.1:" + std::to_string(http_.port()); }
  std::vector<Received> Requests() {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  void Record(const httplib::Request& req) {
    std::lock_guard lock(mutex_);
    received_.push_back({req.method, req.path, req.get_header_value("Content-Type"),
                         nlohmann::json::parse(req.body, nullptr, false)});
  }

  std::mutex mutex_;
  std::vector<Received> received_;
  testing::LocalHttpServer http_{[this](httplib::Server& server) {
    server.Post("/api/v1/namespaces/default/events",
                [this](const httplib::Request& req, httplib::Response& res) {
                  Record(req);
                  res.status = 201;
                  res.set_content(req.body, "application/json");
                });
    server.Patch(R"(/api/v1/namespaces/default/events/(.+))", [this](const httplib::Request& req,
                                                                     httplib::Response& res) {
      Record(req);
      if (req.matches[1] == "known") {
        res.set_content(R"({"kind":"Event"})", "application/json");
        return;
      }
      res.status = 404;
      res.set_content(R"({"kind":"Status","reason":"NotFound","code":404})", "application/json");
    });
  }};
};

std::unique_ptr<client::ApiClient> ClientFor(const std::string& server) {
  restconfig::RestConfig config;
  config.server = server;
  client::ClientOptions options;
  options.qps = 0;
  options.max_retries = 0;
  auto api = client::ApiClient::Create(config, options);
  REQUIRE_MESSAGE(api.ok(), api.status().ToString());
  return std::move(*api);
}

nlohmann::json EventNamed(const std::string& name) {
  const Occurrence occurrence{{"dpcm.io/v1alpha1", "ProcessDomain", "default", "web", "uid-web"},
                              "Warning",
                              "PodsFailed",
                              "no pods"};
  nlohmann::json event = MakeEvent(occurrence, "dpcm-operator", name, FakeClock().WallNow());
  event["count"] = 7;
  return event;
}

TEST_CASE("ApiEventSink creates the whole Event and patches only count and lastTimestamp") {
  EventsApi api;
  auto client = ClientFor(api.url());
  ApiEventSink sink(*client);
  const nlohmann::json event = EventNamed("known");
  const Status created = sink.Create(event);
  CHECK_MESSAGE(created.ok(), created.ToString());
  const Status updated = sink.Update(event);
  CHECK_MESSAGE(updated.ok(), updated.ToString());
  const Status gone = sink.Update(EventNamed("expired"));
  CHECK(gone.IsNotFound());

  const auto requests = api.Requests();
  REQUIRE(requests.size() == 3);
  CHECK(requests[0].method == "POST");
  CHECK(requests[0].body == event);
  CHECK(requests[1].method == "PATCH");
  CHECK(requests[1].path == "/api/v1/namespaces/default/events/known");
  CHECK(requests[1].content_type == "application/merge-patch+json");
  CHECK(requests[1].body ==
        nlohmann::json{{"count", 7}, {"lastTimestamp", event["lastTimestamp"]}});
  client.reset();  // close the keep-alive connection before the server stops
}

}  // namespace
}  // namespace dpcm::events
