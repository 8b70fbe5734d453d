#include "pkg/client/api_client.h"

#include <algorithm>

namespace dpcm::client {
namespace {

thread_local bool urgent_scope_active = false;    // see UrgentScope
thread_local std::stop_token cancel_waits_token;  // see CancelWaitsScope

constexpr std::string_view kJsonType = "application/json";

std::string NameOf(const Json& object) {
  if (!object.is_object() || !object.contains("metadata") || !object["metadata"].is_object()) {
    return "";
  }
  const Json& name = object["metadata"].value("name", Json());
  return name.is_string() ? name.get<std::string>() : "";
}

bool IsRead(const std::string& method) { return method == "GET"; }

// metadata.continue of a list page, or "" when absent or not a string.
std::string ContinueTokenOf(const Json& list) {
  if (!list.is_object() || !list.contains("metadata") || !list["metadata"].is_object()) return "";
  const auto token = list["metadata"].find("continue");
  return token != list["metadata"].end() && token->is_string() ? token->get<std::string>() : "";
}

}  // namespace

Json DeleteOptions::ToJson() const {
  Json body = {{"apiVersion", "v1"}, {"kind", "DeleteOptions"}};
  if (!precondition_uid.empty()) body["preconditions"]["uid"] = precondition_uid;
  if (!precondition_resource_version.empty()) {
    body["preconditions"]["resourceVersion"] = precondition_resource_version;
  }
  if (grace_period_seconds) body["gracePeriodSeconds"] = *grace_period_seconds;
  if (!propagation_policy.empty()) body["propagationPolicy"] = propagation_policy;
  return body;
}

UrgentScope::UrgentScope() : was_active_(urgent_scope_active) { urgent_scope_active = true; }
UrgentScope::~UrgentScope() { urgent_scope_active = was_active_; }
bool UrgentScope::Active() { return urgent_scope_active; }

CancelWaitsScope::CancelWaitsScope(std::stop_token stop) : previous_(cancel_waits_token) {
  cancel_waits_token = std::move(stop);
}
CancelWaitsScope::~CancelWaitsScope() { cancel_waits_token = std::move(previous_); }
std::stop_token CancelWaitsScope::Token() { return cancel_waits_token; }

ApiClient::ApiClient(std::unique_ptr<HttpTransport> transport, ClientOptions options)
    : transport_(std::move(transport)),
      options_(options),
      clock_(options.clock ? *options.clock : RealClock::Instance()),
      limiter_(options.qps, options.burst, clock_, options.urgent_reserve) {}

Result<std::unique_ptr<ApiClient>> ApiClient::Create(restconfig::RestConfig config,
                                                     ClientOptions options) {
  auto transport =
      HttpTransport::Create(std::move(config), {options.connect_timeout, options.request_timeout});
  if (!transport.ok()) return transport.status();
  return std::unique_ptr<ApiClient>(new ApiClient(std::move(*transport), options));
}

void ApiClient::Observe(std::string_view method, int http_status) const {
  if (observer_) observer_(method, http_status);
}

Result<Json> ApiClient::Do(const std::string& method, const std::string& path,
                           const std::string& body, const std::string& content_type) {
  Status last;
  for (int attempt = 0; attempt <= options_.max_retries; ++attempt) {
    const bool urgent = UrgentScope::Active();
    const auto lane = urgent ? TokenBucket::Lane::kUrgent : TokenBucket::Lane::kNormal;
    const std::stop_token cancel = urgent ? std::stop_token() : CancelWaitsScope::Token();
    if (!limiter_.Wait(cancel, lane)) {
      return Status::Cancelled(method + " " + path +
                               ": cut short while waiting for the rate limiter");
    }
    if (write_guard_ && !IsRead(method)) {
      if (Status allowed = write_guard_(); !allowed.ok()) {
        return allowed.WithContext(method + " " + path);
      }
    }
    auto response = transport_->Send(method, path, body, content_type);
    if (!response.ok()) {
      Observe(method, 0);
      last = response.status();
      if (!IsRead(method)) return last;  // the write may have happened: never repeat it
    } else if (response->status >= 200 && response->status < 300) {
      Observe(method, response->status);
      if (response->body.empty()) return Json::object();
      Json parsed = Json::parse(response->body, nullptr, /*allow_exceptions=*/false);
      if (parsed.is_discarded()) {
        return Status::Decode(method + " " + path + ": the response is not JSON");
      }
      return parsed;
    } else {
      Observe(method, response->status);
      last = DecodeErrorResponse(response->status, response->body, response->retry_after);
      const bool throttled = response->status == 429;
      const bool retryable_server_error =
          response->status >= 500 && (IsRead(method) || last.retry_after().has_value());
      if (!throttled && !retryable_server_error) return last.WithContext(method + " " + path);
    }
    if (attempt == options_.max_retries) break;
    // Back off: the server's Retry-After when it gave one, else 100 ms doubling to 3.2 s.
    auto wait = std::chrono::milliseconds(100 << std::min(attempt, 5));
    if (last.retry_after()) {
      wait = std::min<std::chrono::milliseconds>(*last.retry_after(), std::chrono::seconds(30));
    }
    if (!clock_.SleepFor(wait, cancel)) {
      return Status::Cancelled(method + " " + path + ": cut short before retry " +
                               std::to_string(attempt + 1));
    }
  }
  return last.WithContext(method + " " + path + " (after " + std::to_string(options_.max_retries) +
                          " retries)");
}

Result<Json> ApiClient::Get(const ResourceRef& ref, std::string_view ns, std::string_view name,
                            std::string_view subresource) {
  return Do("GET", ref.Path(ns, name, subresource), "", "");
}

Result<Json> ApiClient::List(const ResourceRef& ref, std::string_view ns,
                             const ListOptions& options) {
  return Do("GET", ref.Path(ns) + options.Query(false), "", "");
}

Result<Json> ApiClient::ListAll(const ResourceRef& ref, std::string_view ns, ListOptions options) {
  auto first = List(ref, ns, options);
  if (!first.ok()) return first;
  Json all = std::move(*first);
  if (!all.is_object()) {
    return Status::Decode("list " + ref.Describe() + ": the response is not a JSON object");
  }
  if (!all.contains("items") || !all["items"].is_array()) all["items"] = Json::array();
  for (std::string token = ContinueTokenOf(all); !token.empty();) {
    options.continue_token = token;
    auto page = List(ref, ns, options);
    if (!page.ok()) return page;  // a 410 here means the snapshot expired: start over
    if (page->contains("items") && (*page)["items"].is_array()) {
      for (auto& item : (*page)["items"]) all["items"].push_back(std::move(item));
    }
    token = ContinueTokenOf(*page);
  }
  if (all.contains("metadata") && all["metadata"].is_object()) all["metadata"].erase("continue");
  return all;
}

Result<Json> ApiClient::Create(const ResourceRef& ref, std::string_view ns, const Json& object,
                               std::string_view subresource) {
  const std::string path =
      subresource.empty() ? ref.Path(ns) : ref.Path(ns, NameOf(object), subresource);
  if (!subresource.empty() && NameOf(object).empty()) {
    return Status::Invalid("create " + std::string(subresource) + ": object has no name");
  }
  return Do("POST", path, object.dump(), std::string(kJsonType));
}

Result<Json> ApiClient::Update(const ResourceRef& ref, std::string_view ns, const Json& object,
                               std::string_view subresource) {
  const std::string name = NameOf(object);
  if (name.empty()) return Status::Invalid("update " + ref.Describe() + ": object has no name");
  return Do("PUT", ref.Path(ns, name, subresource), object.dump(), std::string(kJsonType));
}

Result<Json> ApiClient::Patch(const ResourceRef& ref, std::string_view ns, std::string_view name,
                              PatchType type, const Json& patch, std::string_view subresource) {
  std::string content_type;
  switch (type) {
    case PatchType::kMerge:
      content_type = "application/merge-patch+json";
      break;
    case PatchType::kJson:
      content_type = "application/json-patch+json";
      break;
    case PatchType::kStrategicMerge:
      content_type = "application/strategic-merge-patch+json";
      break;
  }
  return Do("PATCH", ref.Path(ns, name, subresource), patch.dump(), content_type);
}

Result<Json> ApiClient::Delete(const ResourceRef& ref, std::string_view ns, std::string_view name,
                               const DeleteOptions& options) {
  return Do("DELETE", ref.Path(ns, name), options.ToJson().dump(), std::string(kJsonType));
}

Status ApiClient::Watch(const ResourceRef& ref, std::string_view ns, const ListOptions& options,
                        const std::function<bool(std::string_view)>& on_chunk,
                        const std::stop_token& stop) {
  if (!limiter_.Wait(stop)) return Status::Cancelled("watch stopped");
  // The read timeout must outlast the server-side timeout, or an idle watch is cut.
  const auto read_timeout = std::chrono::seconds(std::max(options.timeout_seconds, 0) + 30);
  Status status =
      transport_->Stream(ref.Path(ns) + options.Query(true), read_timeout, on_chunk, stop);
  Observe("WATCH", status.ok() ? 200 : status.http_status());
  return status;
}

}  // namespace dpcm::client
