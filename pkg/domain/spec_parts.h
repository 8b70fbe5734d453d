// Parts of the ProcessDomain spec read one at a time (health plugin, restart policy, role hooks)
// and the field readers ParseSpec shares with them.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "pkg/domain/spec.h"
#include "pkg/health/probe.h"
#include "pkg/rolehook/hook.h"
#include "pkg/status/status.h"

namespace dpcm::domain {

// Each reader fills `out` and returns true, or sets *error (naming the field as a user
// writes it) and returns false. None throws, whatever the JSON holds.

// An integer field of `parent` (absent: `out` unchanged), at least `minimum`.
bool ReadInt(const nlohmann::json& parent, const char* key, const std::string& path, int minimum,
             int& out, SpecError* error);
// The error as an Invalid status ("<field>: <message>").
Status Fail(SpecError* error);
// A DNS-1123 label segment of a label key or value (empty allowed when `may_be_empty`).
bool IsLabelSegment(std::string_view text, bool may_be_empty);
// A label key: an optional DNS subdomain prefix and '/', then a name segment.
bool IsLabelKey(std::string_view key);

// spec.agent: enabled and port.
bool ParseAgent(const nlohmann::json& a, AgentSpec& out, SpecError* error);
// spec.health and spec.roleHooks. A `command` is refused unless agent.enabled; then it is
// stored in `agent` and `out` becomes http to the agent (GET /healthz, POST /dpcm/role).
bool ParseHealth(const nlohmann::json& h, health::ProbeSpec& out, AgentSpec& agent,
                 SpecError* error);
bool ParseRestart(const nlohmann::json& r, RestartSpec& out, SpecError* error);
bool ParseRoleHooks(const nlohmann::json& r, rolehook::HookSpec& out, AgentSpec& agent,
                    SpecError* error);

}  // namespace dpcm::domain
