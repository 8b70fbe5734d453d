#include "pkg/restconfig/rest_config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "pkg/base64/base64.h"

namespace dpcm::restconfig {
namespace {

namespace fs = std::filesystem;

Result<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Config("cannot read " + path);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::string Trim(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

Result<std::string> DecodeBase64(const std::string& encoded, const std::string& what) {
  auto decoded = base64::Decode(encoded);
  if (!decoded) return Status::Config(what + " is not valid base64");
  return std::move(*decoded);
}

// One kubeconfig file, parsed just enough to merge: named maps of clusters, users and
// contexts, each entry remembering the directory of the file that defined it.
struct Entry {
  YAML::Node node;
  fs::path base_dir;
  std::string file;
};

struct MergedKubeconfig {
  std::map<std::string, Entry> clusters;
  std::map<std::string, Entry> users;
  std::map<std::string, Entry> contexts;
  std::string current_context;
};

Status MergeNamedList(const YAML::Node& list, const std::string& key, const std::string& file,
                      const fs::path& base_dir, std::map<std::string, Entry>& into) {
  if (!list) return Status::Ok();
  if (!list.IsSequence()) return Status::Config(file + ": " + key + " must be a list");
  for (const auto& item : list) {
    if (!item.IsMap() || !item["name"] || !item["name"].IsScalar()) {
      return Status::Config(file + ": every entry of " + key + " needs a name");
    }
    const std::string singular = key.substr(0, key.size() - 1);
    const YAML::Node body = item[singular];
    if (body && !body.IsMap()) {
      return Status::Config(file + ": " + key + "[" + item["name"].as<std::string>() + "]." +
                            singular + " must be a map");
    }
    // The first file to define a name wins, as in kubectl.
    into.emplace(item["name"].as<std::string>(),
                 Entry{body ? body : YAML::Node(YAML::NodeType::Map), base_dir, file});
  }
  return Status::Ok();
}

Status MergeFile(const std::string& file, MergedKubeconfig& merged) {
  auto text = ReadFile(file);
  if (!text.ok()) return text.status();
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return Status::Config(file + ": not valid YAML: " + e.what());
  }
  if (root.IsNull()) return Status::Ok();  // an empty file is allowed, as in kubectl
  if (!root.IsMap()) return Status::Config(file + ": a kubeconfig must be a YAML map");
  const fs::path base_dir = fs::absolute(fs::path(file)).parent_path();
  try {
    for (const char* key : {"clusters", "users", "contexts"}) {
      auto& into = std::string(key) == "clusters" ? merged.clusters
                   : std::string(key) == "users"  ? merged.users
                                                  : merged.contexts;
      if (Status s = MergeNamedList(root[key], key, file, base_dir, into); !s.ok()) return s;
    }
    if (merged.current_context.empty() && root["current-context"]) {
      merged.current_context = root["current-context"].as<std::string>();
    }
  } catch (const YAML::Exception& e) {
    return Status::Config(file + ": " + e.what());
  }
  return Status::Ok();
}

// Reads `<field>-data` (base64) or `<field>` (a file path) of `entry` into `out`.
Status ReadPemField(const Entry& entry, const std::string& field, const std::string& what,
                    std::string& out) {
  const std::string data_key = field + "-data";
  if (entry.node[data_key]) {
    auto decoded = DecodeBase64(entry.node[data_key].as<std::string>(),
                                entry.file + ": " + what + " " + data_key);
    if (!decoded.ok()) return decoded.status();
    out = std::move(*decoded);
    return Status::Ok();
  }
  if (entry.node[field]) {
    fs::path path = entry.node[field].as<std::string>();
    if (path.is_relative()) path = entry.base_dir / path;
    auto content = ReadFile(path.string());
    if (!content.ok()) return content.status().WithContext(entry.file + ": " + what + " " + field);
    out = std::move(*content);
  }
  return Status::Ok();
}

Result<RestConfig> BuildConfig(const MergedKubeconfig& merged, const std::string& files,
                               const std::string& context_override) {
  const std::string context_name =
      context_override.empty() ? merged.current_context : context_override;
  if (context_name.empty()) return Status::Config(files + ": no current-context is set");
  const auto context = merged.contexts.find(context_name);
  if (context == merged.contexts.end()) {
    return Status::Config(files + ": context \"" + context_name + "\" not found");
  }
  const YAML::Node& ctx = context->second.node;
  const std::string cluster_name = ctx["cluster"] ? ctx["cluster"].as<std::string>() : "";
  const auto cluster = merged.clusters.find(cluster_name);
  if (cluster == merged.clusters.end()) {
    return Status::Config(files + ": context \"" + context_name + "\" names cluster \"" +
                          cluster_name + "\", which is not defined");
  }
  RestConfig config;
  const YAML::Node& cl = cluster->second.node;
  if (!cl["server"] || cl["server"].as<std::string>().empty()) {
    return Status::Config(cluster->second.file + ": cluster \"" + cluster_name +
                          "\" has no server");
  }
  config.server = cl["server"].as<std::string>();
  if (config.server.rfind("https://", 0) != 0 && config.server.rfind("http://", 0) != 0) {
    return Status::Config(cluster->second.file + ": cluster \"" + cluster_name +
                          "\" server must start with https:// or http://");
  }
  if (cl["insecure-skip-tls-verify"]) {
    config.insecure_skip_tls_verify = cl["insecure-skip-tls-verify"].as<bool>();
  }
  if (Status s = ReadPemField(cluster->second, "certificate-authority", "cluster " + cluster_name,
                              config.ca_pem);
      !s.ok()) {
    return s;
  }
  if (ctx["namespace"]) config.namespace_name = ctx["namespace"].as<std::string>();

  const std::string user_name = ctx["user"] ? ctx["user"].as<std::string>() : "";
  if (user_name.empty()) return config;  // anonymous
  const auto user = merged.users.find(user_name);
  if (user == merged.users.end()) {
    return Status::Config(files + ": context \"" + context_name + "\" names user \"" + user_name +
                          "\", which is not defined");
  }
  const Entry& u = user->second;
  const std::string what = "user " + user_name;
  if (Status s = ReadPemField(u, "client-certificate", what, config.client_cert_pem); !s.ok()) {
    return s;
  }
  if (Status s = ReadPemField(u, "client-key", what, config.client_key_pem); !s.ok()) return s;
  if (config.client_cert_pem.empty() != config.client_key_pem.empty()) {
    return Status::Config(u.file + ": " + what +
                          " needs both a client certificate and a client key");
  }
  if (u.node["token"]) {
    config.token = std::make_shared<TokenSource>(Trim(u.node["token"].as<std::string>()));
  } else if (u.node["tokenFile"]) {
    fs::path path = u.node["tokenFile"].as<std::string>();
    if (path.is_relative()) path = u.base_dir / path;
    auto source = TokenSource::FromFile(path.string());
    if (!source.ok()) return source.status().WithContext(u.file + ": " + what + " tokenFile");
    config.token = *source;
  }
  if (u.node["username"]) config.username = u.node["username"].as<std::string>();
  if (u.node["password"]) config.password = u.node["password"].as<std::string>();
  if (u.node["exec"] || u.node["auth-provider"]) {
    return Status::Config(u.file + ": " + what +
                          " uses exec or auth-provider credentials, which dpcm does not support;"
                          " use a token, tokenFile or client certificate");
  }
  return config;
}

std::string GetEnv(const char* name) {
  const char* value = std::getenv(name);  // NOLINT(concurrency-mt-unsafe): read at startup
  return value ? value : "";
}

}  // namespace

TokenSource::TokenSource(std::string path, std::string token, std::chrono::seconds refresh)
    : path_(std::move(path)),
      token_(std::move(token)),
      refresh_(refresh),
      read_at_(std::chrono::steady_clock::now()) {}

Result<std::shared_ptr<TokenSource>> TokenSource::FromFile(std::string path,
                                                           std::chrono::seconds refresh) {
  auto token = ReadFile(path);
  if (!token.ok()) return token.status();
  return std::shared_ptr<TokenSource>(new TokenSource(std::move(path), Trim(*token), refresh));
}

std::string TokenSource::Token() {
  std::lock_guard lock(mutex_);
  if (!path_.empty() && std::chrono::steady_clock::now() - read_at_ >= refresh_) {
    read_at_ = std::chrono::steady_clock::now();
    if (auto fresh = ReadFile(path_); fresh.ok() && !Trim(*fresh).empty()) {
      token_ = Trim(*fresh);
    }
  }
  return token_;
}

Result<RestConfig> LoadKubeconfig(const std::string& paths, const std::string& context) {
  MergedKubeconfig merged;
  std::vector<std::string> files;
  std::stringstream split(paths);
  for (std::string file; std::getline(split, file, ':');) {
    if (!file.empty()) files.push_back(file);
  }
  if (files.empty()) return Status::Config("no kubeconfig path given");
  int found = 0;
  for (const auto& file : files) {
    // As in kubectl, missing files in a $KUBECONFIG list are skipped.
    if (files.size() > 1 && !fs::exists(file)) continue;
    if (Status s = MergeFile(file, merged); !s.ok()) return s;
    ++found;
  }
  if (found == 0) return Status::Config("none of the kubeconfig files exist: " + paths);
  try {
    return BuildConfig(merged, paths, context);
  } catch (const YAML::Exception& e) {
    return Status::Config(paths + ": " + e.what());
  }
}

Result<RestConfig> LoadInCluster(const std::string& service_account_dir) {
  const std::string host = GetEnv("KUBERNETES_SERVICE_HOST");
  const std::string port = GetEnv("KUBERNETES_SERVICE_PORT");
  if (host.empty() || port.empty()) {
    return Status::Config(
        "not running in a cluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT must be "
        "set");
  }
  RestConfig config;
  const bool ipv6 = host.find(':') != std::string::npos;
  config.server = "https://" + (ipv6 ? "[" + host + "]" : host) + ":" + port;
  const fs::path dir(service_account_dir);
  auto token = TokenSource::FromFile((dir / "token").string());
  if (!token.ok()) return token.status().WithContext("in-cluster service-account token");
  config.token = *token;
  auto ca = ReadFile((dir / "ca.crt").string());
  if (!ca.ok()) return ca.status().WithContext("in-cluster CA");
  config.ca_pem = std::move(*ca);
  if (auto ns = ReadFile((dir / "namespace").string()); ns.ok() && !Trim(*ns).empty()) {
    config.namespace_name = Trim(*ns);
  }
  return config;
}

Result<RestConfig> LoadDefault(const std::string& kubeconfig_flag, const std::string& context) {
  if (!kubeconfig_flag.empty()) return LoadKubeconfig(kubeconfig_flag, context);
  if (const std::string env = GetEnv("KUBECONFIG"); !env.empty()) {
    return LoadKubeconfig(env, context);
  }
  if (!GetEnv("KUBERNETES_SERVICE_HOST").empty()) return LoadInCluster();
  const std::string home = GetEnv("HOME");
  if (!home.empty() && fs::exists(fs::path(home) / ".kube" / "config")) {
    return LoadKubeconfig((fs::path(home) / ".kube" / "config").string(), context);
  }
  return Status::Config(
      "no configuration: pass --kubeconfig, set KUBECONFIG, or run inside a cluster");
}

}  // namespace dpcm::restconfig
