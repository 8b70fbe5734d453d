// The operator's command-line flags (kubebuilder names) parsed into OperatorOptions.
#pragma once

#include <string>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::operator_main {

struct OperatorOptions {
  std::string kubeconfig;
  std::vector<std::string> namespaces;  // empty = all
  bool leader_elect = false;
  std::string leader_election_id = "dpcm-operator";
  std::string leader_election_namespace;
  int lease_duration_seconds = 15;
  int renew_deadline_seconds = 10;
  int retry_period_seconds = 2;
  std::string metrics_bind_address = ":8080";  // "0" disables
  std::string health_probe_bind_address = ":8081";
  int workers = 4;
  double kube_api_qps = 20;
  int kube_api_burst = 30;
  std::string log_level = "info";
  std::string log_format = "text";
  // The image of the dpcm-agent sidecar added to members of domains with spec.agent
  // enabled (the operator's image holds the agent too), and the agent's role API address.
  std::string agent_image = "ghcr.io/dpcm/dpcm-operator:0.1.0";
  std::string agent_role_bind_address = "127.0.0.1:8720";
  bool help = false;
};

// Parses argv ("--flag=value", "--flag value", "--bool-flag"); an unknown flag or a bad
// value is a kConfig error naming the flag.
Result<OperatorOptions> ParseOptions(int argc, const char* const* argv);

// Where the pod's service account namespace is mounted in a cluster.
inline constexpr const char* kServiceAccountNamespaceFile =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

// The namespace of the operator's own Lease: --leader-election-namespace, else the
// namespace in `service_account_namespace_file` (in-cluster), else a kConfig error asking
// for the flag.
Result<std::string> LeaderElectionNamespace(
    const OperatorOptions& options,
    const std::string& service_account_namespace_file = kServiceAccountNamespaceFile);

// The --help text.
std::string Usage();

}  // namespace dpcm::operator_main
