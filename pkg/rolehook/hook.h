// Role hooks (spec.roleHooks): telling a member's application its role and epoch, over HTTP or a
// command.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::rolehook {

enum class HookKind { kNone, kHttp, kCommand };

// spec.roleHooks with its defaults. kNone: the application reads the dpcm.io/role label.
struct HookSpec {
  HookKind kind = HookKind::kNone;
  int http_port = 0;
  std::string http_path = "/dpcm/role";
  std::vector<std::string> argv;
  std::vector<std::pair<std::string, std::string>> env;
  std::chrono::milliseconds timeout{2000};

  bool operator==(const HookSpec& other) const = default;
};

// What one member must be told: its role ("dc" or "pc") at the domain's epoch (the
// Lease's leaseTransitions, a fencing token that only grows).
struct Assignment {
  std::string ns;
  std::string domain;
  std::string pod;
  // Who hears the hook in this run (domain::Member::hook_receiver: the pod's uid, its
  // application's restarts and its agent's): an application or agent that restarted has
  // forgotten its role and is told again.
  std::string instance;
  std::string pod_ip;
  std::string role;
  int64_t epoch = 0;

  bool operator==(const Assignment& other) const = default;
};

// Delivers one assignment and waits for the application's answer (bounded by
// spec.timeout). http: POST {"domain","pod","role","epoch"} to pod_ip:port/path, a 2xx
// acknowledges. command: argv run without a shell, with DPCM_ROLE, DPCM_EPOCH,
// DPCM_NAMESPACE, DPCM_DOMAIN, DPCM_POD, DPCM_POD_IP (and spec env); exit 0
// acknowledges. The error says why the application did not acknowledge.
// Runs commands: for a process inside the member pod (the agent), never for the operator.
Status Deliver(const HookSpec& spec, const Assignment& assignment);

// What the operator may deliver: http only. A command hook is refused (an error, nothing
// runs), so that a command reaching the operator by any path is never executed with its
// rights.
Status DeliverOverNetwork(const HookSpec& spec, const Assignment& assignment);

}  // namespace dpcm::rolehook
