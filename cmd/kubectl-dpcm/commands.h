// The verbs of `kubectl dpcm` against the API server: read, decide (report.h, audit.h), print.
#pragma once

#include <chrono>
#include <iosfwd>

#include "cmd/kubectl-dpcm/options.h"
#include "pkg/client/api_client.h"

namespace dpcm::kubectl_plugin {

// Exit codes. `check` returns kFindings when a rule is broken; every verb returns kError
// when it could not do its work (unknown domain, forbidden, unreachable server), and
// kUsage for a bad command line.
inline constexpr int kOk = 0;
inline constexpr int kFindings = 1;
inline constexpr int kError = 2;
inline constexpr int kUsage = 2;

// Runs `options.verb` with `api`, writing its result to `out` and any error (one
// "error: ..." line that says what failed and on which object) to `err`. Returns the
// process exit code. `now` is the time ages are computed against.
int RunVerb(const PluginOptions& options, client::ApiClient& api, std::ostream& out,
            std::ostream& err, std::chrono::system_clock::time_point now);

// The one-line message for a failed request about `what` ("ProcessDomain \"a\" in
// namespace \"b\"", or a resource for lists): not found, forbidden, unauthorized,
// unreachable server, or the server's own message. `server` is the API server's URL.
std::string DescribeError(const Status& status, const std::string& what, const std::string& server);

}  // namespace dpcm::kubectl_plugin
