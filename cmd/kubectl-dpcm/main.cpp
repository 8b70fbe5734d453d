// kubectl-dpcm: the `kubectl dpcm` plugin. Wiring only: arguments → kubeconfig → client → verb.
#include <chrono>
#include <iostream>
#include <string>
#include <vector>

#include "cmd/kubectl-dpcm/commands.h"
#include "cmd/kubectl-dpcm/options.h"
#include "pkg/client/api_client.h"
#include "pkg/restconfig/rest_config.h"

int main(int argc, char** argv) {
  using namespace dpcm::kubectl_plugin;
  const std::vector<std::string> args(argv + 1, argv + argc);
  auto options = ParseArgs(args);
  if (!options.ok()) {
    std::cerr << "error: " << options.status().message() << "\nSee 'kubectl dpcm --help'.\n";
    return kUsage;
  }
  if (options->help) {
    std::cout << Usage(options->verb);
    return kOk;
  }
  auto config = dpcm::restconfig::LoadDefault(options->kubeconfig, options->context);
  if (!config.ok()) {
    std::cerr << "error: " << config.status().message() << "\n";
    return kError;
  }
  dpcm::client::ClientOptions client_options;
  client_options.qps = 50;
  client_options.burst = 100;
  client_options.max_retries = 1;  // a person is waiting: fail fast on an unreachable server
  auto api = dpcm::client::ApiClient::Create(std::move(*config), client_options);
  if (!api.ok()) {
    std::cerr << "error: " << api.status().message() << "\n";
    return kError;
  }
  return RunVerb(*options, **api, std::cout, std::cerr, std::chrono::system_clock::now());
}
