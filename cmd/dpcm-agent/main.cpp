// dpcm-agent: the sidecar in each member pod. Wiring only: flags → Agent → HTTP servers → run.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <thread>

#include "cmd/dpcm-agent/options.h"
#include "pkg/agent/agent.h"
#include "pkg/agent/member_follower.h"
#include "pkg/client/api_client.h"
#include "pkg/election/lease_record.h"
#include "pkg/listen/listen_address.h"
#include "pkg/logging/logging.h"
#include "pkg/memory/memory.h"
#include "pkg/restconfig/rest_config.h"

namespace {

using dpcm::agent::Agent;
using dpcm::agent::Reply;

// Now, as the role API shows it (RFC 3339 with microseconds).
std::string WallNowRfc3339() {
  return dpcm::election::FormatMicroTime(std::chrono::system_clock::now());
}

void Send(httplib::Response& response, const Reply& reply) {
  response.status = reply.status;
  response.set_content(reply.body, reply.content_type);
}

std::optional<std::string> Param(const httplib::Request& request, const char* name) {
  if (!request.has_param(name)) return std::nullopt;
  return request.get_param_value(name);
}

// The agent's threads, fixed (httplib's default pool has a thread per core less one, at
// least 8: on a 64-core node 63 threads per member). Figures: README "The agent".
// Operator-facing server: the operator's health checks and role hooks, one at a time per
// member, and its occasional GET /role or /members; a command that hangs until its
// timeout holds one thread.
constexpr size_t kOperatorThreads = 4;
// Role API: each waiting long-poll holds a thread; more than this many at once wait in
// line for a free one (a pod's application typically keeps one or two).
constexpr size_t kRoleApiThreads = 16;

// GET /role. Long-polls only where `long_poll` (the role API): a long-poll holds one of the
// server's threads, and those of the operator-facing server are kept for health checks and
// role hooks.
void RouteRole(httplib::Server& server, Agent& agent, bool long_poll) {
  server.Get("/role",
             [&agent, long_poll](const httplib::Request& request, httplib::Response& response) {
               Send(response, agent.GetRole(long_poll ? Param(request, "after") : std::nullopt,
                                            Param(request, "wait")));
             });
}

// GET /members, long-polled as RouteRole does.
void RouteMembers(httplib::Server& server, Agent& agent, bool long_poll) {
  server.Get("/members",
             [&agent, long_poll](const httplib::Request& request, httplib::Response& response) {
               Send(response, agent.GetMembers(long_poll ? Param(request, "after") : std::nullopt,
                                               Param(request, "wait")));
             });
}

// The agent's API identity: --kubeconfig, else the pod's ServiceAccount (in-cluster).
dpcm::Result<std::unique_ptr<dpcm::client::ApiClient>> ConnectAsPod(
    const dpcm::agent_main::AgentOptions& options) {
  auto config = options.kubeconfig.empty()
                    ? dpcm::restconfig::LoadInCluster(options.service_account_dir)
                    : dpcm::restconfig::LoadKubeconfig(options.kubeconfig);
  if (!config.ok()) return config.status().WithContext("no API identity");
  dpcm::client::ClientOptions client_options;
  client_options.qps = 5;  // one list, then one watch request every few minutes
  client_options.burst = 10;
  return dpcm::client::ApiClient::Create(std::move(*config), client_options);
}

// Binds `server` to host:port now (so that a taken port fails the start), serves it on a
// thread. An empty host: every interface, IPv6 and IPv4 (listen::Bind).
bool Serve(httplib::Server& server, const std::string& host, int port, std::thread& thread) {
  const dpcm::listen::ListenAddress address{host, port};
  auto bound = dpcm::listen::Bind(server, address);
  if (!bound.ok()) {
    spdlog::error("{}", bound.status().message());
    return false;
  }
  spdlog::info("listening on {}", dpcm::listen::Format(address));
  thread = std::thread([&server] { server.listen_after_bind(); });
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  // One malloc arena: the agent's threads mostly wait (pkg/memory); before any thread starts.
  dpcm::memory::LimitArenas(1);
  auto options = dpcm::agent_main::ParseOptions(argc, argv, [](const std::string& name) {
    const char* value = std::getenv(name.c_str());  // NOLINT(concurrency-mt-unsafe): before threads
    return value == nullptr ? std::nullopt : std::optional<std::string>(value);
  });
  if (!options.ok()) {
    std::cerr << "dpcm-agent: " << options.status().message() << "\n\n"
              << dpcm::agent_main::Usage();
    return 2;
  }
  if (options->help) {
    std::cout << dpcm::agent_main::Usage();
    return 0;
  }
  if (auto s = dpcm::logging::Configure(options->log_level, "text"); !s.ok()) {
    std::cerr << "dpcm-agent: " << s.message() << "\n";
    return 2;
  }
  // Signals are taken by sigwait below; threads started from here on inherit the mask
  // (commands get an empty mask from pkg/subprocess).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  const auto& config = options->config;
  Agent agent(
      config,
      config.health ? dpcm::health::MakeChecker(dpcm::health::ProbeKind::kCommand) : nullptr,
      dpcm::rolehook::Deliver, WallNowRfc3339);
  spdlog::info("agent for {}/{} (domain {}): health {}, role hook {}", config.ns, config.pod,
               config.domain, config.health ? config.health->command.argv[0] : "none",
               config.role_hook ? config.role_hook->argv[0] : "none");

  httplib::Server server;
  server.new_task_queue = [] { return new httplib::ThreadPool(kOperatorThreads); };
  server.Get("/healthz", [&agent](const httplib::Request&, httplib::Response& response) {
    Send(response, agent.Healthz());
  });
  server.Post("/dpcm/role", [&agent](const httplib::Request& request, httplib::Response& response) {
    const Reply reply = agent.RoleHook(request.body);
    spdlog::info("role hook {} -> {} {}", request.body, reply.status, reply.body.substr(0, 200));
    Send(response, reply);
  });
  RouteRole(server, agent, /*long_poll=*/false);  // the same record, answered at once
  RouteMembers(server, agent, /*long_poll=*/false);
  httplib::Server role_server;
  role_server.new_task_queue = [] { return new httplib::ThreadPool(kRoleApiThreads); };
  RouteRole(role_server, agent, /*long_poll=*/true);
  RouteMembers(role_server, agent, /*long_poll=*/true);

  // The members: followed through the API server as the pod's own identity, which may read
  // only this domain (and its Lease). Without one, GET /role works as before and GET /members
  // says why there are none.
  std::unique_ptr<dpcm::client::ApiClient> api;
  std::unique_ptr<dpcm::agent::MemberFollower> follower;
  std::jthread following;
  if (!options->follow_members) {
    agent.members().SetError("not following the members (--members=false)");
  } else if (auto connected = ConnectAsPod(*options); !connected.ok()) {
    spdlog::warn("members: {}", connected.status().ToString());
    agent.members().SetError(connected.status().ToString());
  } else {
    api = std::move(*connected);
    follower = std::make_unique<dpcm::agent::MemberFollower>(*api, config.ns, config.domain,
                                                             agent.members());
    following = std::jthread([&follower](const std::stop_token& stop) { follower->Run(stop); });
  }

  std::thread serving;
  std::thread role_serving;
  bool ok = Serve(server, options->bind_address, options->port, serving);
  if (ok && !options->role_host.empty()) {
    ok = Serve(role_server, options->role_host, options->role_port, role_serving);
  }
  if (ok) {
    int signal = 0;
    sigwait(&signals, &signal);
    spdlog::info("signal {}: stopping", signal);
  }
  agent.Close();  // long-polls answer now instead of holding the stop for up to 60 s
  if (following.joinable()) {
    following.request_stop();
    following.join();
  }
  server.stop();
  role_server.stop();
  if (serving.joinable()) serving.join();
  if (role_serving.joinable()) role_serving.join();
  return ok ? 0 : 1;
}
