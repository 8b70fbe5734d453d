#include "tests/podsim/service_account.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dpcm::podsim {
namespace {

Status WriteFile(const std::filesystem::path& path, const std::string& content) {
  const std::filesystem::path temp = path.string() + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Config("cannot write " + temp.string() + ": " + std::strerror(errno));
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string error = std::strerror(errno);
      ::close(fd);
      return Status::Config("cannot write " + temp.string() + ": " + error);
    }
    written += static_cast<size_t>(n);
  }
  ::close(fd);
  std::error_code error;
  std::filesystem::rename(temp, path, error);  // readers never see half a token
  if (error) return Status::Config("cannot rename to " + path.string() + ": " + error.message());
  return Status::Ok();
}

}  // namespace

Status WriteServiceAccountToken(client::ApiClient& client, const std::string& ns,
                                const std::string& account, const std::string& pod,
                                const std::string& uid, const std::filesystem::path& dir) {
  const client::Json request = {
      {"apiVersion", "authentication.k8s.io/v1"},
      {"kind", "TokenRequest"},
      {"metadata", {{"name", account}}},
      {"spec",
       {{"expirationSeconds", kTokenExpirationSeconds},
        {"boundObjectRef", {{"apiVersion", "v1"}, {"kind", "Pod"}, {"name", pod}, {"uid", uid}}}}}};
  auto minted =
      client.Create(client::ResourceRef{"", "v1", "serviceaccounts"}, ns, request, "token");
  if (!minted.ok()) return minted.status();
  const std::string token = minted->value("/status/token"_json_pointer, std::string());
  if (token.empty()) return Status::Decode("the TokenRequest answer holds no status.token");
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) return Status::Config("cannot create " + dir.string() + ": " + error.message());
  std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                               std::filesystem::perm_options::replace, error);
  for (const auto& [name, content] : {std::pair<const char*, const std::string&>{"token", token},
                                      {"ca.crt", client.config().ca_pem},
                                      {"namespace", ns}}) {
    if (Status s = WriteFile(dir / name, content); !s.ok()) return s;
  }
  return Status::Ok();
}

std::vector<std::string> ServiceAccountEnv(const std::string& server_url,
                                           const std::filesystem::path& dir) {
  std::string host_port = server_url;
  if (const auto scheme = host_port.find("://"); scheme != std::string::npos) {
    host_port.erase(0, scheme + 3);
  }
  if (const auto slash = host_port.find('/'); slash != std::string::npos) host_port.resize(slash);
  std::string host = host_port;
  std::string port = "443";
  if (const auto colon = host_port.rfind(':');
      colon != std::string::npos && host_port.find(']', colon) == std::string::npos) {
    host = host_port.substr(0, colon);
    port = host_port.substr(colon + 1);
  }
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port,
          std::string(kServiceAccountDirEnv) + "=" + dir.string()};
}

}  // namespace dpcm::podsim
