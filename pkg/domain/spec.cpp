#include "pkg/domain/spec.h"

#include <algorithm>
#include <cctype>
#include <string_view>

#include "pkg/cache/informer.h"
#include "pkg/domain/spec_parts.h"

namespace dpcm::domain {

using nlohmann::json;

Result<DomainSpec> ParseSpec(const json& domain, SpecError* error) {
  SpecError local;
  if (error == nullptr) error = &local;
  DomainSpec spec;
  if (!domain.is_object() || !domain.contains("spec") || !domain["spec"].is_object()) {
    *error = {"spec", "is missing"};
    return Fail(error);
  }
  const json& s = domain["spec"];
  if (!ReadInt(s, "replicas", "spec", 1, spec.replicas, error)) return Fail(error);
  if (spec.replicas > kMaxReplicas) {
    *error = {"spec.replicas", "must be at most " + std::to_string(kMaxReplicas)};
    return Fail(error);
  }

  const bool has_template = s.contains("template") && !s["template"].is_null();
  const bool has_selector = s.contains("selector") && !s["selector"].is_null();
  if (has_template == has_selector) {
    *error = {"spec.template", has_template ? "set together with spec.selector: choose one"
                                            : "or spec.selector is required"};
    return Fail(error);
  }
  if (has_template) {
    const json& t = s["template"];
    const json* containers = t.is_object() && t.contains("spec") && t["spec"].is_object() &&
                                     t["spec"].contains("containers")
                                 ? &t["spec"]["containers"]
                                 : nullptr;
    if (containers == nullptr || !containers->is_array() || containers->empty()) {
      *error = {"spec.template.spec.containers", "must list at least one container"};
      return Fail(error);
    }
    for (const auto& container : *containers) {
      if (!container.is_object() || !container.contains("name") || !container["name"].is_string() ||
          container["name"].get<std::string>().empty()) {
        *error = {"spec.template.spec.containers", "every container needs a name"};
        return Fail(error);
      }
    }
    if (t.contains("metadata") && t["metadata"].is_object() && t["metadata"].contains("labels") &&
        t["metadata"]["labels"].is_object()) {
      for (const auto& [key, value] : t["metadata"]["labels"].items()) {
        if (key == kDomainLabel || key == kRoleLabel) {
          *error = {"spec.template.metadata.labels", std::string(key) + " is set by dpcm"};
          return Fail(error);
        }
        if (!value.is_string()) {
          *error = {"spec.template.metadata.labels." + key, "must be a string"};
          return Fail(error);
        }
      }
    }
    spec.pod_template = t;
  } else {
    const json& sel = s["selector"];
    if (!sel.is_object() || !sel.contains("matchLabels") || !sel["matchLabels"].is_object() ||
        sel["matchLabels"].empty()) {
      *error = {"spec.selector.matchLabels", "must hold at least one label"};
      return Fail(error);
    }
    if (sel.contains("matchExpressions") && !sel["matchExpressions"].empty()) {
      *error = {"spec.selector.matchExpressions", "is not supported yet; use matchLabels"};
      return Fail(error);
    }
    for (const auto& [key, value] : sel["matchLabels"].items()) {
      if (!IsLabelKey(key)) {
        *error = {"spec.selector.matchLabels", "\"" + key.substr(0, 80) + "\" is not a label key"};
        return Fail(error);
      }
      if (key == kDomainLabel || key == kRoleLabel) {
        *error = {"spec.selector.matchLabels." + key,
                  "is set by the operator; select on your own labels"};
        return Fail(error);
      }
      if (!value.is_string() || !IsLabelSegment(value.get<std::string>(), true)) {
        *error = {"spec.selector.matchLabels." + key,
                  "must be a label value (at most 63 of A-Z a-z 0-9 - _ .)"};
        return Fail(error);
      }
      spec.selector[key] = value.get<std::string>();
    }
  }

  if (s.contains("election")) {
    const json& e = s["election"];
    auto& el = spec.election;
    if (!ReadInt(e, "leaseDurationSeconds", "spec.election", 1, el.lease_duration_seconds, error) ||
        !ReadInt(e, "renewDeadlineSeconds", "spec.election", 1, el.renew_deadline_seconds, error) ||
        !ReadInt(e, "retryPeriodSeconds", "spec.election", 1, el.retry_period_seconds, error) ||
        !ReadInt(e, "failoverDelaySeconds", "spec.election", 0, el.failover_delay_seconds, error)) {
      return Fail(error);
    }
  }
  const auto& el = spec.election;
  if (el.renew_deadline_seconds >= el.lease_duration_seconds) {
    *error = {"spec.election.renewDeadlineSeconds", "must be less than leaseDurationSeconds (" +
                                                        std::to_string(el.lease_duration_seconds) +
                                                        ")"};
    return Fail(error);
  }
  if (el.retry_period_seconds * 12 > el.renew_deadline_seconds * 10) {
    *error = {"spec.election.retryPeriodSeconds", "must be at most renewDeadlineSeconds / 1.2 (" +
                                                      std::to_string(el.renew_deadline_seconds) +
                                                      " / 1.2)"};
    return Fail(error);
  }

  if (s.contains("agent") && !s["agent"].is_null() && !ParseAgent(s["agent"], spec.agent, error)) {
    return Fail(error);
  }
  if (s.contains("health") && !s["health"].is_null() &&
      !ParseHealth(s["health"], spec.health, spec.agent, error)) {
    return Fail(error);
  }
  if (s.contains("restart") && !s["restart"].is_null() &&
      !ParseRestart(s["restart"], spec.restart, error)) {
    return Fail(error);
  }
  if (s.contains("roleHooks") && !s["roleHooks"].is_null() &&
      !ParseRoleHooks(s["roleHooks"], spec.role_hooks, spec.agent, error)) {
    return Fail(error);
  }
  if (spec.agent.enabled && spec.role_hooks.kind == rolehook::HookKind::kNone) {
    // With the agent every member hears its role even without a roleHooks command: the
    // operator posts it to the agent, which runs nothing and serves it to the application
    // (GET /role). Without this, the role API of such a domain never left "unknown".
    spec.role_hooks.kind = rolehook::HookKind::kHttp;
    spec.role_hooks.http_port = spec.agent.port;
    spec.role_hooks.http_path = "/dpcm/role";
  }

  if (s.contains("service") && s["service"].is_object() && s["service"].contains("ports")) {
    const json& ports = s["service"]["ports"];
    if (!ports.is_array()) {
      *error = {"spec.service.ports", "must be a list"};
      return Fail(error);
    }
    for (size_t i = 0; i < ports.size(); ++i) {
      const std::string path = "spec.service.ports[" + std::to_string(i) + "]";
      ServicePort port;
      if (!ReadInt(ports[i], "port", path, 1, port.port, error)) return Fail(error);
      if (port.port < 1 || port.port > 65535) {
        *error = {path + ".port", "must be between 1 and 65535"};
        return Fail(error);
      }
      for (const char* key : {"name", "protocol"}) {
        if (ports[i].contains(key) && !ports[i][key].is_string()) {
          *error = {path + "." + key, "must be a string"};
          return Fail(error);
        }
      }
      port.name = ports[i].value("name", "");
      port.protocol = ports[i].value("protocol", "TCP");
      if (ports[i].contains("targetPort")) port.target_port = ports[i]["targetPort"];
      spec.service_ports.push_back(std::move(port));
    }
  }
  if (s.contains("paused")) {
    if (!s["paused"].is_boolean()) {
      *error = {"spec.paused", "must be true or false"};
      return Fail(error);
    }
    spec.paused = s["paused"].get<bool>();
  }
  return spec;
}

void TrimDomain(json& domain) {
  if (!domain.is_object() || !domain.contains("metadata") || !domain["metadata"].is_object()) {
    return;
  }
  cache::DropManagedFields(domain);
  json& meta = domain["metadata"];
  if (meta.contains("annotations") && meta["annotations"].is_object()) {
    meta["annotations"].erase("kubectl.kubernetes.io/last-applied-configuration");
  }
}

}  // namespace dpcm::domain
