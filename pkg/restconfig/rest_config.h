// How to reach and authenticate to an API server: kubeconfig and in-cluster loading.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "pkg/status/status.h"

namespace dpcm::restconfig {

// Supplies the bearer token for each request. A token file is re-read at most once a
// minute (as client-go does), so a rotated service-account token is picked up without
// a restart. Thread-safe.
class TokenSource {
 public:
  // A fixed token (may be empty: no Authorization header).
  explicit TokenSource(std::string token) : token_(std::move(token)) {}
  // A token read from `path` now and re-read when older than `refresh`.
  static Result<std::shared_ptr<TokenSource>> FromFile(
      std::string path, std::chrono::seconds refresh = std::chrono::seconds(60));

  // The current token. When a re-read fails the last good token is kept.
  std::string Token();

 private:
  TokenSource(std::string path, std::string token, std::chrono::seconds refresh);

  std::mutex mutex_;
  std::string path_;
  std::string token_;
  std::chrono::seconds refresh_{0};
  std::chrono::steady_clock::time_point read_at_;
};

// Everything needed to open TLS connections to one API server as one identity.
// PEM material is held as data; file references are read at load time.
struct RestConfig {
  std::string server;  // "https://127.0.0.1:6443"
  std::string ca_pem;  // trusted CA bundle; empty = system roots
  bool insecure_skip_tls_verify = false;
  std::string client_cert_pem;  // client certificate authentication
  std::string client_key_pem;
  std::shared_ptr<TokenSource> token;  // bearer token authentication; may be null
  std::string username;                // basic authentication (rare)
  std::string password;
  std::string namespace_name = "default";  // the context's (or pod's) namespace
};

// Loads a kubeconfig from `paths` (colon-separated, like $KUBECONFIG; the first file
// to define a name wins, as in kubectl) using `context` or the current context.
// Relative file references are resolved against the file that names them. Fails with a
// kConfig status naming the file and field on anything missing or malformed.
Result<RestConfig> LoadKubeconfig(const std::string& paths, const std::string& context = "");

// Loads the in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT from the
// environment and token, ca.crt and namespace from `service_account_dir`.
Result<RestConfig> LoadInCluster(
    const std::string& service_account_dir = "/var/run/secrets/kubernetes.io/serviceaccount");

// The usual order: an explicit --kubeconfig path, else $KUBECONFIG, else in-cluster
// config when KUBERNETES_SERVICE_HOST is set, else ~/.kube/config.
Result<RestConfig> LoadDefault(const std::string& kubeconfig_flag = "",
                               const std::string& context = "");

}  // namespace dpcm::restconfig
