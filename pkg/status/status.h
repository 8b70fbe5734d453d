// Errors as values: a Status says what went wrong (API error kind, HTTP code, reason, message).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace dpcm {

// What kind of failure a Status describes. The API kinds mirror metav1.StatusReason
// so that callers can branch on them the way client-go's apierrors.IsXxx does.
enum class StatusCode {
  kOk,
  kNotFound,          // 404 / reason NotFound
  kAlreadyExists,     // 409 / reason AlreadyExists
  kConflict,          // 409 / reason Conflict (stale resourceVersion, failed precondition)
  kGone,              // 410 / reason Expired or Gone (resourceVersion too old)
  kUnauthorized,      // 401
  kForbidden,         // 403
  kInvalid,           // 422 / reason Invalid (schema or field validation)
  kBadRequest,        // 400
  kMethodNotAllowed,  // 405
  kTooManyRequests,   // 429 (may carry retry_after)
  kServerError,       // 5xx
  kTimeout,           // 504 / reason Timeout, or a client-side deadline
  kTransport,         // connection refused, TLS failure, dropped stream
  kDecode,            // a response or file that is not what it claims to be
  kConfig,            // missing or malformed configuration
  kCancelled,         // stopped on request
  kInternal,          // a bug: should never happen
};

// Returns the enumerator's name without the k prefix, e.g. "NotFound".
const char* StatusCodeName(StatusCode code);

// An OK status is a null pointer and costs nothing; an error holds its details in a
// shared immutable block, so copies are cheap.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status Ok() { return {}; }
  static Status NotFound(std::string message) {
    return {StatusCode::kNotFound, std::move(message)};
  }
  static Status Conflict(std::string message) {
    return {StatusCode::kConflict, std::move(message)};
  }
  static Status Invalid(std::string message) { return {StatusCode::kInvalid, std::move(message)}; }
  static Status Transport(std::string message) {
    return {StatusCode::kTransport, std::move(message)};
  }
  static Status Decode(std::string message) { return {StatusCode::kDecode, std::move(message)}; }
  static Status Config(std::string message) { return {StatusCode::kConfig, std::move(message)}; }
  static Status Cancelled(std::string message) {
    return {StatusCode::kCancelled, std::move(message)};
  }
  static Status Internal(std::string message) {
    return {StatusCode::kInternal, std::move(message)};
  }

  // Builds a status from an HTTP response: `http_status`, the decoded metav1.Status
  // `reason` (may be empty) and message. The code follows the reason when it is known,
  // else the HTTP status.
  static Status FromHttp(int http_status, const std::string& reason, std::string message,
                         std::optional<std::chrono::seconds> retry_after = std::nullopt);

  bool ok() const { return state_ == nullptr; }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  // HTTP status of the response this came from; 0 when it did not come from one.
  int http_status() const { return state_ ? state_->http_status : 0; }
  // metav1.Status reason ("NotFound", "Conflict", ...); empty when unknown.
  const std::string& reason() const;
  const std::string& message() const;
  // The server's Retry-After, when it sent one (429, some 5xx).
  std::optional<std::chrono::seconds> retry_after() const {
    return state_ ? state_->retry_after : std::nullopt;
  }

  bool IsNotFound() const { return code() == StatusCode::kNotFound; }
  bool IsAlreadyExists() const { return code() == StatusCode::kAlreadyExists; }
  bool IsConflict() const { return code() == StatusCode::kConflict; }
  bool IsGone() const { return code() == StatusCode::kGone; }
  bool IsForbidden() const { return code() == StatusCode::kForbidden; }
  bool IsInvalid() const { return code() == StatusCode::kInvalid; }
  bool IsTooManyRequests() const { return code() == StatusCode::kTooManyRequests; }
  bool IsServerError() const { return code() == StatusCode::kServerError; }
  bool IsTransport() const { return code() == StatusCode::kTransport; }
  bool IsCancelled() const { return code() == StatusCode::kCancelled; }

  // Returns a copy whose message is prefixed with `context` ("get pod a/b: ...").
  Status WithContext(const std::string& context) const;

  // "NotFound (404): pods \"x\" not found", or "OK".
  std::string ToString() const;

 private:
  struct State {
    StatusCode code;
    int http_status;
    std::string reason;
    std::string message;
    std::optional<std::chrono::seconds> retry_after;
  };
  std::shared_ptr<const State> state_;
};

// A value or the Status explaining why there is none.
template <typename T>
class Result {
 public:
  Result(T value) : data_(std::move(value)) {}        // NOLINT(google-explicit-constructor)
  Result(Status status) : data_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(data_).ok()) {
      data_ = Status::Internal("Result constructed from an OK status without a value");
    }
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  // The error; OK when a value is held.
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(data_); }

  // The value. Calling these on an error is a bug (std::bad_variant_access).
  T& value() & { return std::get<T>(data_); }
  const T& value() const& { return std::get<T>(data_); }
  T&& value() && { return std::get<T>(std::move(data_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace dpcm
