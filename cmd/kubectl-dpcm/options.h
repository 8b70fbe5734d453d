// The `kubectl dpcm` command line: the verb, its arguments and kubectl's global flags, and help.
#pragma once

#include <string>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::kubectl_plugin {

// The verbs the plugin ships. A new verb (e.g. a future `switchover`) is one more entry
// here, one usage text in options.cpp and one function in commands.cpp.
enum class Verb { kNone, kStatus, kPause, kResume, kWhy, kCheck };

enum class OutputFormat { kTable, kJson };

struct PluginOptions {
  Verb verb = Verb::kNone;
  std::vector<std::string> args;  // positional arguments after the verb (the domain)
  std::string kubeconfig;         // --kubeconfig; "" = $KUBECONFIG, in-cluster, ~/.kube/config
  std::string context;            // --context; "" = the current context
  std::string namespace_name;     // -n/--namespace; "" = the context's namespace
  bool all_namespaces = false;    // -A/--all-namespaces
  OutputFormat output = OutputFormat::kTable;
  bool help = false;  // -h/--help: print the verb's usage (or the plugin's) and exit 0
};

// Parses the arguments after the program name, kubectl style: flags may come before or
// after the verb, as "--flag value" or "--flag=value". Fails with a kConfig status naming
// the offending argument on an unknown verb or flag, a flag without its value, a bad
// --output, or a verb given the wrong number of arguments (unless --help is set).
Result<PluginOptions> ParseArgs(const std::vector<std::string>& args);

// The verb's --help text (the plugin's overview for Verb::kNone).
std::string Usage(Verb verb);

// The verb's name as typed ("status"), or "" for kNone.
std::string VerbName(Verb verb);

}  // namespace dpcm::kubectl_plugin
