// A Kubernetes REST client: typed verbs on any resource, errors as values, rate limit and retry.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>

#include "pkg/client/http_transport.h"
#include "pkg/client/resource.h"
#include "pkg/clock/clock.h"
#include "pkg/ratelimit/token_bucket.h"
#include "pkg/restconfig/rest_config.h"
#include "pkg/status/status.h"

namespace dpcm::client {

using Json = nlohmann::json;

// metav1.DeleteOptions: preconditions make a delete conditional on what the caller saw.
struct DeleteOptions {
  std::string precondition_uid;
  std::string precondition_resource_version;
  std::optional<int64_t> grace_period_seconds;
  std::string propagation_policy;  // "", "Orphan", "Background", "Foreground"

  Json ToJson() const;
};

enum class PatchType {
  kMerge,           // application/merge-patch+json (RFC 7386)
  kJson,            // application/json-patch+json (RFC 6902), e.g. a "test" op on resourceVersion
  kStrategicMerge,  // built-in types only
};

struct ClientOptions {
  double qps = 20;  // --kube-api-qps; <= 0 disables client-side limiting
  int burst = 30;   // --kube-api-burst
  // Tokens of the burst that only urgent requests (UrgentScope) may take: other requests
  // wait once the bucket is down to them, so a handover's few requests go at once even
  // while status updates use the whole rate. Clamped to burst - 1; see TokenBucket.
  int urgent_reserve = 8;
  // Retries after 429 (any verb: the server did not act) and, for reads only, after 5xx
  // and transport errors. Writes are never blindly repeated.
  int max_retries = 5;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds request_timeout{30000};
  Clock* clock = nullptr;  // null = the real clock
};

// Observes each completed HTTP exchange (for rest_client_requests_total): the method
// and the HTTP status, or 0 when the request never got an answer.
using RequestObserver = std::function<void(std::string_view method, int http_status)>;

// Decides whether a mutating request (POST, PUT, PATCH, DELETE) may be sent now: OK lets
// it go, an error is returned to the caller instead of sending. Called right before each
// attempt goes on the wire (after any rate-limiter wait), from the requesting thread.
// Operator HA uses it so that a replica that is not the leader cannot write at all.
using WriteGuard = std::function<Status()>;

// Marks every request this thread makes while the scope lives as urgent: it takes the
// rate limiter's urgent lane (TokenBucket::Lane::kUrgent), ahead of every normal request
// still waiting for a token. For the few requests that move a DC after a failure, so
// that they never queue behind status updates and Events of other domains; everything
// else stays in the normal lane. Scopes nest; the scope belongs to the thread that
// made it (a thread-local flag, like a context value the verbs need not carry).
class UrgentScope {
 public:
  UrgentScope();
  ~UrgentScope();
  UrgentScope(const UrgentScope&) = delete;
  UrgentScope& operator=(const UrgentScope&) = delete;

  // Whether the calling thread is inside an UrgentScope.
  static bool Active();

 private:
  bool was_active_;
};

// Lets `stop` cut short the waits of every normal-lane request this thread makes while the
// scope lives: waiting for a rate-limiter token, and the backoff between retries. A request
// cut short returns Cancelled without being sent; one already on the wire is not
// abandoned. Urgent-lane requests (UrgentScope) are never cut short. For a reconcile that
// an urgent request for the same object preempts (controller::Reconciler): its work is
// redone at once, and its writes must not hold the object up while they wait behind other
// objects' writes. Scopes nest (the innermost counts).
class CancelWaitsScope {
 public:
  explicit CancelWaitsScope(std::stop_token stop);
  ~CancelWaitsScope();
  CancelWaitsScope(const CancelWaitsScope&) = delete;
  CancelWaitsScope& operator=(const CancelWaitsScope&) = delete;

  // The calling thread's innermost scope's token (one that never fires outside a scope).
  static std::stop_token Token();

 private:
  std::stop_token previous_;
};

// Thread-safe: any number of threads may call any verb at once.
// Every verb returns the server's object (or list) on success, else a Status decoded
// from the API's metav1.Status (NotFound, Conflict, Forbidden, ...) or a transport error.
class ApiClient {
 public:
  static Result<std::unique_ptr<ApiClient>> Create(restconfig::RestConfig config,
                                                   ClientOptions options = {});
  ApiClient(const ApiClient&) = delete;
  ApiClient& operator=(const ApiClient&) = delete;

  Result<Json> Get(const ResourceRef& ref, std::string_view ns, std::string_view name,
                   std::string_view subresource = {});
  // One page. Pass the returned metadata.continue back in ListOptions for the next.
  Result<Json> List(const ResourceRef& ref, std::string_view ns, const ListOptions& options);
  // Every page, joined into one list whose metadata.resourceVersion is the snapshot's
  // (the first page's), ready to start a watch from. `options.limit` is the page size.
  Result<Json> ListAll(const ResourceRef& ref, std::string_view ns, ListOptions options);
  // POST to the collection, or to `subresource` of the object named in the body (e.g. a
  // pod's "binding").
  Result<Json> Create(const ResourceRef& ref, std::string_view ns, const Json& object,
                      std::string_view subresource = {});
  // PUT, named by object.metadata.name. A metadata.resourceVersion in the object makes
  // it conditional: a stale one fails with kConflict.
  Result<Json> Update(const ResourceRef& ref, std::string_view ns, const Json& object,
                      std::string_view subresource = {});
  Result<Json> UpdateStatus(const ResourceRef& ref, std::string_view ns, const Json& object) {
    return Update(ref, ns, object, "status");
  }
  Result<Json> Patch(const ResourceRef& ref, std::string_view ns, std::string_view name,
                     PatchType type, const Json& patch, std::string_view subresource = {});
  // Returns the deleted object (or the object with its deletionTimestamp set when the
  // delete is graceful), or a metav1.Status for some resources.
  Result<Json> Delete(const ResourceRef& ref, std::string_view ns, std::string_view name,
                      const DeleteOptions& options = {});

  // Opens a watch (see ListOptions::Query) and passes each raw chunk of the stream to
  // `on_chunk` until the server ends it, `on_chunk` returns false, or `stop` fires.
  // The first call, as soon as the server has answered 200, passes an empty chunk: the
  // stream is open, even if no event comes for a long time.
  // The watch package decodes the chunks; most callers want watch::Watcher instead.
  Status Watch(const ResourceRef& ref, std::string_view ns, const ListOptions& options,
               const std::function<bool(std::string_view)>& on_chunk, const std::stop_token& stop);

  void SetRequestObserver(RequestObserver observer) { observer_ = std::move(observer); }
  // Installs the write guard (see WriteGuard); reads are never guarded. Set it before
  // the client is shared between threads.
  void SetWriteGuard(WriteGuard guard) { write_guard_ = std::move(guard); }
  const restconfig::RestConfig& config() const { return transport_->config(); }
  // The namespace of the kubeconfig context or the pod's service account.
  const std::string& default_namespace() const { return config().namespace_name; }

 private:
  ApiClient(std::unique_ptr<HttpTransport> transport, ClientOptions options);
  Result<Json> Do(const std::string& method, const std::string& path, const std::string& body,
                  const std::string& content_type);
  void Observe(std::string_view method, int http_status) const;

  std::unique_ptr<HttpTransport> transport_;
  ClientOptions options_;
  Clock& clock_;
  TokenBucket limiter_;
  RequestObserver observer_;
  WriteGuard write_guard_;
};

}  // namespace dpcm::client
