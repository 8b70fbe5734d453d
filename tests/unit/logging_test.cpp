// Logging setup: --log-level and --log-format values the operator refuses to start with.
#include "pkg/logging/logging.h"

#include <doctest/doctest.h>

#include <string>

namespace dpcm::logging {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("logging::Configure rejects an unknown level with kConfig naming --log-level") {
  for (const char* level : {"loud", "", "INFO!", "verbose", "5"}) {
    CAPTURE(level);
    const Status status = Configure(level, "text");
    CHECK(status.code() == StatusCode::kConfig);
    CHECK(Contains(status.message(), "--log-level"));
    CHECK(Contains(status.message(), std::string("\"") + level + "\""));
  }
}

TEST_CASE("logging::Configure rejects an unknown format with kConfig naming --log-format") {
  // One call only: a rejected format still registers the "dpcm" logger (see the report), so
  // a second Configure in this process would throw.
  const Status status = Configure("info", "yaml");
  CHECK(status.code() == StatusCode::kConfig);
  CHECK(Contains(status.message(), "--log-format"));
  CHECK(Contains(status.message(), "\"yaml\""));
}

}  // namespace
}  // namespace dpcm::logging
