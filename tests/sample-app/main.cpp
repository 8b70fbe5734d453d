// dpcm-sample-app: a tiny application for the domains to run; it records every role it is told.
//
// GET  /healthz         200 "ok" or 503 "unhealthy" (hangs 60 s after /admin/hang)
// GET  /role            {"role","epoch","pod"}
// POST /dpcm/role       {"domain","pod","role","epoch"}: 409 if epoch < the highest seen,
//                       else 200; every accepted role is logged as a JSON line
// POST /admin/unhealthy, /admin/healthy (also ends a hang), /admin/hang,
//      /admin/exit?code=N (flush logs, exit N)
// With --role-api HOST:PORT it also follows dpcm-agent's role API (GET /role long-polls) and
// takes each role from there as from a POST (logged with "source":"agent").
// Logs go to stdout, one line each. SIGTERM or SIGINT: exit 0.
#include <httplib.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

namespace {

using Json = nlohmann::json;
using OrderedJson = nlohmann::ordered_json;  // keeps keys in the documented order

constexpr const char* kUsage = R"(Usage: dpcm-sample-app [--port N] [--bind ADDR] [--name NAME]
  --port N              listen port (default 8080)
  --bind ADDR           listen address (default $POD_IP, else 127.0.0.1)
  --name NAME           this instance's name (default $POD_NAME)
  --role-api HOST:PORT  follow dpcm-agent's role API there (GET /role long-polls)
)";

// "2024-05-01T12:00:00.123Z"
std::string NowText() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[40];
  const size_t n = std::strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof(text) - n, ".%03lldZ", static_cast<long long>(millis));
  return text;
}

// The application's state: health and the role it was last told. Thread-safe.
class SampleApp {
 public:
  explicit SampleApp(std::string name) : name_(std::move(name)) {}

  void Log(const std::string& line) {
    std::lock_guard lock(log_mutex_);
    std::fputs(line.c_str(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }

  void Install(httplib::Server& server) {
    server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
      WaitWhileHung();
      if (healthy_.load()) {
        res.set_content("ok", "text/plain");
      } else {
        res.status = 503;
        res.set_content("unhealthy", "text/plain");
      }
    });
    server.Get("/role", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(role_mutex_);
      res.set_content(OrderedJson{{"role", role_}, {"epoch", epoch_}, {"pod", name_}}.dump(),
                      "application/json");
    });
    posts_["/dpcm/role"] = [this](const httplib::Request& req, httplib::Response& res) {
      HandleRole(req, res);
    };
    posts_["/admin/unhealthy"] = [this](const httplib::Request&, httplib::Response& res) {
      healthy_ = false;
      Log("admin: unhealthy");
      res.set_content("unhealthy\n", "text/plain");
    };
    posts_["/admin/healthy"] = [this](const httplib::Request&, httplib::Response& res) {
      healthy_ = true;
      SetHung(false);
      Log("admin: healthy");
      res.set_content("healthy\n", "text/plain");
    };
    posts_["/admin/hang"] = [this](const httplib::Request&, httplib::Response& res) {
      SetHung(true);
      Log("admin: hang (/healthz stops answering for 60 s per request)");
      res.set_content("hanging\n", "text/plain");
    };
    posts_["/admin/exit"] = [this](const httplib::Request& req, httplib::Response& res) {
      int code = 0;
      const std::string text = req.get_param_value("code");
      if (!text.empty()) {
        const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), code);
        if (error != std::errc() || end != text.data() + text.size() || code < 0 || code > 255) {
          res.status = 400;
          res.set_content("code must be 0..255\n", "text/plain");
          return;
        }
      }
      Log("admin: exit " + std::to_string(code));
      res.set_content("exiting " + std::to_string(code) + "\n", "text/plain");
      // Let the response go out first.
      std::thread([code] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::fflush(stdout);
        std::_Exit(code);
      }).detach();
    };
    for (const auto& [path, handler] : posts_) server.Post(path, handler);
    // cpp-httplib 0.11 answers 400 to a POST without Content-Length (`curl -X POST URL`)
    // before routing; such a request has no body, so serve it here, ahead of that.
    server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
      if (req.method != "POST" || req.has_header("Content-Length") ||
          req.has_header("Transfer-Encoding")) {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      const auto handler = posts_.find(req.path);
      if (handler == posts_.end()) {
        res.status = 404;
      } else {
        handler->second(req, res);
      }
      return httplib::Server::HandlerResponse::Handled;
    });
  }

  // Follows dpcm-agent's role API at host:port until Stopping(): each new record (a long-poll
  // on its version) is taken as a role message; connection failures are retried every
  // 200 ms.
  void FollowRoleApi(const std::string& host, int port) {
    uint64_t version = 0;
    while (!WaitStopping(std::chrono::milliseconds(0))) {
      httplib::Client agent(host, port);
      agent.set_connection_timeout(1);
      agent.set_read_timeout(40);
      auto response = agent.Get("/role?after=" + std::to_string(version) + "&wait=30s");
      const Json record = response && response->status == 200
                              ? Json::parse(response->body, nullptr, /*allow_exceptions=*/false)
                              : Json();
      if (!record.is_object() || !record.contains("version") ||
          !record["version"].is_number_unsigned()) {
        if (WaitStopping(std::chrono::milliseconds(200))) return;
        continue;
      }
      const auto seen = record["version"].get<uint64_t>();
      if (seen == version) continue;  // the long-poll timed out: nothing new
      version = seen;
      const std::string role = record.value("role", "");
      if (role != "dc" && role != "pc") continue;
      int status = 0;
      std::string body;
      TakeRole(role, record.value("epoch", int64_t{0}), record.value("domain", ""),
               record.value("pod", ""), "agent", status, body);
    }
  }

  // Ends hangs so that the server can stop.
  void Stopping() {
    std::lock_guard lock(hang_mutex_);
    stopping_ = true;
    hang_changed_.notify_all();
  }

 private:
  void SetHung(bool hung) {
    std::lock_guard lock(hang_mutex_);
    hung_ = hung;
    hang_changed_.notify_all();
  }

  void WaitWhileHung() {
    std::unique_lock lock(hang_mutex_);
    if (!hung_) return;
    hang_changed_.wait_for(lock, std::chrono::seconds(60), [this] { return !hung_ || stopping_; });
  }

  // Waits up to `timeout` for Stopping(); returns whether it came.
  bool WaitStopping(std::chrono::milliseconds timeout) {
    std::unique_lock lock(hang_mutex_);
    return hang_changed_.wait_for(lock, timeout, [this] { return stopping_; });
  }

  void HandleRole(const httplib::Request& req, httplib::Response& res) {
    const Json body = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
    auto bad = [&](const std::string& why) {
      res.status = 400;
      res.set_content(Json{{"error", why}}.dump(), "application/json");
      Log("bad role request: " + why);
    };
    if (body.is_discarded() || !body.is_object()) return bad("body is not a JSON object");
    if (!body.contains("role") || !body["role"].is_string() ||
        body["role"].get<std::string>().empty()) {
      return bad("role must be a non-empty string");
    }
    if (!body.contains("epoch") || !body["epoch"].is_number_integer() ||
        body["epoch"].get<int64_t>() < 0) {
      return bad("epoch must be a non-negative integer");
    }
    for (const char* field : {"domain", "pod"}) {
      if (body.contains(field) && !body[field].is_string()) {
        return bad(std::string(field) + " must be a string");
      }
    }
    std::string answer;
    TakeRole(body["role"].get<std::string>(), body["epoch"].get<int64_t>(),
             body.value("domain", ""), body.value("pod", ""), "", res.status, answer);
    res.set_content(answer, "application/json");
  }

  // Takes `role` at `epoch` unless the epoch is older than the highest seen (409). Logs it;
  // `source` ("" for a POST, "agent" for the role API) is added to the log line when set.
  void TakeRole(const std::string& role, int64_t epoch, const std::string& domain,
                const std::string& pod, const std::string& source, int& status,
                std::string& answer) {
    std::lock_guard lock(role_mutex_);
    if (epoch < highest_epoch_) {
      status = 409;
      answer = Json{{"error", "stale epoch"}, {"epoch", epoch}, {"seen", highest_epoch_}}.dump();
      Log("rejected role=" + role + " epoch=" + std::to_string(epoch) + " (seen " +
          std::to_string(highest_epoch_) + ")" + (source.empty() ? "" : " from " + source));
      return;
    }
    highest_epoch_ = epoch;
    role_ = role;
    epoch_ = epoch;
    OrderedJson line = {{"event", "role"},  {"role", role},
                        {"epoch", epoch},   {"time", NowText()},
                        {"domain", domain}, {"pod", pod.empty() ? name_ : pod}};
    if (!source.empty()) line["source"] = source;
    Log(line.dump());
    status = 200;
    answer = OrderedJson{{"role", role_}, {"epoch", epoch_}, {"pod", name_}}.dump();
  }

  const std::string name_;
  std::map<std::string, httplib::Server::Handler> posts_;  // POST routes by path
  std::mutex log_mutex_;
  std::atomic<bool> healthy_{true};

  std::mutex hang_mutex_;
  std::condition_variable hang_changed_;
  bool hung_ = false;      // guarded by hang_mutex_
  bool stopping_ = false;  // guarded by hang_mutex_

  std::mutex role_mutex_;
  std::string role_ = "none";  // guarded by role_mutex_
  int64_t epoch_ = 0;          // guarded by role_mutex_
  int64_t highest_epoch_ = 0;  // guarded by role_mutex_
};

[[noreturn]] void Fail(const std::string& message) {
  std::cerr << "dpcm-sample-app: " << message << "\n" << kUsage;
  std::exit(2);
}

std::string EnvOr(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 8080;
  std::string bind = EnvOr("POD_IP", "127.0.0.1");
  std::string name = EnvOr("POD_NAME", "");
  std::string role_api;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::cout << kUsage;
      return 0;
    }
    std::string value;
    const auto eq = arg.find('=');
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      Fail(arg + " needs a value");
    }
    if (arg == "--port") {
      const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), port);
      if (error != std::errc() || end != value.data() + value.size() || port <= 0 || port > 65535) {
        Fail("--port: not a port: " + value);
      }
    } else if (arg == "--bind") {
      bind = value;
    } else if (arg == "--name") {
      name = value;
    } else if (arg == "--role-api") {
      role_api = value;
    } else {
      Fail("unknown flag " + arg);
    }
  }
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  SampleApp app(name);
  httplib::Server server;
  // Hung /healthz requests each hold a thread: keep enough for the other endpoints.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
  // cpp-httplib's default adds SO_REUSEPORT, which lets a second app bind the same
  // address and port and take half its requests (two test worlds whose pod addresses
  // overlap checked each other's apps): with SO_REUSEADDR alone such a bind fails loudly.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  app.Install(server);
  std::thread role_follower;
  if (!role_api.empty()) {
    const auto colon = role_api.rfind(':');
    int role_port = 0;
    if (colon == std::string::npos ||
        std::from_chars(role_api.data() + colon + 1, role_api.data() + role_api.size(), role_port)
                .ec != std::errc() ||
        role_port <= 0 || role_port > 65535) {
      Fail("--role-api: expected HOST:PORT, not " + role_api);
    }
    role_follower = std::thread([&app, host = role_api.substr(0, colon), role_port] {
      app.FollowRoleApi(host, role_port);
    });
  }

  std::atomic<bool> stopping{false};
  std::thread signal_waiter([&] {
    int received = 0;
    sigwait(&signals, &received);
    stopping = true;
    app.Log(std::string("received ") + sigabbrev_np(received) + ", exiting");
    app.Stopping();
    server.stop();
  });

  if (!server.bind_to_port(bind, port)) {
    app.Log("cannot listen on " + bind + ":" + std::to_string(port));
    std::fflush(stdout);
    std::_Exit(1);
  }
  app.Log("listening on " + bind + ":" + std::to_string(port) + " as " +
          (name.empty() ? "(no name)" : name));
  server.listen_after_bind();
  if (!stopping) {  // listen ended without a signal: an error
    app.Log("server stopped unexpectedly");
    std::fflush(stdout);
    std::_Exit(1);
  }
  signal_waiter.join();
  std::fflush(stdout);
  if (role_follower.joinable()) {
    // Exit at once, as promised, not after the follower's long-poll ends; no destructor
    // runs under it.
    role_follower.detach();
    std::_Exit(0);
  }
  return 0;
}
