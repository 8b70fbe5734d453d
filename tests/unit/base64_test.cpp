// Base64 as kubeconfig *-data fields and Basic auth need it.
#include "pkg/base64/base64.h"

#include <doctest/doctest.h>

namespace dpcm::base64 {
namespace {

TEST_CASE("base64 encodes the RFC 4648 test vectors and decodes them back") {
  const std::pair<const char*, const char*> vectors[] = {{"", ""},
                                                         {"f", "Zg=="},
                                                         {"fo", "Zm8="},
                                                         {"foo", "Zm9v"},
                                                         {"foob", "Zm9vYg=="},
                                                         {"fooba", "Zm9vYmE="},
                                                         {"foobar", "Zm9vYmFy"}};
  for (const auto& [plain, encoded] : vectors) {
    CHECK(Encode(plain) == encoded);
    CHECK(Decode(encoded) == std::optional<std::string>(plain));
  }
  const std::string binary("\x00\xff\x10\x80", 4);
  CHECK(Decode(Encode(binary)) == binary);
}

TEST_CASE("base64 decoding tolerates line breaks and URL-safe input, and rejects garbage") {
  CHECK(Decode("Zm9v\nYmFy\r\n") == std::optional<std::string>("foobar"));
  CHECK(Decode("-_8=") == Decode("+/8="));
  CHECK_FALSE(Decode("Zm9v*mFy").has_value());
  CHECK_FALSE(Decode("%%%").has_value());
}

}  // namespace
}  // namespace dpcm::base64
