#include "pkg/rolehook/hook.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "pkg/health/probe.h"
#include "pkg/subprocess/subprocess.h"

namespace dpcm::rolehook {
namespace {

constexpr std::size_t kMaxDetail = 200;

std::string Clip(std::string text) {
  if (const auto newline = text.find('\n'); newline != std::string::npos) text.resize(newline);
  if (text.size() > kMaxDetail) text.resize(kMaxDetail);
  return text;
}

Status DeliverHttp(const HookSpec& spec, const Assignment& a) {
  if (!health::IsIpAddress(a.pod_ip)) return Status::Transport(a.pod + " has no usable IP");
  httplib::Client client(a.pod_ip, spec.http_port);
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(spec.timeout).count();
  client.set_connection_timeout(us / 1'000'000, us % 1'000'000);
  client.set_read_timeout(us / 1'000'000, us % 1'000'000);
  client.set_write_timeout(us / 1'000'000, us % 1'000'000);
  client.set_keep_alive(false);
  const nlohmann::json body = {
      {"domain", a.domain}, {"pod", a.pod}, {"role", a.role}, {"epoch", a.epoch}};
  auto response = client.Post(spec.http_path, body.dump(), "application/json");
  if (!response) {
    return Status::Transport("POST " + spec.http_path + ": " +
                             httplib::to_string(response.error()));
  }
  if (response->status < 200 || response->status >= 300) {
    return Status::Transport("POST " + spec.http_path + " returned " +
                             std::to_string(response->status) + ": " + Clip(response->body));
  }
  return Status::Ok();
}

Status DeliverCommand(const HookSpec& spec, const Assignment& a) {
  subprocess::RunOptions run;
  run.argv = spec.argv;
  run.timeout = spec.timeout;
  run.max_output = std::size_t{16} * 1024;
  run.env = {subprocess::PathEntry(),
             "DPCM_NAMESPACE=" + a.ns,
             "DPCM_DOMAIN=" + a.domain,
             "DPCM_POD=" + a.pod,
             "DPCM_POD_IP=" + a.pod_ip,
             "DPCM_ROLE=" + a.role,
             "DPCM_EPOCH=" + std::to_string(a.epoch)};
  for (const auto& [name, value] : spec.env) run.env.push_back(name + "=" + value);
  auto ran = subprocess::Run(run);
  if (!ran.ok()) return Status::Transport(ran.status().message());
  if (!ran->succeeded()) {
    const std::string detail = Clip(ran->stderr_text.empty() ? ran->stdout_text : ran->stderr_text);
    return Status::Transport("role hook " + ran->Describe() +
                             (detail.empty() ? "" : ": " + detail));
  }
  return Status::Ok();
}

}  // namespace

Status Deliver(const HookSpec& spec, const Assignment& assignment) {
  switch (spec.kind) {
    case HookKind::kHttp:
      return DeliverHttp(spec, assignment);
    case HookKind::kCommand:
      return DeliverCommand(spec, assignment);
    case HookKind::kNone:
      break;
  }
  return Status::Ok();
}

Status DeliverOverNetwork(const HookSpec& spec, const Assignment& assignment) {
  if (spec.kind == HookKind::kCommand) {
    return Status::Config("command role hooks run in the member pod, never in the operator");
  }
  return Deliver(spec, assignment);
}

}  // namespace dpcm::rolehook
