#include "pkg/agent/agent.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace dpcm::agent {
namespace {

using Json = nlohmann::json;

Reply Text(int status, std::string body) { return {status, std::move(body) + "\n", "text/plain"}; }

std::optional<int64_t> ParseInt(const std::string& text) {
  int64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

}  // namespace

Result<CommandSpec> ParseCommandJson(const std::string& text) {
  const Json parsed = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!parsed.is_object()) return Status::Config("not a JSON object: " + text.substr(0, 80));
  const Json& command = parsed.contains("command") ? parsed["command"] : Json();
  if (!command.is_array() || command.empty()) {
    return Status::Config("command: must list the program and its arguments");
  }
  CommandSpec spec;
  for (const auto& word : command) {
    if (!word.is_string()) return Status::Config("command: every item must be a string");
    spec.argv.push_back(word.get<std::string>());
  }
  if (spec.argv[0].empty()) return Status::Config("command[0]: must name a program");
  const Json& env = parsed.contains("env") ? parsed["env"] : Json::array();
  if (!env.is_array()) return Status::Config("env: must be a list of {name, value}");
  for (const auto& entry : env) {
    if (!entry.is_object() || !entry.contains("name") || !entry["name"].is_string() ||
        entry["name"].get<std::string>().empty() ||
        entry["name"].get<std::string>().find('=') != std::string::npos ||
        (entry.contains("value") && !entry["value"].is_string())) {
      return Status::Config("env: every item must be {name, value} with a name without '='");
    }
    spec.env.emplace_back(entry["name"].get<std::string>(), entry.value("value", ""));
  }
  return spec;
}

std::optional<std::chrono::milliseconds> ParseWait(const std::string& text) {
  struct Unit {
    const char* suffix;
    int64_t millis;
  };
  for (const Unit& unit : {Unit{"ms", 1}, Unit{"s", 1000}, Unit{"m", 60000}}) {
    const std::string suffix = unit.suffix;
    if (text.size() > suffix.size() && text.ends_with(suffix)) {
      const auto value = ParseInt(text.substr(0, text.size() - suffix.size()));
      if (!value || *value < 0) return std::nullopt;
      return std::chrono::milliseconds(*value * unit.millis);
    }
  }
  const auto seconds = ParseInt(text);
  if (!seconds || *seconds < 0) return std::nullopt;
  return std::chrono::milliseconds(*seconds * 1000);
}

Agent::Agent(AgentConfig config, std::unique_ptr<health::Checker> checker, HookRunner deliver,
             WallNow now)
    : config_(std::move(config)),
      checker_(std::move(checker)),
      deliver_(std::move(deliver)),
      now_(std::move(now)),
      board_(config_.domain, config_.pod),
      members_(config_.domain) {}

Reply Agent::Healthz() {
  if (!config_.health || !checker_) return Text(200, "ok (no health command)");
  std::lock_guard lock(health_mutex_);
  const health::Target target{config_.ns, config_.domain, config_.pod,
                              "",         config_.pod_ip, board_.Current().role};
  const health::CheckResult result = checker_->Check(*config_.health, target);
  if (result.healthy()) return Text(200, result.message.empty() ? "ok" : result.message);
  return Text(503, std::string(health::OutcomeLabel(result.outcome)) + ": " + result.message);
}

Reply Agent::RoleHook(const std::string& body) {
  const Json request = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (!request.is_object() || !request.contains("role") || !request["role"].is_string() ||
      !request.contains("epoch") || !request["epoch"].is_number_integer()) {
    return Text(400, "expected {\"domain\",\"pod\",\"role\",\"epoch\"}");
  }
  const std::string domain = request.value("domain", "");
  const std::string pod = request.value("pod", "");
  if (domain != config_.domain || pod != config_.pod) {
    return Text(400, "addressed to " + domain + "/" + pod + ", this agent serves " +
                         config_.domain + "/" + config_.pod);
  }
  const std::string role = request["role"].get<std::string>();
  const auto epoch = request["epoch"].get<int64_t>();

  std::lock_guard lock(hook_mutex_);
  const RoleRecord current = board_.Current();
  switch (Judge(current, role, epoch)) {
    case Verdict::kInvalid:
      return Text(400, "role must be dc or pc and epoch >= 0");
    case Verdict::kStale:
      return Text(409, "stale: epoch " + std::to_string(epoch) + " is older than " +
                           std::to_string(current.epoch));
    case Verdict::kUnchanged:
    case Verdict::kChanged:
      break;
  }
  if (acknowledged_ && acknowledged_->first == role && acknowledged_->second == epoch) {
    return Text(200, "already " + role + " at epoch " + std::to_string(epoch));
  }
  if (role == "pc") (void)board_.Apply(role, epoch, now_());  // demote at once
  if (config_.role_hook) {
    const rolehook::Assignment assignment{config_.ns,     config_.domain, config_.pod, "",
                                          config_.pod_ip, role,           epoch};
    const Status delivered = deliver_(*config_.role_hook, assignment);
    if (!delivered.ok()) return Text(503, delivered.message());
  }
  if (role == "dc") (void)board_.Apply(role, epoch, now_());
  acknowledged_.emplace(role, epoch);
  return Text(200, role + " at epoch " + std::to_string(epoch));
}

Result<std::optional<LongPoll>> ParseLongPoll(const std::optional<std::string>& after,
                                              const std::optional<std::string>& wait) {
  if (!after) return std::optional<LongPoll>();
  const auto version = ParseInt(*after);
  if (!version || *version < 0) {
    return Status::Config("after: expected a version (an integer >= 0)");
  }
  LongPoll poll{static_cast<uint64_t>(*version), std::chrono::seconds(30)};
  if (wait) {
    const auto parsed = ParseWait(*wait);
    if (!parsed) return Status::Config("wait: expected a duration such as 30s or 500ms");
    poll.timeout = std::min<std::chrono::milliseconds>(*parsed, kMaxRoleWait);
  }
  return std::optional<LongPoll>(poll);
}

Reply Agent::GetRole(const std::optional<std::string>& after,
                     const std::optional<std::string>& wait) {
  const auto poll = ParseLongPoll(after, wait);
  if (!poll.ok()) return Text(400, poll.status().message());
  const RoleRecord record =
      *poll ? board_.Wait((*poll)->after, (*poll)->timeout) : board_.Current();
  return {200, ToJson(record).dump() + "\n", "application/json"};
}

Reply Agent::GetMembers(const std::optional<std::string>& after,
                        const std::optional<std::string>& wait) {
  const auto poll = ParseLongPoll(after, wait);
  if (!poll.ok()) return Text(400, poll.status().message());
  const MembersView view =
      *poll ? members_.Wait((*poll)->after, (*poll)->timeout) : members_.Current();
  return {200, ToJson(view).dump() + "\n", "application/json"};
}

void Agent::Close() {
  board_.Close();
  members_.Close();
}

}  // namespace dpcm::agent
