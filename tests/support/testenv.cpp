#include "tests/support/testenv.h"

#include <fcntl.h>
#include <httplib.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "pkg/restconfig/rest_config.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace dpcm::testing {
namespace {

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe)
  return value != nullptr && *value != '\0' ? value : fallback;
}

// The first word of the file at `path` ("" when unreadable).
std::string FirstWord(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  in >> word;
  return word;
}

std::string ReadAll(int fd) {
  std::string out;
  std::array<char, 4096> buffer{};
  for (ssize_t n; (n = read(fd, buffer.data(), buffer.size())) > 0;) {
    out.append(buffer.data(), static_cast<size_t>(n));
  }
  return out;
}

}  // namespace

std::string RandomSuffix(size_t length) {
  thread_local std::mt19937 generator{std::random_device{}()};
  static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out;
  std::uniform_int_distribution<size_t> pick(0, kAlphabet.size() - 1);
  for (size_t i = 0; i < length; ++i) out.push_back(kAlphabet[pick(generator)]);
  return out;
}

Result<std::string> RunCommand(const std::vector<std::string>& argv) {
  std::array<int, 2> out_pipe{};
  std::array<int, 2> err_pipe{};
  // Close-on-exec, so that daemons the command starts do not hold the pipes open.
  if (pipe2(out_pipe.data(), O_CLOEXEC) != 0 || pipe2(err_pipe.data(), O_CLOEXEC) != 0) {
    return Status::Internal("pipe failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (rc != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return Status::Internal("cannot run " + argv[0]);
  }
  // stderr is small (script logs); read stdout first, then stderr.
  std::string out = ReadAll(out_pipe[0]);
  std::string err = ReadAll(err_pipe[0]);
  close(out_pipe[0]);
  close(err_pipe[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::Internal(argv[0] + " failed: " + err);
  }
  return out;
}

std::string TestEnv::Dir() {
  return EnvOr("DPCM_TESTENV_DIR", EnvOr("TMPDIR", "/tmp") + "/dpcm-testenv");
}

std::string TestEnv::Kubeconfig(const std::string& which) { return Dir() + "/" + which; }

std::unique_ptr<client::ApiClient> TestEnv::Client(const std::string& which,
                                                   client::ClientOptions options) {
  auto config = restconfig::LoadKubeconfig(Kubeconfig(which));
  if (!config.ok()) {
    throw std::runtime_error("no local control plane (run hack/testenv.sh up): " +
                             config.status().ToString());
  }
  auto client = client::ApiClient::Create(std::move(*config), options);
  if (!client.ok()) throw std::runtime_error(client.status().ToString());
  return std::move(*client);
}

Result<std::string> TestEnv::Script(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {std::string(DPCM_SOURCE_DIR) + "/hack/testenv.sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

Result<std::string> TestEnv::Netns(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {std::string(DPCM_SOURCE_DIR) + "/hack/netns.sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

bool TestEnv::HasNodeNetwork() {
  std::error_code error;
  return std::filesystem::exists(Dir() + "/net/env", error) &&
         std::filesystem::exists(Kubeconfig("kubeconfig-node"), error);
}

Result<std::string> TestEnv::Kubectl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {"kubectl", "--kubeconfig", Kubeconfig()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunCommand(argv);
}

Status TestEnv::InstallCrd() {
  auto applied = Kubectl(
      {"apply", "-f", std::string(DPCM_SOURCE_DIR) + "/manifests/crd/dpcm.io_processdomains.yaml"});
  if (!applied.ok()) return applied.status().WithContext("apply the CRD");
  auto established = Kubectl(
      {"wait", "--for=condition=Established", "--timeout=30s", "crd/processdomains.dpcm.io"});
  return established.ok() ? Status::Ok() : established.status();
}

std::string TestEnv::BinDir() { return DPCM_BINARY_DIR; }

std::string TestEnv::PathWithBinDir() {
  const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe)
  return "PATH=" + BinDir() + ":" + (path != nullptr ? path : "/usr/bin:/bin");
}

int TestEnv::FirstPodOctet(int offset) {
  const std::string base = EnvOr("DPCM_TEST_POD_OCTET", "");
  const int start = base.empty() ? static_cast<int>(getpid()) : std::stoi(base) - 2;
  return 2 + (start + offset) % 200;
}

bool TestEnv::Ready() {
  const std::string port = FirstWord(Dir() + "/apiserver.port");
  if (port.empty()) return false;
  httplib::SSLClient http("127.0.0.1", std::stoi(port));
  http.set_ca_cert_path((Dir() + "/pki/ca.crt").c_str());
  http.enable_server_certificate_verification(true);
  http.set_connection_timeout(1);
  http.set_read_timeout(1);
  http.set_bearer_token_auth(FirstWord(Dir() + "/admin.token"));
  auto response = http.Get("/readyz");
  return response && response->status == 200;
}

std::string TestEnv::CreateNamespace(client::ApiClient& client, const std::string& prefix) {
  const std::string name = prefix + "-" + RandomSuffix();
  auto created =
      client.Create(client::resources::Namespaces(), "",
                    {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", name}}}});
  if (!created.ok()) throw std::runtime_error("create namespace: " + created.status().ToString());
  return name;
}

}  // namespace dpcm::testing
