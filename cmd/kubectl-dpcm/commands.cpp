#include "cmd/kubectl-dpcm/commands.h"

#include <algorithm>
#include <ostream>

#include "cmd/kubectl-dpcm/audit.h"
#include "cmd/kubectl-dpcm/report.h"
#include "pkg/object/object.h"

namespace dpcm::kubectl_plugin {
namespace {

using client::ApiClient;
using client::ListOptions;
namespace resources = client::resources;

client::ResourceRef EndpointSlices(const std::string& version) {
  return {"discovery.k8s.io", version, "endpointslices", true};
}
client::ResourceRef Endpoints() { return {"", "v1", "endpoints", true}; }

// The namespace the verb works in: -n, else the kubeconfig context's; "" for -A.
std::string Scope(const PluginOptions& options, const ApiClient& api) {
  if (options.all_namespaces) return "";
  return options.namespace_name.empty() ? api.default_namespace() : options.namespace_name;
}

std::string DomainWhat(const std::string& name, const std::string& ns) {
  return "ProcessDomain \"" + name + "\" in namespace \"" + ns + "\"";
}

// A failed verb: prints the error and returns kError.
int Fail(std::ostream& err, const Status& status, const std::string& what, const ApiClient& api) {
  err << "error: " << DescribeError(status, what, api.config().server) << "\n";
  return kError;
}

// The domains in scope, sorted by namespace and name: DOMAIN alone, or every one.
Result<std::vector<Json>> Domains(const PluginOptions& options, ApiClient& api, std::string& what) {
  const std::string ns = Scope(options, api);
  if (!options.args.empty()) {
    what = DomainWhat(options.args[0], ns);
    auto domain = api.Get(resources::ProcessDomains(), ns, options.args[0]);
    if (!domain.ok()) return domain.status();
    return std::vector<Json>{std::move(*domain)};
  }
  what = ns.empty() ? "processdomains.dpcm.io in all namespaces"
                    : "processdomains.dpcm.io in namespace \"" + ns + "\"";
  ListOptions list;
  list.limit = 500;
  auto all = api.ListAll(resources::ProcessDomains(), ns, list);
  if (!all.ok()) return all.status();
  auto items = (*all)["items"].get<std::vector<Json>>();
  std::sort(items.begin(), items.end(), [](const Json& a, const Json& b) {
    return std::make_pair(object::Meta(a, "namespace"), object::Meta(a, "name")) <
           std::make_pair(object::Meta(b, "namespace"), object::Meta(b, "name"));
  });
  return items;
}

void PrintJson(std::ostream& out, const Json& value) { out << value.dump(2) << "\n"; }

int ShowStatus(const PluginOptions& options, ApiClient& api, std::ostream& out, std::ostream& err,
               std::chrono::system_clock::time_point now) {
  std::string what;
  auto domains = Domains(options, api, what);
  if (!domains.ok()) return Fail(err, domains.status(), what, api);
  if (options.output == OutputFormat::kJson) {
    PrintJson(out, StatusJson(*domains));
  } else {
    out << RenderStatus(*domains, options.all_namespaces, now);
  }
  return kOk;
}

int SetPaused(const PluginOptions& options, ApiClient& api, bool paused, std::ostream& out,
              std::ostream& err) {
  const std::string ns = Scope(options, api);
  const std::string& name = options.args[0];
  auto patched = api.Patch(resources::ProcessDomains(), ns, name, client::PatchType::kMerge,
                           {{"spec", {{"paused", paused}}}});
  if (!patched.ok()) return Fail(err, patched.status(), DomainWhat(name, ns), api);
  if (options.output == OutputFormat::kJson) {
    PrintJson(out, {{"namespace", ns}, {"name", name}, {"paused", paused}});
  } else {
    out << "processdomain.dpcm.io/" << name << (paused ? " paused" : " resumed") << "\n";
  }
  return kOk;
}

int Why(const PluginOptions& options, ApiClient& api, std::ostream& out, std::ostream& err,
        std::chrono::system_clock::time_point now) {
  const std::string ns = Scope(options, api);
  const std::string& name = options.args[0];
  auto domain = api.Get(resources::ProcessDomains(), ns, name);
  if (!domain.ok()) return Fail(err, domain.status(), DomainWhat(name, ns), api);
  ListOptions list;
  list.field_selector = "involvedObject.kind=ProcessDomain,involvedObject.name=" + name;
  list.limit = 500;
  auto events = api.ListAll(resources::Events(), ns, list);
  if (!events.ok()) return Fail(err, events.status(), "events in namespace \"" + ns + "\"", api);
  const auto items = (*events)["items"].get<std::vector<Json>>();
  if (options.output == OutputFormat::kJson) {
    PrintJson(out, WhyJson(*domain, items));
  } else {
    out << RenderWhy(*domain, items, now);
  }
  return kOk;
}

// Reads what Audit needs about `domain`; the first failed read is returned with the
// object it was about in `what`.
Result<DomainObjects> ReadDomainObjects(ApiClient& api, const Json& domain, std::string& what) {
  const std::string ns = object::Meta(domain, "namespace");
  const std::string name = object::Meta(domain, "name");
  DomainObjects objects{domain, std::nullopt, {}, std::nullopt, {}, std::nullopt};
  auto lease = api.Get(resources::Leases(), ns, name);
  if (lease.ok()) {
    objects.lease = std::move(*lease);
  } else if (!lease.status().IsNotFound()) {
    what = "Lease \"" + name + "\" in namespace \"" + ns + "\"";
    return lease.status();
  }
  ListOptions pods;
  pods.label_selector = "dpcm.io/domain=" + name;
  auto listed = api.ListAll(resources::Pods(), ns, pods);
  if (!listed.ok()) {
    what = "pods of " + DomainWhat(name, ns);
    return listed.status();
  }
  objects.pods = (*listed)["items"].get<std::vector<Json>>();

  const Json ports = domain.value("/spec/service/ports"_json_pointer, Json::array());
  if (!ports.is_array() || ports.empty()) return objects;
  const std::string service = name + "-dc";
  what = "Service \"" + service + "\" in namespace \"" + ns + "\"";
  auto svc = api.Get(resources::Services(), ns, service);
  if (!svc.ok()) {
    if (svc.status().IsNotFound()) return objects;
    return svc.status();
  }
  objects.service = std::move(*svc);
  ListOptions slices;
  slices.label_selector = "kubernetes.io/service-name=" + service;
  // discovery.k8s.io/v1 from Kubernetes 1.21, v1beta1 before (and until 1.25).
  for (const char* version : {"v1", "v1beta1"}) {
    auto found = api.ListAll(EndpointSlices(version), ns, slices);
    if (found.ok()) {
      objects.endpoint_slices = (*found)["items"].get<std::vector<Json>>();
      break;
    }
    if (!found.status().IsNotFound()) {
      what = "EndpointSlices of " + what;
      return found.status();
    }
  }
  if (objects.endpoint_slices.empty()) {
    auto endpoints = api.Get(Endpoints(), ns, service);
    if (endpoints.ok()) {
      objects.endpoints = std::move(*endpoints);
    } else if (!endpoints.status().IsNotFound()) {
      what = "Endpoints of " + what;
      return endpoints.status();
    }
  }
  return objects;
}

int Check(const PluginOptions& options, ApiClient& api, std::ostream& out, std::ostream& err) {
  std::string what;
  auto domains = Domains(options, api, what);
  if (!domains.ok()) return Fail(err, domains.status(), what, api);
  std::vector<Finding> findings;
  for (const auto& domain : *domains) {
    auto objects = ReadDomainObjects(api, domain, what);
    if (!objects.ok()) return Fail(err, objects.status(), what, api);
    auto found = Audit(*objects);
    findings.insert(findings.end(), found.begin(), found.end());
  }
  if (options.output == OutputFormat::kJson) {
    PrintJson(out, FindingsJson(findings, domains->size()));
  } else {
    out << RenderFindings(findings, domains->size());
  }
  return findings.empty() ? kOk : kFindings;
}

}  // namespace

std::string DescribeError(const Status& status, const std::string& what,
                          const std::string& server) {
  switch (status.code()) {
    case StatusCode::kNotFound:
      if (what.rfind("processdomains.dpcm.io", 0) == 0) {
        return "the server does not serve processdomains.dpcm.io: is the dpcm CRD installed?";
      }
      return what + " not found";
    case StatusCode::kForbidden:
      return "forbidden: " + status.message();
    case StatusCode::kUnauthorized:
      return "unauthorized: the API server at " + server + " rejected the kubeconfig's credentials";
    case StatusCode::kTransport:
    case StatusCode::kTimeout:
      return "cannot reach the API server at " + server + ": " + status.message();
    default:
      return what + ": " + status.ToString();
  }
}

int RunVerb(const PluginOptions& options, ApiClient& api, std::ostream& out, std::ostream& err,
            std::chrono::system_clock::time_point now) {
  switch (options.verb) {
    case Verb::kStatus:
      return ShowStatus(options, api, out, err, now);
    case Verb::kPause:
      return SetPaused(options, api, true, out, err);
    case Verb::kResume:
      return SetPaused(options, api, false, out, err);
    case Verb::kWhy:
      return Why(options, api, out, err, now);
    case Verb::kCheck:
      return Check(options, api, out, err);
    case Verb::kNone:
      break;
  }
  err << "error: no command given (try --help)\n";
  return kUsage;
}

}  // namespace dpcm::kubectl_plugin
