#include "cmd/kubectl-dpcm/options.h"

#include <array>
#include <utility>

namespace dpcm::kubectl_plugin {
namespace {

constexpr std::array<std::pair<const char*, Verb>, 5> kVerbs = {{{"status", Verb::kStatus},
                                                                 {"pause", Verb::kPause},
                                                                 {"resume", Verb::kResume},
                                                                 {"why", Verb::kWhy},
                                                                 {"check", Verb::kCheck}}};

constexpr const char* kGlobalFlags = R"(
Global flags (as kubectl's):
      --kubeconfig PATH        kubeconfig file (default: $KUBECONFIG, in-cluster, ~/.kube/config)
      --context NAME           kubeconfig context (default: the current context)
  -n, --namespace NS           namespace (default: the context's namespace)
  -A, --all-namespaces         every namespace (status and check)
  -o, --output table|json      output format (default: table)
  -h, --help                   this help
)";

// Minimum and maximum positional arguments of each verb.
std::pair<size_t, size_t> Arity(Verb verb) {
  switch (verb) {
    case Verb::kStatus:
      return {0, 1};
    case Verb::kPause:
    case Verb::kResume:
    case Verb::kWhy:
      return {1, 1};
    case Verb::kCheck:
      return {0, 1};
    case Verb::kNone:
      break;
  }
  return {0, 0};
}

}  // namespace

std::string VerbName(Verb verb) {
  for (const auto& [name, value] : kVerbs) {
    if (value == verb) return name;
  }
  return "";
}

Result<PluginOptions> ParseArgs(const std::vector<std::string>& args) {
  PluginOptions options;
  std::string output = "table";
  struct ValueFlag {
    std::string long_name;
    std::string short_name;  // "" when none
    std::string* into;
  };
  const std::array<ValueFlag, 4> value_flags = {{{"--kubeconfig", "", &options.kubeconfig},
                                                 {"--context", "", &options.context},
                                                 {"--namespace", "-n", &options.namespace_name},
                                                 {"--output", "-o", &output}}};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    const ValueFlag* flag = nullptr;
    std::string inline_value;
    bool has_inline_value = false;
    for (const auto& candidate : value_flags) {
      if (arg == candidate.long_name ||
          (!candidate.short_name.empty() && arg == candidate.short_name)) {
        flag = &candidate;
      } else if (arg.rfind(candidate.long_name + "=", 0) == 0) {
        flag = &candidate;
        inline_value = arg.substr(candidate.long_name.size() + 1);
        has_inline_value = true;
      }
      if (flag != nullptr) break;
    }
    if (flag != nullptr) {
      if (has_inline_value) {
        *flag->into = inline_value;
      } else if (i + 1 < args.size()) {
        *flag->into = args[++i];
      } else {
        return Status::Config("flag " + arg + " needs a value");
      }
      continue;
    }
    if (arg == "-A" || arg == "--all-namespaces") {
      options.all_namespaces = true;
    } else if (arg == "-h" || arg == "--help") {
      options.help = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::Config("unknown flag " + arg);
    } else if (options.verb == Verb::kNone) {
      for (const auto& [name, verb] : kVerbs) {
        if (arg == name) options.verb = verb;
      }
      if (options.verb == Verb::kNone) {
        return Status::Config("unknown command \"" + arg +
                              "\" (try: status, why, check, pause, resume)");
      }
    } else {
      options.args.push_back(arg);
    }
  }
  if (output == "json") {
    options.output = OutputFormat::kJson;
  } else if (output != "table" && output != "wide") {
    return Status::Config("--output must be table or json, not \"" + output + "\"");
  }
  if (options.help) return options;
  if (options.verb == Verb::kNone) return Status::Config("no command given (try --help)");
  const auto [min, max] = Arity(options.verb);
  if (options.args.size() < min) {
    return Status::Config(VerbName(options.verb) + " needs a DOMAIN (the ProcessDomain's name)");
  }
  if (options.args.size() > max) {
    return Status::Config(VerbName(options.verb) + ": unexpected argument \"" + options.args[max] +
                          "\"");
  }
  if (options.all_namespaces && options.verb != Verb::kStatus && options.verb != Verb::kCheck) {
    return Status::Config(VerbName(options.verb) + " works on one domain: drop --all-namespaces");
  }
  return options;
}

std::string Usage(Verb verb) {
  std::string text;
  switch (verb) {
    case Verb::kNone:
      text = R"(kubectl dpcm: operate dpcm ProcessDomains (active/passive pod groups).

Usage: kubectl dpcm COMMAND [DOMAIN] [flags]

Commands:
  status [DOMAIN]   the DC, epoch, phase, members and last failover of each domain
  why DOMAIN        the last failovers: reason, per-phase timings, FailingOver/Promoted Events
  check [DOMAIN]    audit domains: Lease holder, dc labels, epochs, -dc Service endpoints
                    (exit 0 clean, 1 findings, 2 error)
  pause DOMAIN      stop the operator acting on the domain (spec.paused=true)
  resume DOMAIN     let it act again (spec.paused=false)

Run "kubectl dpcm COMMAND --help" for a command's details.
)";
      break;
    case Verb::kStatus:
      text = R"(Usage: kubectl dpcm status [DOMAIN] [flags]

Shows each ProcessDomain in the namespace (or DOMAIN, or every namespace with -A): its
phase, DC, epoch, ready members, failovers and last failover, then every member with its
role, readiness, health, consecutive health-check failures, restarts and message.
Exits 2 on an error (unknown domain, no permission, unreachable server).
)";
      break;
    case Verb::kPause:
      text = R"(Usage: kubectl dpcm pause DOMAIN [flags]

Sets spec.paused=true (a merge patch): the operator stops acting on the domain. Pods,
labels and the Lease stay as they are; a DC that fails is not replaced until resume.
)";
      break;
    case Verb::kResume:
      text = R"(Usage: kubectl dpcm resume DOMAIN [flags]

Sets spec.paused=false (a merge patch): the operator reconciles the domain again.
)";
      break;
    case Verb::kWhy:
      text = R"(Usage: kubectl dpcm why DOMAIN [flags]

Explains the domain's failovers: the last one from status.lastFailover (from, to,
reason, epoch, and the cumulative time at which each phase finished: decided, fenced,
leaseWritten, labeled, and hooksAcknowledged when the domain has role hooks and the new
DC acknowledged its promotion), then the domain's FailingOver and Promoted Events,
newest first.
)";
      break;
    case Verb::kCheck:
      text = R"(Usage: kubectl dpcm check [DOMAIN] [flags]

Audits every domain in scope (the namespace, DOMAIN, or every namespace with -A):
  - exactly one pod carries dpcm.io/role=dc (none is a finding once members exist)
  - the domain's Lease holder is that pod
  - the pod's dpcm.io/epoch annotation equals the Lease's leaseTransitions
  - status.activePod names it
  - the <domain>-dc Service's endpoints (EndpointSlices, else Endpoints) name only it
Prints one line per finding. Exit code: 0 clean, 1 findings, 2 error.
)";
      break;
  }
  return text + kGlobalFlags;
}

}  // namespace dpcm::kubectl_plugin
