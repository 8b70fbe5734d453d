#include "pkg/status/status.h"

namespace dpcm {
namespace {

const std::string& EmptyString() {
  static const std::string kEmpty;
  return kEmpty;
}

StatusCode CodeFromReason(const std::string& reason) {
  if (reason == "NotFound") return StatusCode::kNotFound;
  if (reason == "AlreadyExists") return StatusCode::kAlreadyExists;
  if (reason == "Conflict") return StatusCode::kConflict;
  if (reason == "Gone" || reason == "Expired") return StatusCode::kGone;
  if (reason == "Unauthorized") return StatusCode::kUnauthorized;
  if (reason == "Forbidden") return StatusCode::kForbidden;
  if (reason == "Invalid") return StatusCode::kInvalid;
  if (reason == "BadRequest") return StatusCode::kBadRequest;
  if (reason == "MethodNotAllowed") return StatusCode::kMethodNotAllowed;
  if (reason == "TooManyRequests") return StatusCode::kTooManyRequests;
  if (reason == "Timeout" || reason == "ServerTimeout") return StatusCode::kTimeout;
  if (reason == "InternalError" || reason == "ServiceUnavailable") return StatusCode::kServerError;
  return StatusCode::kOk;  // unknown reason: decide by HTTP status
}

StatusCode CodeFromHttp(int http_status) {
  switch (http_status) {
    case 400:
      return StatusCode::kBadRequest;
    case 401:
      return StatusCode::kUnauthorized;
    case 403:
      return StatusCode::kForbidden;
    case 404:
      return StatusCode::kNotFound;
    case 405:
      return StatusCode::kMethodNotAllowed;
    case 409:
      return StatusCode::kConflict;
    case 410:
      return StatusCode::kGone;
    case 422:
      return StatusCode::kInvalid;
    case 429:
      return StatusCode::kTooManyRequests;
    case 504:
      return StatusCode::kTimeout;
    default:
      break;
  }
  if (http_status >= 500) return StatusCode::kServerError;
  return StatusCode::kInternal;  // an unexpected non-error code passed as an error
}

}  // namespace

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "OK";
    case StatusCode::kNotFound:
      return "NotFound";
    case StatusCode::kAlreadyExists:
      return "AlreadyExists";
    case StatusCode::kConflict:
      return "Conflict";
    case StatusCode::kGone:
      return "Gone";
    case StatusCode::kUnauthorized:
      return "Unauthorized";
    case StatusCode::kForbidden:
      return "Forbidden";
    case StatusCode::kInvalid:
      return "Invalid";
    case StatusCode::kBadRequest:
      return "BadRequest";
    case StatusCode::kMethodNotAllowed:
      return "MethodNotAllowed";
    case StatusCode::kTooManyRequests:
      return "TooManyRequests";
    case StatusCode::kServerError:
      return "ServerError";
    case StatusCode::kTimeout:
      return "Timeout";
    case StatusCode::kTransport:
      return "Transport";
    case StatusCode::kDecode:
      return "Decode";
    case StatusCode::kConfig:
      return "Config";
    case StatusCode::kCancelled:
      return "Cancelled";
    case StatusCode::kInternal:
      return "Internal";
  }
  return "Unknown";
}

Status::Status(StatusCode code, std::string message) {
  if (code != StatusCode::kOk) {
    state_ = std::make_shared<const State>(State{code, 0, "", std::move(message), std::nullopt});
  }
}

Status Status::FromHttp(int http_status, const std::string& reason, std::string message,
                        std::optional<std::chrono::seconds> retry_after) {
  StatusCode code = CodeFromReason(reason);
  // The API server answers a conflicting create with 409 + AlreadyExists and a stale
  // update with 409 + Conflict; trust the reason when there is one.
  if (code == StatusCode::kOk) code = CodeFromHttp(http_status);
  Status status;
  status.state_ = std::make_shared<const State>(
      State{code, http_status, reason, std::move(message), retry_after});
  return status;
}

const std::string& Status::reason() const { return state_ ? state_->reason : EmptyString(); }

const std::string& Status::message() const { return state_ ? state_->message : EmptyString(); }

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  Status copy;
  State state = *state_;
  state.message = context + ": " + state.message;
  copy.state_ = std::make_shared<const State>(std::move(state));
  return copy;
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out = StatusCodeName(code());
  if (http_status() != 0) out += " (" + std::to_string(http_status()) + ")";
  out += ": " + message();
  return out;
}

}  // namespace dpcm
