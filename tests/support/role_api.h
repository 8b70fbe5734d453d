// The agent's role API as the tests' applications call it: GET on the pod's address.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>

namespace dpcm::testing {

// The port the test operator gives every agent's role API (--agent-role-bind-address
// $(POD_IP):8720 in OperatorEnv).
constexpr int kRoleApiPort = 8720;

// GET `path` (e.g. "/role?after=3&wait=30s") on the role API at `ip`; the parsed answer,
// or null unless it answered 200 within `timeout_s` (+5 s of slack for a long-poll).
inline nlohmann::json RoleApiGet(const std::string& ip, const std::string& path,
                                 int timeout_s = 2) {
  httplib::Client agent(ip, kRoleApiPort);
  agent.set_connection_timeout(2);
  agent.set_read_timeout(timeout_s + 5);
  auto response = agent.Get(path);
  if (!response || response->status != 200) return nullptr;
  return nlohmann::json::parse(response->body, nullptr, false);
}

}  // namespace dpcm::testing
