#include "tests/support/scripted_api_server.h"

#include <memory>
#include <stdexcept>
#include <utility>

namespace dpcm::testing {
namespace {

using Json = nlohmann::json;
using namespace std::chrono_literals;

constexpr auto kIdleHeartbeat = 20ms;

}  // namespace

std::string RecordedRequest::Param(const std::string& key) const {
  const auto it = params.find(key);
  return it == params.end() ? "" : it->second;
}

ScriptedApiServer::ScriptedApiServer(ScriptedApiServerOptions options)
    : collection_path_(std::move(options.collection_path)) {
  server_.set_keep_alive_timeout(options.keep_alive_timeout.count());
  server_.Get(".*", [this](const httplib::Request& request, httplib::Response& response) {
    HandleCollection(request, response);
  });
  port_ = server_.bind_to_any_port("127.0.0.1");
  if (port_ <= 0) throw std::runtime_error("ScriptedApiServer: cannot bind 127.0.0.1");
  thread_ = std::thread([this] { server_.listen_after_bind(); });
  // stop() is a no-op until the accept loop runs, so do not hand out a server that
  // could not be stopped.
  while (!server_.is_running()) std::this_thread::sleep_for(1ms);
}

ScriptedApiServer::~ScriptedApiServer() { Stop(); }

void ScriptedApiServer::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  server_.stop();
  if (thread_.joinable()) thread_.join();
}

void ScriptedApiServer::ScriptList(ListReply reply) {
  std::lock_guard lock(mutex_);
  list_script_.push_back(std::move(reply));
}

void ScriptedApiServer::ScriptWatch(WatchReply reply) {
  std::lock_guard lock(mutex_);
  watch_script_.push_back(std::move(reply));
}

std::string ScriptedApiServer::url() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::vector<RecordedRequest> ScriptedApiServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::vector<RecordedRequest> ScriptedApiServer::list_requests() const {
  std::vector<RecordedRequest> out;
  for (auto& request : requests()) {
    if (request.path == collection_path_ && !request.IsWatch()) out.push_back(std::move(request));
  }
  return out;
}

std::vector<RecordedRequest> ScriptedApiServer::watch_requests() const {
  std::vector<RecordedRequest> out;
  for (auto& request : requests()) {
    if (request.path == collection_path_ && request.IsWatch()) out.push_back(std::move(request));
  }
  return out;
}

bool ScriptedApiServer::WaitForRequests(const std::function<bool(const RecordedRequest&)>& match,
                                        size_t count, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] {
    size_t seen = 0;
    for (const auto& request : requests_) seen += match(request) ? 1 : 0;
    return seen >= count;
  });
}

bool ScriptedApiServer::WaitForListRequests(size_t count, std::chrono::milliseconds timeout) {
  return WaitForRequests(
      [this](const RecordedRequest& r) { return r.path == collection_path_ && !r.IsWatch(); },
      count, timeout);
}

bool ScriptedApiServer::WaitForWatchRequests(size_t count, std::chrono::milliseconds timeout) {
  return WaitForRequests(
      [this](const RecordedRequest& r) { return r.path == collection_path_ && r.IsWatch(); }, count,
      timeout);
}

void ScriptedApiServer::HandleCollection(const httplib::Request& request,
                                         httplib::Response& response) {
  RecordedRequest recorded{request.method,
                           request.path,
                           {request.params.begin(), request.params.end()},
                           std::chrono::steady_clock::now()};
  const bool watch = recorded.IsWatch();
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(std::move(recorded));
  }
  changed_.notify_all();
  if (request.path != collection_path_) {
    response.status = 404;
    response.set_content(StatusObject(404, "NotFound",
                                      "the server could not find the requested "
                                      "resource")
                             .dump(),
                         "application/json");
    return;
  }
  if (watch) {
    ServeWatch(response);
  } else {
    ServeList(response);
  }
}

void ScriptedApiServer::ServeList(httplib::Response& response) {
  ListReply reply;
  {
    std::lock_guard lock(mutex_);
    if (list_script_.empty()) {
      reply = {200, ConfigMapList("1", {})};
    } else {
      reply = list_script_.front();
      if (list_script_.size() > 1) list_script_.pop_front();
    }
  }
  response.status = reply.http_status;
  response.set_content(reply.body.dump(), "application/json");
}

void ScriptedApiServer::ServeWatch(httplib::Response& response) {
  auto reply = std::make_shared<WatchReply>();
  {
    std::lock_guard lock(mutex_);
    if (watch_script_.empty()) {
      reply->hold_open = true;
    } else {
      *reply = std::move(watch_script_.front());
      watch_script_.pop_front();
    }
  }
  if (reply->http_status != 200) {
    response.status = reply->http_status;
    response.set_content(reply->error_body.dump(), "application/json");
    return;
  }
  auto next = std::make_shared<size_t>(0);
  response.set_chunked_content_provider(
      "application/json", [this, reply, next](size_t /*offset*/, httplib::DataSink& sink) {
        if (*next < reply->lines.size()) {
          if (reply->pause.count() > 0) {
            std::unique_lock lock(mutex_);
            if (changed_.wait_for(lock, reply->pause, [this] { return stopping_; })) return false;
          }
          const std::string line = reply->lines[(*next)++] + "\n";
          return sink.write(line.data(), line.size());
        }
        if (!reply->hold_open) {
          sink.done();
          return true;
        }
        {
          std::unique_lock lock(mutex_);
          if (changed_.wait_for(lock, kIdleHeartbeat, [this] { return stopping_; })) return false;
        }
        return sink.write("\n", 1);
      });
}

Json ConfigMapObject(const std::string& name, const std::string& resource_version,
                     const Json& labels) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMap"},
          {"metadata",
           {{"name", name},
            {"namespace", "ns"},
            {"uid", "uid-" + name},
            {"resourceVersion", resource_version},
            {"labels", labels}}},
          {"data", {{"rv", resource_version}}}};
}

Json ConfigMapList(const std::string& resource_version, const std::vector<Json>& items) {
  return {{"apiVersion", "v1"},
          {"kind", "ConfigMapList"},
          {"metadata", {{"resourceVersion", resource_version}}},
          {"items", items}};
}

Json StatusObject(int code, const std::string& reason, const std::string& message) {
  return {{"kind", "Status"},    {"apiVersion", "v1"}, {"metadata", Json::object()},
          {"status", "Failure"}, {"message", message}, {"reason", reason},
          {"code", code}};
}

std::string EventLine(const std::string& type, const Json& object) {
  return Json{{"type", type}, {"object", object}}.dump();
}

std::string BookmarkLine(const std::string& resource_version) {
  return EventLine("BOOKMARK", {{"kind", "ConfigMap"},
                                {"apiVersion", "v1"},
                                {"metadata", {{"resourceVersion", resource_version}}}});
}

std::string GoneLine() {
  return EventLine("ERROR", StatusObject(410, "Expired", "too old resource version: 5 (100)"));
}

}  // namespace dpcm::testing
