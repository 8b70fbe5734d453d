#include "pkg/domain/spec_parts.h"

#include <algorithm>
#include <cctype>
#include <string_view>

namespace dpcm::domain {

using nlohmann::json;

// Reads an integer field of `parent` into `out`, checking `minimum`.
bool ReadInt(const json& parent, const char* key, const std::string& path, int minimum, int& out,
             SpecError* error) {
  if (!parent.is_object() || !parent.contains(key)) return true;
  const json& value = parent[key];
  if (!value.is_number_integer()) {
    *error = {path + "." + key, "must be an integer"};
    return false;
  }
  const auto number = value.get<int64_t>();
  if (number < minimum || number > 1'000'000) {
    *error = {path + "." + key, "must be between " + std::to_string(minimum) + " and 1000000"};
    return false;
  }
  out = static_cast<int>(number);
  return true;
}

Status Fail(SpecError* error) { return Status::Invalid(error->field + ": " + error->message); }

// A label name or value segment: at most 63 of [A-Za-z0-9_.-], alphanumeric at both ends
// (or empty, where `may_be_empty`).
bool IsLabelSegment(std::string_view text, bool may_be_empty) {
  if (text.empty()) return may_be_empty;
  if (text.size() > 63 || !std::isalnum(static_cast<unsigned char>(text.front())) ||
      !std::isalnum(static_cast<unsigned char>(text.back()))) {
    return false;
  }
  return std::all_of(text.begin(), text.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// A label key: [prefix/]name, the prefix a DNS subdomain of at most 253 characters.
bool IsLabelKey(std::string_view key) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return IsLabelSegment(key, false);
  const std::string_view prefix = key.substr(0, slash);
  const bool prefix_ok = !prefix.empty() && prefix.size() <= 253 &&
                         std::all_of(prefix.begin(), prefix.end(),
                                     [](char c) {
                                       return std::islower(static_cast<unsigned char>(c)) ||
                                              std::isdigit(static_cast<unsigned char>(c)) ||
                                              c == '-' || c == '.';
                                     }) &&
                         std::isalnum(static_cast<unsigned char>(prefix.front())) &&
                         std::isalnum(static_cast<unsigned char>(prefix.back()));
  return prefix_ok && IsLabelSegment(key.substr(slash + 1), false);
}

namespace {

bool ReadString(const json& parent, const char* key, const std::string& path, std::string& out,
                SpecError* error) {
  if (!parent.is_object() || !parent.contains(key)) return true;
  if (!parent[key].is_string()) {
    *error = {path + "." + key, "must be a string"};
    return false;
  }
  out = parent[key].get<std::string>();
  return true;
}

bool ReadPort(const json& parent, const std::string& path, int& port, SpecError* error) {
  if (!parent.contains("port")) {
    *error = {path + ".port", "is required"};
    return false;
  }
  if (!ReadInt(parent, "port", path, 1, port, error)) return false;
  if (port > 65535) {
    *error = {path + ".port", "must be between 1 and 65535"};
    return false;
  }
  return true;
}

bool ReadPath(const json& parent, const std::string& path, std::string& out, SpecError* error) {
  if (!ReadString(parent, "path", path, out, error)) return false;
  if (out.empty() || out[0] != '/') {
    *error = {path + ".path", "must start with /"};
    return false;
  }
  return true;
}

// Why a `command` (health check or role hook) is refused. Such a program belongs in the
// member pod, next to the process it checks or tells (dpcm-agent will run it there); run
// by the operator it could neither see the application nor be kept from acting with the
// operator's rights, which whoever may write a ProcessDomain would then borrow.
constexpr const char* kCommandRefused =
    "is not run: the operator never runs a program named by a ProcessDomain (it would run "
    "with the operator's rights, not in the member pod); use http or tcp, or enable "
    "spec.agent to run it in the member pod";

// What the agent is given for a command: less time than the operator waits for its answer.
std::chrono::milliseconds AgentTimeout(std::chrono::milliseconds operator_timeout) {
  return std::max(operator_timeout * 4 / 5, operator_timeout - std::chrono::milliseconds(500));
}

// command: {command: [argv...], env: [{name, value}]}: its shape is checked before it is
// refused, so that a malformed one is named as such.
bool ReadCommand(const json& c, const std::string& path, std::vector<std::string>& argv,
                 std::vector<std::pair<std::string, std::string>>& env, SpecError* error) {
  if (!c.is_object() || !c.contains("command") || !c["command"].is_array() ||
      c["command"].empty()) {
    *error = {path + ".command", "must list the program and its arguments"};
    return false;
  }
  for (const auto& arg : c["command"]) {
    if (!arg.is_string()) {
      *error = {path + ".command", "every item must be a string"};
      return false;
    }
    argv.push_back(arg.get<std::string>());
  }
  if (argv[0].empty()) {
    *error = {path + ".command[0]", "must name a program"};
    return false;
  }
  if (c.contains("env")) {
    if (!c["env"].is_array()) {
      *error = {path + ".env", "must be a list"};
      return false;
    }
    for (const auto& var : c["env"]) {
      const bool named = var.is_object() && var.contains("name") && var["name"].is_string() &&
                         !var["name"].get<std::string>().empty() &&
                         var["name"].get<std::string>().find('=') == std::string::npos;
      if (!named || (var.contains("value") && !var["value"].is_string())) {
        *error = {path + ".env", "every item needs a name (without '=') and a string value"};
        return false;
      }
      env.emplace_back(var["name"].get<std::string>(), var.value("value", ""));
    }
  }
  return true;
}

// How many of `keys` `parent` sets (non-null).
int CountSet(const json& parent, std::initializer_list<const char*> keys) {
  int n = 0;
  for (const char* key : keys) n += parent.contains(key) && !parent[key].is_null() ? 1 : 0;
  return n;
}

}  // namespace

bool ParseAgent(const json& a, AgentSpec& out, SpecError* error) {
  const std::string path = "spec.agent";
  if (!a.is_object()) {
    *error = {path, "must be an object"};
    return false;
  }
  if (a.contains("enabled")) {
    if (!a["enabled"].is_boolean()) {
      *error = {path + ".enabled", "must be true or false"};
      return false;
    }
    out.enabled = a["enabled"].get<bool>();
  }
  return !a.contains("port") || ReadPort(a, path, out.port, error);
}

bool ParseHealth(const json& h, health::ProbeSpec& out, AgentSpec& agent, SpecError* error) {
  const std::string path = "spec.health";
  if (!h.is_object()) {
    *error = {path, "must be an object"};
    return false;
  }
  int period = 2;
  int timeout = 1;
  if (!ReadInt(h, "periodSeconds", path, 1, period, error) ||
      !ReadInt(h, "timeoutSeconds", path, 1, timeout, error) ||
      !ReadInt(h, "failureThreshold", path, 1, out.failure_threshold, error) ||
      !ReadInt(h, "successThreshold", path, 1, out.success_threshold, error)) {
    return false;
  }
  if (timeout > period) {
    *error = {path + ".timeoutSeconds",
              "must not exceed periodSeconds (" + std::to_string(period) + ")"};
    return false;
  }
  out.period = std::chrono::seconds(period);
  out.timeout = std::chrono::seconds(timeout);
  if (CountSet(h, {"http", "tcp", "command"}) > 1) {
    *error = {path, "set at most one of http, tcp and command"};
    return false;
  }
  if (h.contains("http") && !h["http"].is_null()) {
    const json& x = h["http"];
    const std::string p = path + ".http";
    out.kind = health::ProbeKind::kHttp;
    std::string scheme = "HTTP";
    if (!x.is_object() || !ReadPort(x, p, out.http.port, error) ||
        !ReadPath(x, p, out.http.path, error) || !ReadString(x, "scheme", p, scheme, error) ||
        !ReadString(x, "expectedBody", p, out.http.expected_body, error)) {
      if (!x.is_object()) *error = {p, "must be an object"};
      return false;
    }
    if (scheme != "HTTP") {
      *error = {p + ".scheme", "only HTTP is supported"};
      return false;
    }
    if (x.contains("expectedStatus")) {
      int status = 0;
      if (!ReadInt(x, "expectedStatus", p, 100, status, error)) return false;
      if (status > 599) {
        *error = {p + ".expectedStatus", "must be between 100 and 599"};
        return false;
      }
      out.http.expected_status = status;
    }
  } else if (h.contains("tcp") && !h["tcp"].is_null()) {
    out.kind = health::ProbeKind::kTcp;
    if (!h["tcp"].is_object()) {
      *error = {path + ".tcp", "must be an object"};
      return false;
    }
    if (!ReadPort(h["tcp"], path + ".tcp", out.tcp.port, error)) return false;
  } else if (h.contains("command") && !h["command"].is_null()) {
    if (!ReadCommand(h["command"], path + ".command", out.command.argv, out.command.env, error)) {
      return false;
    }
    if (!agent.enabled) {
      *error = {path + ".command", kCommandRefused};
      return false;
    }
    // The agent runs it; the operator only asks the agent.
    agent.health_command_json = h["command"].dump();
    agent.health_timeout = AgentTimeout(out.timeout);
    out.kind = health::ProbeKind::kHttp;
    out.command = {};
    out.http = {};
    out.http.port = agent.port;
    out.http.path = "/healthz";
  }
  return true;
}

bool ParseRestart(const json& r, RestartSpec& out, SpecError* error) {
  const std::string path = "spec.restart";
  if (!r.is_object()) {
    *error = {path, "must be an object"};
    return false;
  }
  if (!ReadInt(r, "maxConcurrent", path, 1, out.max_concurrent, error)) return false;
  if (r.contains("backoff")) {
    const json& b = r["backoff"];
    if (!b.is_object()) {
      *error = {path + ".backoff", "must be an object"};
      return false;
    }
    if (!ReadInt(b, "initialSeconds", path + ".backoff", 1, out.backoff_initial_seconds, error) ||
        !ReadInt(b, "maxSeconds", path + ".backoff", 1, out.backoff_max_seconds, error)) {
      return false;
    }
  }
  if (out.backoff_max_seconds < out.backoff_initial_seconds) {
    *error = {path + ".backoff.maxSeconds", "must be at least initialSeconds (" +
                                                std::to_string(out.backoff_initial_seconds) + ")"};
    return false;
  }
  return true;
}

bool ParseRoleHooks(const json& r, rolehook::HookSpec& out, AgentSpec& agent, SpecError* error) {
  const std::string path = "spec.roleHooks";
  if (!r.is_object()) {
    *error = {path, "must be an object"};
    return false;
  }
  int timeout = 2;
  if (!ReadInt(r, "timeoutSeconds", path, 1, timeout, error)) return false;
  out.timeout = std::chrono::seconds(timeout);
  if (CountSet(r, {"http", "command"}) > 1) {
    *error = {path, "set at most one of http and command"};
    return false;
  }
  if (r.contains("http") && !r["http"].is_null()) {
    out.kind = rolehook::HookKind::kHttp;
    const json& x = r["http"];
    if (!x.is_object()) {
      *error = {path + ".http", "must be an object"};
      return false;
    }
    if (!ReadPort(x, path + ".http", out.http_port, error) ||
        !ReadPath(x, path + ".http", out.http_path, error)) {
      return false;
    }
  } else if (r.contains("command") && !r["command"].is_null()) {
    if (!ReadCommand(r["command"], path + ".command", out.argv, out.env, error)) return false;
    if (!agent.enabled) {
      *error = {path + ".command", kCommandRefused};
      return false;
    }
    // The agent runs it (ensure-active / ensure-passive) and answers the operator's POST.
    agent.role_hook_command_json = r["command"].dump();
    agent.role_hook_timeout = AgentTimeout(out.timeout);
    out.kind = rolehook::HookKind::kHttp;
    out.argv.clear();
    out.env.clear();
    out.http_port = agent.port;
    out.http_path = "/dpcm/role";
  }
  return true;
}

}  // namespace dpcm::domain
