// Turns a pod's first container into a command line and environment, as the kubelet would.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::podsim {

// Kubernetes' $(VAR) expansion in command, args and env values: "$(NAME)" becomes the
// value when `lookup` knows NAME and stays as written otherwise; "$$" is a literal "$".
std::string ExpandVariables(
    std::string_view input,
    const std::function<std::optional<std::string>(std::string_view)>& lookup);

// The pod fields a container's environment can refer to.
struct PodFacts {
  std::string name;
  std::string namespace_name;
  std::string uid;
  std::string node_name;
  std::string pod_ip;
  std::string host_ip;
};

struct ContainerLaunch {
  std::vector<std::string> argv;  // command + args, expanded
  std::vector<std::string> env;   // "NAME=value": base + container env + POD_* variables
  std::string working_dir;
};

// Builds the launch of `container` in `pod`:
// - argv = command + args (no shell; the image's entrypoint cannot be run, so a container
//   without a command is an error);
// - env = `base_env` ("NAME=value" entries), then the container's env in order (literal
//   values, expanded against earlier entries; valueFrom.fieldRef for metadata.name,
//   metadata.namespace, metadata.uid, metadata.labels['k'], metadata.annotations['k'],
//   spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs, status.hostIP),
//   then POD_NAME, POD_NAMESPACE and POD_IP.
// Fails (a CreateContainerConfigError in kubelet terms) on what it cannot provide:
// secretKeyRef, configMapKeyRef, resourceFieldRef, envFrom, unknown field paths.
Result<ContainerLaunch> BuildLaunch(const nlohmann::json& pod, const nlohmann::json& container,
                                    const PodFacts& facts,
                                    const std::vector<std::string>& base_env);

}  // namespace dpcm::podsim
