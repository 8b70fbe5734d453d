// HttpTransport::Create rejects bad server URLs and PEM material up front, before any request.
#include "pkg/client/http_transport.h"

#include <doctest/doctest.h>

#include <string>

#include "tests/support/test_pki.h"

namespace dpcm::client {
namespace {

Result<std::unique_ptr<HttpTransport>> CreateFor(const std::string& server) {
  restconfig::RestConfig config;
  config.server = server;
  return HttpTransport::Create(config, {});
}

TEST_CASE("HttpTransport::Create accepts https, http, IPv6 and a base path") {
  for (const char* server : {"https://10.0.0.1:6443", "https://kubernetes.default.svc",
                             "http://127.0.0.1:8080", "https://[::1]:6443", "https://[fd00::1]",
                             "https://rancher.example/k8s/clusters/c-1/", "https://host:65535"}) {
    CAPTURE(std::string(server));
    const auto transport = CreateFor(server);
    CHECK_MESSAGE(transport.ok(), transport.status().ToString());
  }
}

TEST_CASE("HttpTransport::Create rejects bad server URLs with kConfig") {
  for (const char* server : {"10.0.0.1:6443", "ftp://host", "", "https://", "https://:6443",
                             "https://host:abc", "https://host:0", "https://host:65536",
                             "https://host:-1", "https://host:80x", "https://[::1:6443"}) {
    CAPTURE(std::string(server));
    const auto transport = CreateFor(server);
    REQUIRE_FALSE(transport.ok());
    CHECK(transport.status().code() == StatusCode::kConfig);
  }
}

TEST_CASE("HttpTransport::Create accepts a PEM CA bundle and a matching client cert and key") {
  restconfig::RestConfig config;
  config.server = "https://10.0.0.1:6443";
  config.ca_pem = std::string(testing::kTestCertPem) + std::string(testing::kTestCertPem);
  config.client_cert_pem = testing::kTestCertPem;
  config.client_key_pem = testing::kTestKeyPem;
  const auto transport = HttpTransport::Create(config, {});
  CHECK_MESSAGE(transport.ok(), transport.status().ToString());
}

TEST_CASE("HttpTransport::Create rejects CA data that is not PEM") {
  restconfig::RestConfig config;
  config.server = "https://10.0.0.1:6443";
  SUBCASE("plain text") { config.ca_pem = "this is not a certificate"; }
  SUBCASE("a key where a certificate belongs") { config.ca_pem = testing::kTestKeyPem; }
  SUBCASE("a truncated certificate") {
    config.ca_pem = std::string(testing::kTestCertPem.substr(0, 120));
  }
  const auto transport = HttpTransport::Create(config, {});
  REQUIRE_FALSE(transport.ok());
  CHECK(transport.status().code() == StatusCode::kConfig);
  CHECK(transport.status().message().find("certificate authority") != std::string::npos);
}

TEST_CASE("HttpTransport::Create rejects a client certificate without a valid key") {
  restconfig::RestConfig config;
  config.server = "https://10.0.0.1:6443";
  config.client_cert_pem = testing::kTestCertPem;
  SUBCASE("no key") {}
  SUBCASE("garbage key") { config.client_key_pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n"; }
  SUBCASE("a certificate where the key belongs") { config.client_key_pem = testing::kTestCertPem; }
  const auto transport = HttpTransport::Create(config, {});
  REQUIRE_FALSE(transport.ok());
  CHECK(transport.status().code() == StatusCode::kConfig);
  CHECK(transport.status().message().find("client key") != std::string::npos);
}

TEST_CASE("HttpTransport::Create rejects a client certificate that is not PEM") {
  restconfig::RestConfig config;
  config.server = "https://10.0.0.1:6443";
  config.client_cert_pem = "not a cert";
  config.client_key_pem = testing::kTestKeyPem;
  const auto transport = HttpTransport::Create(config, {});
  REQUIRE_FALSE(transport.ok());
  CHECK(transport.status().code() == StatusCode::kConfig);
  CHECK(transport.status().message().find("client certificate") != std::string::npos);
}

}  // namespace
}  // namespace dpcm::client
