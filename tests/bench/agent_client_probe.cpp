// dpcm-bench-agent-client-probe: dpcm-agent's servers plus pkg/client, for dpcm-bench-rss.
//
// What dpcm-agent costs once it also talks to the API server (issue 11: its own Lease and
// pod): the agent's two HTTP servers and health/role-hook wiring, as cmd/dpcm-agent/main.cpp
// builds them, plus an ApiClient that has made one TLS request. Linked like dpcm-agent
// (static when DPCM_STATIC_LINK is on).
//
// Usage: dpcm-bench-agent-client-probe --kubeconfig PATH --port N --role-port N
// Prints "ready" once the request was answered and both servers listen; stops on SIGTERM.
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>
#include <string>
#include <thread>

#include "pkg/agent/agent.h"
#include "pkg/client/api_client.h"
#include "pkg/client/resource.h"
#include "pkg/election/lease_record.h"
#include "pkg/health/probe.h"
#include "pkg/logging/logging.h"
#include "pkg/restconfig/rest_config.h"
#include "pkg/rolehook/hook.h"

namespace {

using dpcm::agent::Agent;
using dpcm::agent::Reply;

void Send(httplib::Response& response, const Reply& reply) {
  response.status = reply.status;
  response.set_content(reply.body, reply.content_type);
}

std::optional<std::string> Param(const httplib::Request& request, const char* name) {
  if (!request.has_param(name)) return std::nullopt;
  return request.get_param_value(name);
}

int Fail(const std::string& message) {
  std::cerr << "dpcm-bench-agent-client-probe: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string kubeconfig;
  int port = 0;
  int role_port = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--kubeconfig") kubeconfig = argv[i + 1];
    if (flag == "--port") port = std::stoi(argv[i + 1]);
    if (flag == "--role-port") role_port = std::stoi(argv[i + 1]);
  }
  if (kubeconfig.empty() || port == 0 || role_port == 0) {
    return Fail("usage: --kubeconfig PATH --port N --role-port N");
  }
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  if (auto s = dpcm::logging::Configure("info", "text"); !s.ok()) return Fail(s.message());

  auto config = dpcm::restconfig::LoadDefault(kubeconfig);
  if (!config.ok()) return Fail(config.status().message());
  auto client = dpcm::client::ApiClient::Create(*config);
  if (!client.ok()) return Fail(client.status().message());
  auto ns = (*client)->Get(dpcm::client::resources::Namespaces(), "", "default");
  if (!ns.ok()) return Fail("GET namespace default: " + ns.status().ToString());

  dpcm::agent::AgentConfig agent_config;
  agent_config.domain = "bench";
  agent_config.pod = "bench-0";
  agent_config.ns = "default";
  dpcm::health::ProbeSpec health;  // what --health-command '{"command":["true"]}' gives
  health.kind = dpcm::health::ProbeKind::kCommand;
  health.command.argv = {"true"};
  agent_config.health = health;
  dpcm::rolehook::HookSpec hook;
  hook.kind = dpcm::rolehook::HookKind::kCommand;
  hook.argv = {"true"};
  agent_config.role_hook = hook;
  Agent agent(agent_config, dpcm::health::MakeChecker(dpcm::health::ProbeKind::kCommand),
              dpcm::rolehook::Deliver,
              [] { return dpcm::election::FormatMicroTime(std::chrono::system_clock::now()); });

  httplib::Server server;
  server.Get("/healthz", [&agent](const httplib::Request&, httplib::Response& response) {
    Send(response, agent.Healthz());
  });
  server.Post("/dpcm/role", [&agent](const httplib::Request& request, httplib::Response& response) {
    Send(response, agent.RoleHook(request.body));
  });
  httplib::Server role_server;
  role_server.new_task_queue = [] { return new httplib::ThreadPool(32); };
  role_server.Get("/role", [&agent](const httplib::Request& request, httplib::Response& response) {
    Send(response, agent.GetRole(Param(request, "after"), Param(request, "wait")));
  });
  if (!server.bind_to_port("127.0.0.1", port) ||
      !role_server.bind_to_port("127.0.0.1", role_port)) {
    return Fail("cannot listen");
  }
  std::thread serving([&server] { server.listen_after_bind(); });
  std::thread role_serving([&role_server] { role_server.listen_after_bind(); });
  std::cout << "ready" << std::endl;
  int signal = 0;
  sigwait(&signals, &signal);
  server.stop();
  role_server.stop();
  serving.join();
  role_serving.join();
  return 0;
}
