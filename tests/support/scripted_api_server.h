// A scripted stand-in for one collection of the API server: canned list answers and watch streams.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

namespace dpcm::testing {

// One request the server received.
struct RecordedRequest {
  std::string method;
  std::string path;
  std::multimap<std::string, std::string> params;  // decoded query parameters
  std::chrono::steady_clock::time_point received_at;

  bool IsWatch() const { return Param("watch") == "1"; }
  bool HasParam(const std::string& key) const { return params.count(key) > 0; }
  // The first value of `key`, or "" when absent.
  std::string Param(const std::string& key) const;
};

// The answer to one list request (GET on the collection without watch=1).
struct ListReply {
  int http_status = 200;
  nlohmann::json body;  // a List, or a metav1.Status for an error
};

// The answer to one watch request (GET on the collection with watch=1).
struct WatchReply {
  // Anything but 200 answers at once with `error_body` and no stream.
  int http_status = 200;
  nlohmann::json error_body;
  // Written one per chunk, each followed by '\n', with `pause` before each.
  std::vector<std::string> lines;
  std::chrono::milliseconds pause{0};
  // After the lines: true keeps the stream open (idle) until the client goes away or
  // the server stops; false ends it, as the API server does at timeoutSeconds.
  bool hold_open = false;
};

struct ScriptedApiServerOptions {
  std::string collection_path = "/api/v1/namespaces/ns/configmaps";
  // How long an idle keep-alive connection is kept before the server closes it
  // (silently, as an API server or load balancer does). 0 closes it at once.
  std::chrono::seconds keep_alive_timeout{5};
};

// Serves GET `collection_path` on 127.0.0.1 (a free port) from two scripts:
// - list requests take the next ListReply; the last one is repeated when the script
//   runs out (and an empty list is served when there never was one);
// - watch requests take the next WatchReply; when the script runs out the stream stays
//   open and idle, like a watch on a quiet resource.
// An idle stream writes a blank line every 20 ms (which a watch decoder ignores) so that
// it notices a client that went away. Any other path answers 404 with a Status.
// Thread-safe. Stop() (or the destructor) ends every stream and joins the server;
// destroy clients first, since an idle keep-alive connection holds a server thread.
class ScriptedApiServer {
 public:
  explicit ScriptedApiServer(ScriptedApiServerOptions options = {});
  ~ScriptedApiServer();
  ScriptedApiServer(const ScriptedApiServer&) = delete;
  ScriptedApiServer& operator=(const ScriptedApiServer&) = delete;

  void ScriptList(ListReply reply);
  void ScriptWatch(WatchReply reply);

  // "http://127.0.0.1:PORT".
  std::string url() const;
  std::vector<RecordedRequest> requests() const;
  std::vector<RecordedRequest> list_requests() const;
  std::vector<RecordedRequest> watch_requests() const;
  // Waits until at least `count` list (or watch) requests arrived. Returns whether they did.
  bool WaitForListRequests(size_t count, std::chrono::milliseconds timeout);
  bool WaitForWatchRequests(size_t count, std::chrono::milliseconds timeout);

  void Stop();

 private:
  void HandleCollection(const httplib::Request& request, httplib::Response& response);
  void ServeList(httplib::Response& response);
  void ServeWatch(httplib::Response& response);
  bool WaitForRequests(const std::function<bool(const RecordedRequest&)>& match, size_t count,
                       std::chrono::milliseconds timeout);

  const std::string collection_path_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;                  // guarded by mutex_
  std::deque<ListReply> list_script_;      // guarded by mutex_
  std::deque<WatchReply> watch_script_;    // guarded by mutex_
  std::vector<RecordedRequest> requests_;  // guarded by mutex_
};

// Builders for the JSON the scripts hold.
nlohmann::json ConfigMapObject(const std::string& name, const std::string& resource_version,
                               const nlohmann::json& labels = nlohmann::json::object());
nlohmann::json ConfigMapList(const std::string& resource_version,
                             const std::vector<nlohmann::json>& items);
// A metav1.Status with the given code, reason and message.
nlohmann::json StatusObject(int code, const std::string& reason, const std::string& message);
// One watch line: {"type":TYPE,"object":OBJECT}.
std::string EventLine(const std::string& type, const nlohmann::json& object);
// A BOOKMARK line carrying only metadata.resourceVersion, as the API server sends it.
std::string BookmarkLine(const std::string& resource_version);
// An ERROR line carrying a 410 Expired Status.
std::string GoneLine();

}  // namespace dpcm::testing
