// Role hooks: Deliver over real HTTP and real commands (RoleHookRunner: rolehook_runner_test).
#include <doctest/doctest.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "pkg/rolehook/hook.h"
#include "tests/support/local_http_server.h"
#include "tests/support/temp_dir.h"

namespace dpcm::rolehook {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

std::chrono::milliseconds Since(Steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start);
}

Assignment Assign(const std::string& pod, const std::string& role, int64_t epoch,
                  const std::string& restarts = "0") {
  return {"default", "web", pod, "uid-" + pod + "/" + restarts, "127.0.0.1", role, epoch};
}

// ---------------------------------------------------------------------------------------
// Deliver

// An application's role endpoint on 127.0.0.1: records POST bodies and answers `status`.
class RoleEndpoint {
 public:
  int port() const { return http_.port(); }
  void Answer(int status) { status_ = status; }
  std::vector<std::string> Bodies() {
    std::lock_guard lock(mutex_);
    return bodies_;
  }
  std::vector<std::string> ContentTypes() {
    std::lock_guard lock(mutex_);
    return content_types_;
  }

 private:
  std::atomic<int> status_{200};
  std::mutex mutex_;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
  testing::LocalHttpServer http_{[this](httplib::Server& server) {
    server.Post("/dpcm/role", [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard lock(mutex_);
        bodies_.push_back(req.body);
        content_types_.push_back(req.get_header_value("Content-Type"));
      }
      res.status = status_;
      res.set_content(status_ == 409 ? "stale epoch\nsecond line" : "ok", "text/plain");
    });
    server.Post("/slow", [this](const httplib::Request&, httplib::Response& res) {
      const auto until = Steady::now() + 3s;
      while (!http_.stopping() && Steady::now() < until) std::this_thread::sleep_for(10ms);
      res.set_content("late", "text/plain");
    });
  }};
};

HookSpec HttpHook(int port, const std::string& path = "/dpcm/role") {
  HookSpec spec;
  spec.kind = HookKind::kHttp;
  spec.http_port = port;
  spec.http_path = path;
  spec.timeout = 2000ms;
  return spec;
}

HookSpec CommandHook(std::vector<std::string> argv) {
  HookSpec spec;
  spec.kind = HookKind::kCommand;
  spec.argv = std::move(argv);
  spec.timeout = 5000ms;
  return spec;
}

TEST_CASE("Deliver over HTTP POSTs {domain, pod, role, epoch} as JSON, 2xx acknowledges") {
  RoleEndpoint app;
  const Status delivered = Deliver(HttpHook(app.port()), Assign("web-1", "dc", 7));
  CHECK_MESSAGE(delivered.ok(), delivered.ToString());
  const auto bodies = app.Bodies();
  REQUIRE(bodies.size() == 1);
  const auto body = nlohmann::json::parse(bodies[0]);
  CHECK(body == nlohmann::json{{"domain", "web"}, {"pod", "web-1"}, {"role", "dc"}, {"epoch", 7}});
  CHECK(body["epoch"].is_number_integer());
  CHECK(app.ContentTypes()[0] == "application/json");
}

TEST_CASE("Deliver over HTTP reports a non-2xx answer, a refused connection and a slow app") {
  RoleEndpoint app;
  app.Answer(409);
  const Status conflict = Deliver(HttpHook(app.port()), Assign("web-1", "dc", 7));
  REQUIRE_FALSE(conflict.ok());
  CHECK(conflict.message().find("409") != std::string::npos);
  CHECK(conflict.message().find("stale epoch") != std::string::npos);
  CHECK(conflict.message().find("second line") == std::string::npos);

  app.Answer(500);
  CHECK_FALSE(Deliver(HttpHook(app.port()), Assign("web-1", "dc", 7)).ok());

  HookSpec slow = HttpHook(app.port(), "/slow");
  slow.timeout = 300ms;
  const auto start = Steady::now();
  CHECK_FALSE(Deliver(slow, Assign("web-1", "dc", 7)).ok());
  CHECK(Since(start) < 300ms + 1500ms);

  // A port nobody listens on (the endpoint's, once it is gone).
  int closed_port = 0;
  {
    RoleEndpoint gone;
    closed_port = gone.port();
  }
  CHECK_FALSE(Deliver(HttpHook(closed_port), Assign("web-1", "dc", 7)).ok());
}

TEST_CASE("Deliver over HTTP refuses a pod IP that is not an IP address") {
  RoleEndpoint app;
  for (const char* ip : {"localhost", "evil.example.com", "10.0.0.1;rm", ""}) {
    CAPTURE(std::string(ip));
    Assignment a = Assign("web-1", "dc", 7);
    a.pod_ip = ip;
    const Status delivered = Deliver(HttpHook(app.port()), a);
    REQUIRE_FALSE(delivered.ok());
    CHECK(delivered.message().find("IP") != std::string::npos);
  }
  CHECK(app.Bodies().empty());
}

TEST_CASE("DeliverOverNetwork, the operator's, refuses a command hook and runs nothing") {
  testing::TempDir dir;
  const std::string marker = (dir.path() / "ran").string();
  const Status refused = DeliverOverNetwork(CommandHook({"/bin/sh", "-c", "touch " + marker}),
                                            Assign("web-1", "dc", 7));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.message().find("never in the operator") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(marker));
  CHECK(DeliverOverNetwork(HookSpec{}, Assign("web-1", "dc", 7)).ok());  // kNone: nothing to do
}

TEST_CASE("Deliver via a command passes DPCM_ROLE and DPCM_EPOCH, exit 0 acknowledges") {
  const HookSpec spec =
      CommandHook({"/bin/sh", "-c", R"(test "$DPCM_ROLE" = dc && test "$DPCM_EPOCH" = 7)"});
  const Status ok = Deliver(spec, Assign("web-1", "dc", 7));
  CHECK_MESSAGE(ok.ok(), ok.ToString());
  const Status wrong_role = Deliver(spec, Assign("web-1", "pc", 7));
  REQUIRE_FALSE(wrong_role.ok());
  CHECK(wrong_role.message().find("exit status 1") != std::string::npos);
  CHECK_FALSE(Deliver(spec, Assign("web-1", "dc", 8)).ok());

  const HookSpec names = CommandHook(
      {"/bin/sh", "-c",
       R"(test "$DPCM_NAMESPACE/$DPCM_DOMAIN/$DPCM_POD/$DPCM_POD_IP" = default/web/web-1/127.0.0.1)"});
  CHECK(Deliver(names, Assign("web-1", "pc", 1)).ok());

  const HookSpec refusing =
      CommandHook({"/bin/sh", "-c", "echo 'refusing stale epoch' >&2; exit 3"});
  const Status refused = Deliver(refusing, Assign("web-1", "dc", 7));
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.message().find("exit status 3") != std::string::npos);
  CHECK(refused.message().find("refusing stale epoch") != std::string::npos);
}

TEST_CASE("Deliver via a command times out a hanging program and reports a missing one") {
  HookSpec hang = CommandHook({"/bin/sleep", "30"});
  hang.timeout = 300ms;
  const auto start = Steady::now();
  const Status hung = Deliver(hang, Assign("web-1", "dc", 7));
  REQUIRE_FALSE(hung.ok());
  CHECK(hung.message().find("timed out") != std::string::npos);
  CHECK(Since(start) < 300ms + 1500ms);

  CHECK_FALSE(Deliver(CommandHook({"/nonexistent/dpcm-hook"}), Assign("web-1", "dc", 7)).ok());

  HookSpec none;
  CHECK(Deliver(none, Assign("web-1", "dc", 7)).ok());  // kNone: nothing to tell
}

TEST_CASE("Deliver via a command hands hostile pod names over as data, never as shell code") {
  testing::TempDir dir;
  const std::string marker = (dir.path() / "F").string();
  const std::string hostile = "$(touch " + marker + ")`touch " + marker + "`;touch " + marker +
                              "|touch " + marker + " 'q' \"d\"\nnext";
  Assignment a = Assign("web-1", "dc", 3);
  a.pod = hostile;
  a.domain = hostile;
  HookSpec spec = CommandHook(
      {"/bin/sh", "-c", R"(test "$DPCM_POD" = "$WANT" && test "$DPCM_DOMAIN" = "$WANT")"});
  spec.env = {{"WANT", hostile}};
  const Status delivered = Deliver(spec, a);
  CHECK_MESSAGE(delivered.ok(), delivered.ToString());
  CHECK_FALSE(std::filesystem::exists(marker));
}

}  // namespace
}  // namespace dpcm::rolehook
