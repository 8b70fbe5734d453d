// Agent: what dpcm-agent answers (health, role hooks, the role API), apart from its HTTP servers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pkg/agent/member_board.h"
#include "pkg/agent/role_board.h"
#include "pkg/health/probe.h"
#include "pkg/rolehook/hook.h"
#include "pkg/status/status.h"

namespace dpcm::agent {

// The port the agent serves the operator on (GET /healthz, POST /dpcm/role).
inline constexpr int kDefaultPort = 8719;
// The application's role API (GET /role), on localhost by default.
inline constexpr const char* kDefaultRoleBindAddress = "127.0.0.1:8720";
// The longest a GET /role long-poll may wait.
inline constexpr std::chrono::seconds kMaxRoleWait{60};

// Who the agent speaks for and what it runs. The commands are spec.health.command and
// spec.roleHooks.command of the member's ProcessDomain; they run here, inside the member pod.
struct AgentConfig {
  std::string ns;
  std::string domain;
  std::string pod;
  std::string pod_ip;
  std::optional<health::ProbeSpec> health;      // kind kCommand; none: /healthz answers 200
  std::optional<rolehook::HookSpec> role_hook;  // kind kCommand; none: roles are only recorded
};

// A command as spec.health.command and spec.roleHooks.command write it.
struct CommandSpec {
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
};

// Parses the JSON of such a command: {"command": ["prog", "arg"...], "env": [{"name": "N",
// "value": "V"}]}. The error names what is wrong; nothing throws.
Result<CommandSpec> ParseCommandJson(const std::string& text);

// An HTTP answer: status code, body and content type.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = "text/plain";
};

// Parses "30s", "500ms", "2m" or a plain number of seconds; nothing for anything else.
std::optional<std::chrono::milliseconds> ParseWait(const std::string& text);

// A long-poll's parameters: wait for a version greater than `after`, at most `timeout`.
struct LongPoll {
  uint64_t after = 0;
  std::chrono::milliseconds timeout{30000};
};

// Reads ?after=<version>&wait=<duration> (wait defaults to 30 s, capped at kMaxRoleWait):
// nothing without `after` (answer at once); a kConfig error naming the parameter otherwise.
Result<std::optional<LongPoll>> ParseLongPoll(const std::optional<std::string>& after,
                                              const std::optional<std::string>& wait);

// The agent's decisions. Its HTTP servers (cmd/dpcm-agent) only call these. Thread-safe:
// health checks run one at a time, role hook deliveries one at a time in arrival order.
class Agent {
 public:
  // Runs a role hook command; rolehook::Deliver in the binary, a fake in tests.
  using HookRunner = std::function<Status(const rolehook::HookSpec&, const rolehook::Assignment&)>;
  // The wall time as RFC 3339, for RoleRecord::since.
  using WallNow = std::function<std::string()>;

  // `checker` runs the health command (health::MakeChecker(kCommand) in the binary); it may
  // be null when config.health is unset.
  Agent(AgentConfig config, std::unique_ptr<health::Checker> checker, HookRunner deliver,
        WallNow now);

  // GET /healthz: runs the health command in the pod (bounded by its timeout). 200 with the
  // command's message when it succeeds (or when there is none), 503 with the reason when it
  // fails, times out or cannot start.
  Reply Healthz();

  // POST /dpcm/role with {"domain","pod","role","epoch"} (what the operator's http role hook
  // sends). Answers after the role hook command finished: 200 when it succeeded (or there is
  // none), 503 with the reason when it failed, 409 for an epoch older than the one recorded,
  // 400 for a malformed request or one addressed to another domain or pod. A demotion ("pc")
  // is recorded before its command runs (the application hears it at once); a promotion
  // ("dc") only once its command succeeded. An assignment already acknowledged answers 200
  // without running the command again.
  Reply RoleHook(const std::string& body);

  // GET /role[?after=<version>&wait=<duration>]: the current RoleRecord as JSON. With
  // `after`, waits until the version is greater (a change) or `wait` (default 30 s, at most
  // kMaxRoleWait) has passed. 400 for unparsable parameters. Blocks the calling thread.
  Reply GetRole(const std::optional<std::string>& after, const std::optional<std::string>& wait);

  // GET /members[?after=<version>&wait=<duration>]: the domain's members as MembersView JSON,
  // with the changes (joined/left/changed) after `after`. With `after`, waits as GetRole does,
  // on the members' own version counter. 400 for unparsable parameters. When the agent cannot
  // follow its domain, "synced" is false and "error" says why (the role API works regardless).
  Reply GetMembers(const std::optional<std::string>& after, const std::optional<std::string>& wait);

  // The agent is stopping: every waiting long-poll (GET /role, GET /members) answers now
  // with the current record, and later ones at once, so that the servers stop promptly.
  void Close();

  const RoleBoard& board() const { return board_; }
  // Written by the MemberFollower (or by main, when there is no API identity).
  MemberBoard& members() { return members_; }

 private:
  const AgentConfig config_;
  const std::unique_ptr<health::Checker> checker_;
  const HookRunner deliver_;
  const WallNow now_;
  RoleBoard board_;
  MemberBoard members_;
  std::mutex health_mutex_;  // one check at a time
  std::mutex hook_mutex_;    // one delivery at a time
  // The last assignment whose command succeeded; guarded by hook_mutex_.
  std::optional<std::pair<std::string, int64_t>> acknowledged_;
};

}  // namespace dpcm::agent
