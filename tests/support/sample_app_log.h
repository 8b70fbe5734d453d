// What dpcm-sample-app logged: the roles it accepted through the role hook, in order.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace dpcm::testing {

struct AcceptedRole {
  std::string role;  // "dc" or "pc"
  int64_t epoch = -1;

  std::string ToString() const { return role + "@" + std::to_string(epoch); }
};

// Every role the app accepted (its {"event":"role",...} lines), oldest first.
inline std::vector<AcceptedRole> AcceptedRoles(const std::string& log) {
  std::vector<AcceptedRole> roles;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    const nlohmann::json parsed = nlohmann::json::parse(line, nullptr, false);
    if (!parsed.is_object() || parsed.value("event", "") != "role") continue;
    roles.push_back({parsed.value("role", ""), parsed.value("epoch", int64_t{-1})});
  }
  return roles;
}

// The last role the app accepted as "role@epoch", or "none".
inline std::string LastAcceptedRole(const std::string& log) {
  const auto roles = AcceptedRoles(log);
  return roles.empty() ? "none" : roles.back().ToString();
}

}  // namespace dpcm::testing
