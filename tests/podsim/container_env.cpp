#include "tests/podsim/container_env.h"

namespace dpcm::podsim {
namespace {

using Json = nlohmann::json;

// "metadata.labels['key']" -> "key"; empty when `path` does not have that shape.
std::string SubscriptKey(const std::string& path, const std::string& prefix) {
  if (path.size() < prefix.size() + 4 || path.compare(0, prefix.size(), prefix) != 0) return "";
  const std::string rest = path.substr(prefix.size());
  if (rest.size() < 4 || rest.substr(0, 2) != "['" || rest.substr(rest.size() - 2) != "']") {
    return "";
  }
  return rest.substr(2, rest.size() - 4);
}

Result<std::string> FieldValue(const Json& pod, const std::string& path, const PodFacts& facts) {
  if (path == "metadata.name") return facts.name;
  if (path == "metadata.namespace") return facts.namespace_name;
  if (path == "metadata.uid") return facts.uid;
  if (path == "spec.nodeName") return facts.node_name;
  if (path == "status.podIP" || path == "status.podIPs") return facts.pod_ip;
  if (path == "status.hostIP") return facts.host_ip;
  if (path == "spec.serviceAccountName") {
    return pod.value("/spec/serviceAccountName"_json_pointer, std::string());
  }
  for (const char* map : {"labels", "annotations"}) {
    const std::string key = SubscriptKey(path, std::string("metadata.") + map);
    if (!key.empty()) {
      const Json& values = pod.value("/metadata"_json_pointer, Json::object()).value(map, Json());
      if (values.is_object() && values.contains(key) && values[key].is_string()) {
        return values[key].get<std::string>();
      }
      return std::string();
    }
  }
  return Status::Invalid("fieldRef " + path + " is not supported by the simulator");
}

std::vector<std::string> StringList(const Json& container, const char* field) {
  std::vector<std::string> out;
  const auto it = container.find(field);
  if (it != container.end() && it->is_array()) {
    for (const auto& s : *it) {
      if (s.is_string()) out.push_back(s.get<std::string>());
    }
  }
  return out;
}

}  // namespace

std::string ExpandVariables(
    std::string_view input,
    const std::function<std::optional<std::string>(std::string_view)>& lookup) {
  std::string out;
  out.reserve(input.size());
  for (size_t i = 0; i < input.size(); ++i) {
    if (input[i] != '$' || i + 1 >= input.size()) {
      out.push_back(input[i]);
      continue;
    }
    const char next = input[i + 1];
    if (next == '$') {  // escaped
      out.push_back('$');
      ++i;
    } else if (next == '(') {
      const size_t close = input.find(')', i + 2);
      if (close == std::string_view::npos) {  // unterminated: literal
        out.append(input.substr(i));
        break;
      }
      const std::string_view name = input.substr(i + 2, close - i - 2);
      const auto value = lookup(name);
      if (value) {
        out.append(*value);
      } else {
        out.append(input.substr(i, close - i + 1));
      }
      i = close;
    } else {
      out.push_back('$');
    }
  }
  return out;
}

Result<ContainerLaunch> BuildLaunch(const Json& pod, const Json& container, const PodFacts& facts,
                                    const std::vector<std::string>& base_env) {
  ContainerLaunch launch;
  if (container.contains("envFrom")) {
    return Status::Invalid("envFrom is not supported by the simulator");
  }
  // The container's own variables, in order, for $(VAR) references.
  std::vector<std::pair<std::string, std::string>> defined;
  std::map<std::string, std::string, std::less<>> values = {
      {"POD_NAME", facts.name}, {"POD_NAMESPACE", facts.namespace_name}, {"POD_IP", facts.pod_ip}};
  auto lookup = [&values](std::string_view name) -> std::optional<std::string> {
    const auto it = values.find(name);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
  const auto env = container.find("env");
  if (env != container.end() && env->is_array()) {
    for (const auto& var : *env) {
      if (!var.is_object() || !var.contains("name") || !var["name"].is_string()) continue;
      const std::string name = var["name"].get<std::string>();
      std::string value;
      if (var.contains("valueFrom") && var["valueFrom"].is_object()) {
        const Json& from = var["valueFrom"];
        if (!from.contains("fieldRef") || !from["fieldRef"].is_object()) {
          return Status::Invalid("env " + name + ": only valueFrom.fieldRef is supported");
        }
        auto field = FieldValue(pod, from["fieldRef"].value("fieldPath", ""), facts);
        if (!field.ok()) return field.status().WithContext("env " + name);
        value = std::move(*field);
      } else if (var.contains("value") && var["value"].is_string()) {
        value = ExpandVariables(var["value"].get<std::string>(), lookup);
      }
      values[name] = value;
      defined.emplace_back(name, std::move(value));
    }
  }
  for (const auto& word : StringList(container, "command")) {
    launch.argv.push_back(ExpandVariables(word, lookup));
  }
  if (launch.argv.empty()) {
    return Status::Invalid(
        "the container has no command (the simulator cannot run an image's entrypoint)");
  }
  for (const auto& word : StringList(container, "args")) {
    launch.argv.push_back(ExpandVariables(word, lookup));
  }
  launch.working_dir = container.value("workingDir", "");

  // The simulator's environment, overridden by the container's, then the POD_* facts.
  std::map<std::string, std::string> merged;
  std::vector<std::string> order;
  auto set = [&](const std::string& name, const std::string& value) {
    if (merged.emplace(name, value).second) {
      order.push_back(name);
    } else {
      merged[name] = value;
    }
  };
  for (const auto& entry : base_env) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    set(entry.substr(0, eq), entry.substr(eq + 1));
  }
  for (const auto& [name, value] : defined) set(name, value);
  set("POD_NAME", facts.name);
  set("POD_NAMESPACE", facts.namespace_name);
  set("POD_IP", facts.pod_ip);
  for (const auto& name : order) launch.env.push_back(name + "=" + merged[name]);
  return launch;
}

}  // namespace dpcm::podsim
