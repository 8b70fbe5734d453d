// Access to the local control plane (hack/testenv.sh) from integration and e2e tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/status/status.h"

namespace dpcm::testing {

// The control plane that ctest's "testenv" fixture started (or reused): its state
// directory is $DPCM_TESTENV_DIR, else $TMPDIR/dpcm-testenv, as in hack/testenv.sh.
class TestEnv {
 public:
  // The state directory holding kubeconfigs, tokens and pki/.
  static std::string Dir();
  // Path of a kubeconfig written by hack/testenv.sh: "kubeconfig" (admin token),
  // "kubeconfig-cert" (admin client certificate), "kubeconfig-restricted" (a service
  // account with no RBAC), "kubeconfig-operator" (the chart's service account).
  static std::string Kubeconfig(const std::string& which = "kubeconfig");
  // A client for that kubeconfig; aborts the test with a clear message if none can be built.
  static std::unique_ptr<client::ApiClient> Client(const std::string& which = "kubeconfig",
                                                   client::ClientOptions options = {});
  // Runs `hack/testenv.sh ARGS...` (argv, no shell) and returns its stdout; fails on a
  // non-zero exit.
  static Result<std::string> Script(const std::vector<std::string>& args);
  // Runs `hack/netns.sh ARGS...` (the test world's network) against this control plane and
  // returns its stdout; fails on a non-zero exit.
  static Result<std::string> Netns(const std::vector<std::string>& args);
  // Whether `hack/testenv.sh up` gave this control plane a network for nodes in their own
  // namespaces ($DPCM_TESTENV_DIR/net/env and the nodes' kubeconfig exist).
  static bool HasNodeNetwork();
  // Runs kubectl as the admin of the local control plane; returns its stdout.
  static Result<std::string> Kubectl(const std::vector<std::string>& args);
  // Applies manifests/crd/ and waits until the API serves ProcessDomains.
  static Status InstallCrd();
  // The build's bin/ directory (dpcm-operator, dpcm-podsim, dpcm-sample-app).
  static std::string BinDir();
  // "PATH=<bin dir>:<PATH>": lets the pod simulator find dpcm-sample-app.
  static std::string PathWithBinDir();
  // Whether the API server answers GET /readyz with 200 now (as the admin, verifying its
  // certificate; one attempt, at most a second).
  static bool Ready();
  // The first octet (2..201) of 127.X.0.0 for simulated pods, `offset` apart for each set
  // of nodes a test process starts: from $DPCM_TEST_POD_OCTET when set (to keep clear of
  // other test runs on the machine), else from the pid.
  static int FirstPodOctet(int offset);
  // Creates a namespace with a unique name starting with `prefix` and returns its name.
  static std::string CreateNamespace(client::ApiClient& client, const std::string& prefix);
};

// Runs `argv` (no shell), waits, and returns its stdout, or an error with its stderr.
Result<std::string> RunCommand(const std::vector<std::string>& argv);

// A random lower-case suffix for unique object names.
std::string RandomSuffix(size_t length = 6);

}  // namespace dpcm::testing
