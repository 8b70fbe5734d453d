// Status and Result: how API errors are classified, described and carried.
#include "pkg/status/status.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "pkg/client/http_transport.h"

namespace dpcm {
namespace {

using namespace std::chrono_literals;

TEST_CASE("Status::FromHttp maps HTTP codes and reasons to kinds callers branch on") {
  struct Case {
    int http;
    const char* reason;
    StatusCode want;
  };
  const std::vector<Case> cases = {
      {404, "NotFound", StatusCode::kNotFound},
      {404, "", StatusCode::kNotFound},
      {409, "AlreadyExists", StatusCode::kAlreadyExists},
      {409, "Conflict", StatusCode::kConflict},
      {409, "", StatusCode::kConflict},
      {410, "", StatusCode::kGone},
      {410, "Expired", StatusCode::kGone},
      {410, "Gone", StatusCode::kGone},
      {401, "Unauthorized", StatusCode::kUnauthorized},
      {403, "Forbidden", StatusCode::kForbidden},
      {403, "", StatusCode::kForbidden},
      {422, "Invalid", StatusCode::kInvalid},
      {422, "", StatusCode::kInvalid},
      {400, "BadRequest", StatusCode::kBadRequest},
      {429, "TooManyRequests", StatusCode::kTooManyRequests},
      {500, "InternalError", StatusCode::kServerError},
      {500, "", StatusCode::kServerError},
      {503, "ServiceUnavailable", StatusCode::kServerError},
      {503, "", StatusCode::kServerError},
      {504, "", StatusCode::kTimeout},
      {504, "Timeout", StatusCode::kTimeout},
      // An unknown reason falls back to the HTTP code.
      {404, "SomethingNew", StatusCode::kNotFound},
  };
  for (const auto& c : cases) {
    CAPTURE(c.http);
    CAPTURE(std::string(c.reason));
    const Status status = Status::FromHttp(c.http, c.reason, "message");
    CHECK_FALSE(status.ok());
    CHECK(status.code() == c.want);
    CHECK(status.http_status() == c.http);
    CHECK(status.reason() == c.reason);
    CHECK(status.message() == "message");
  }
}

TEST_CASE("Status::FromHttp trusts the reason over the code for 409") {
  // The API server answers a create of an existing object with 409 AlreadyExists and a
  // stale update with 409 Conflict: callers must tell them apart.
  const Status exists = Status::FromHttp(409, "AlreadyExists", "configmaps \"a\" already exists");
  CHECK(exists.IsAlreadyExists());
  CHECK_FALSE(exists.IsConflict());
  const Status conflict = Status::FromHttp(409, "Conflict", "the object has been modified");
  CHECK(conflict.IsConflict());
  CHECK_FALSE(conflict.IsAlreadyExists());
}

TEST_CASE("Status predicates match their kind and only their kind") {
  CHECK(Status::FromHttp(404, "", "").IsNotFound());
  CHECK(Status::FromHttp(410, "Expired", "").IsGone());
  CHECK(Status::FromHttp(403, "", "").IsForbidden());
  CHECK(Status::FromHttp(422, "", "").IsInvalid());
  CHECK(Status::FromHttp(500, "", "").IsServerError());
  CHECK(Status::Transport("refused").IsTransport());
  CHECK(Status::Cancelled("stop").IsCancelled());
  const Status not_found = Status::NotFound("x");
  CHECK_FALSE(not_found.IsGone());
  CHECK_FALSE(not_found.IsConflict());
  CHECK_FALSE(not_found.IsServerError());
}

TEST_CASE("Status 429 carries the server's retry-after") {
  const Status throttled = Status::FromHttp(429, "TooManyRequests", "slow down", 7s);
  CHECK(throttled.IsTooManyRequests());
  REQUIRE(throttled.retry_after().has_value());
  CHECK(*throttled.retry_after() == 7s);
  CHECK_FALSE(Status::FromHttp(429, "", "slow down").retry_after().has_value());
}

TEST_CASE("an OK status is OK and describes itself as OK") {
  const Status ok;
  CHECK(ok.ok());
  CHECK(ok.code() == StatusCode::kOk);
  CHECK(ok.http_status() == 0);
  CHECK(ok.message().empty());
  CHECK(ok.reason().empty());
  CHECK(ok.ToString() == "OK");
  CHECK(Status::Ok().ok());
  // An OK code passed to the constructor is still OK, whatever the message.
  CHECK(Status(StatusCode::kOk, "ignored").ok());
}

TEST_CASE("Status::WithContext prefixes the message and keeps everything else") {
  const Status original =
      Status::FromHttp(429, "TooManyRequests", "pods \"x\" throttled", std::chrono::seconds(3));
  const Status wrapped = original.WithContext("get pod ns/x");
  CHECK(wrapped.message() == "get pod ns/x: pods \"x\" throttled");
  CHECK(wrapped.code() == StatusCode::kTooManyRequests);
  CHECK(wrapped.http_status() == 429);
  CHECK(wrapped.reason() == "TooManyRequests");
  CHECK(wrapped.retry_after() == std::chrono::seconds(3));
  // The original is immutable: copies share state, so wrapping must not leak back.
  CHECK(original.message() == "pods \"x\" throttled");
  // Wrapping OK stays OK (no message appears out of nowhere).
  CHECK(Status::Ok().WithContext("anything").ok());
}

TEST_CASE("Status::ToString names the kind, the HTTP code when there is one, and the message") {
  CHECK(Status::FromHttp(404, "NotFound", "pods \"x\" not found").ToString() ==
        "NotFound (404): pods \"x\" not found");
  CHECK(Status::Config("no server").ToString() == "Config: no server");
  CHECK(std::string(StatusCodeName(StatusCode::kGone)) == "Gone");
  CHECK(std::string(StatusCodeName(StatusCode::kServerError)) == "ServerError");
}

TEST_CASE("Result holds a value or an error") {
  Result<std::string> value(std::string("hello"));
  REQUIRE(value.ok());
  CHECK(value.status().ok());
  CHECK(*value == "hello");
  CHECK(value->size() == 5);
  value.value() += "!";
  CHECK(value.value() == "hello!");
  const std::string moved = std::move(value).value();
  CHECK(moved == "hello!");

  Result<int> error(Status::NotFound("nope"));
  CHECK_FALSE(error.ok());
  CHECK(error.status().IsNotFound());
  CHECK(error.status().message() == "nope");
  CHECK_THROWS_AS(error.value(), std::bad_variant_access);
}

TEST_CASE("a Result built from an OK status is an Internal error, not an empty success") {
  Result<int> result(Status::Ok());
  CHECK_FALSE(result.ok());
  CHECK(result.status().code() == StatusCode::kInternal);
  CHECK_FALSE(result.status().message().empty());
}

// --- client::DecodeErrorResponse: what the API server (or a proxy) sends back ---

TEST_CASE("DecodeErrorResponse reads a metav1.Status body") {
  const std::string body = R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
                           R"("message":"pods \"x\" not found","reason":"NotFound",)"
                           R"("details":{"name":"x","kind":"pods"},"code":404})";
  const Status status = client::DecodeErrorResponse(404, body, "");
  CHECK(status.IsNotFound());
  CHECK(status.http_status() == 404);
  CHECK(status.reason() == "NotFound");
  CHECK(status.message() == "pods \"x\" not found");
  CHECK_FALSE(status.retry_after().has_value());
}

TEST_CASE("DecodeErrorResponse tells AlreadyExists from Conflict by the body's reason") {
  const std::string exists =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
      R"("message":"configmaps \"a\" already exists","reason":"AlreadyExists",)"
      R"("details":{"name":"a","kind":"configmaps"},"code":409})";
  CHECK(client::DecodeErrorResponse(409, exists, "").IsAlreadyExists());
  const std::string conflict =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
      R"("message":"Operation cannot be fulfilled on configmaps \"a\": the object has been )"
      R"(modified; please apply your changes to the latest version and try again",)"
      R"("reason":"Conflict","details":{"name":"a","kind":"configmaps"},"code":409})";
  CHECK(client::DecodeErrorResponse(409, conflict, "").IsConflict());
}

TEST_CASE("DecodeErrorResponse takes retry-after from the header or from details") {
  const std::string body =
      R"({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",)"
      R"("message":"Too many requests, please try again later.","reason":"TooManyRequests",)"
      R"("details":{"retryAfterSeconds":1},"code":429})";
  SUBCASE("the Retry-After header wins") {
    const Status status = client::DecodeErrorResponse(429, body, "4");
    CHECK(status.IsTooManyRequests());
    CHECK(status.retry_after() == std::chrono::seconds(4));
  }
  SUBCASE("details.retryAfterSeconds when there is no header") {
    const Status status = client::DecodeErrorResponse(429, body, "");
    CHECK(status.IsTooManyRequests());
    CHECK(status.retry_after() == std::chrono::seconds(1));
  }
  SUBCASE("a Retry-After that is not a number of seconds is ignored") {
    const Status status = client::DecodeErrorResponse(429, "", "Wed, 21 Oct 2015 07:28:00 GMT");
    CHECK(status.IsTooManyRequests());
    CHECK_FALSE(status.retry_after().has_value());
  }
}

TEST_CASE("DecodeErrorResponse bounds the excerpt of an HTML or garbage body") {
  std::string html = "<html>\r\n<head><title>502 Bad Gateway</title></head>\n<body>";
  html += std::string(5000, 'x');
  html += "</body></html>";
  const Status status = client::DecodeErrorResponse(502, html, "");
  CHECK(status.IsServerError());
  CHECK(status.http_status() == 502);
  CHECK(status.reason().empty());
  CHECK(status.message().rfind("HTTP 502: <html>", 0) == 0);
  CHECK(status.message().size() <= 220);
  // Log lines stay single lines.
  CHECK(status.message().find('\n') == std::string::npos);
  CHECK(status.message().find('\r') == std::string::npos);

  const Status json_not_status =
      client::DecodeErrorResponse(500, R"({"kind":"Pod","message":"not a Status"})", "");
  CHECK(json_not_status.IsServerError());
  CHECK(json_not_status.message().rfind("HTTP 500", 0) == 0);
}

TEST_CASE("DecodeErrorResponse survives JSON whose fields have the wrong types") {
  // A proxy or a broken aggregated API server is not the API server: wrong types must
  // give an error value, not an exception out of the client.
  Status status;
  CHECK_NOTHROW(status = client::DecodeErrorResponse(
                    404, R"({"kind":"Status","code":"404","reason":7,"message":{"a":1}})", ""));
  CHECK(status.IsNotFound());
  CHECK(status.reason().empty());
  CHECK(status.message() == "HTTP 404");
  CHECK_NOTHROW(status = client::DecodeErrorResponse(503, R"({"kind":5,"message":"m"})", ""));
  CHECK(status.IsServerError());
  CHECK_NOTHROW(status = client::DecodeErrorResponse(
                    429, R"({"kind":"Status","reason":"TooManyRequests","details":[1]})", ""));
  CHECK(status.IsTooManyRequests());
}

TEST_CASE("DecodeErrorResponse with an empty body names the HTTP code") {
  const Status status = client::DecodeErrorResponse(503, "", "");
  CHECK(status.IsServerError());
  CHECK(status.message() == "HTTP 503");
  const Status forbidden = client::DecodeErrorResponse(403, "", "");
  CHECK(forbidden.IsForbidden());
  CHECK(forbidden.message() == "HTTP 403");
}

}  // namespace
}  // namespace dpcm
