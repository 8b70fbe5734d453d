// The unit test entry point: doctest's runner with the operator's logging quietened.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

int main(int argc, char** argv) {
  // The watcher logs every skipped event and retry at warn; the tests provoke those on
  // purpose. DPCM_TEST_LOG=debug (or info, warn) shows them.
  const char* level = std::getenv("DPCM_TEST_LOG");  // NOLINT(concurrency-mt-unsafe)
  spdlog::set_level(level != nullptr ? spdlog::level::from_str(level) : spdlog::level::off);
  doctest::Context context(argc, argv);
  return context.run();
}
