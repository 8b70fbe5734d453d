// The kubelet's service-account token mount, played without mount namespaces: a TokenRequest
// bound to the pod, written to a per-pod directory the containers are told about.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "pkg/client/api_client.h"
#include "pkg/status/status.h"

namespace dpcm::podsim {

// The environment variable that names the directory (token, ca.crt, namespace) in place of
// /var/run/secrets/kubernetes.io/serviceaccount, which every simulated pod would share.
inline constexpr const char* kServiceAccountDirEnv = "DPCM_SERVICE_ACCOUNT_DIR";
// How long a minted token is valid. The simulator does not refresh it (the kubelet does at
// 80 %): a test that runs longer sees its pods' API calls fail with 401 after this.
inline constexpr int kTokenExpirationSeconds = 3600;

// Mints a token for ServiceAccount `ns`/`account` bound to pod `pod` (uid `uid`: the token
// stops working once the pod is deleted) with the TokenRequest API, and writes `token`,
// `ca.crt` (the CA the simulator trusts for the API server) and `namespace` into `dir`
// (created, mode 0700; files 0600). Fails with the server's reason (e.g. NotFound when the
// ServiceAccount does not exist) or the file error.
Status WriteServiceAccountToken(client::ApiClient& client, const std::string& ns,
                                const std::string& account, const std::string& pod,
                                const std::string& uid, const std::filesystem::path& dir);

// What a container of such a pod gets in its environment: KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT (the API server `server_url` the simulator itself talks to, as
// "https://HOST:PORT") and kServiceAccountDirEnv=`dir`.
std::vector<std::string> ServiceAccountEnv(const std::string& server_url,
                                           const std::filesystem::path& dir);

}  // namespace dpcm::podsim
