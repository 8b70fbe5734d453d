// backoff::Exponential: the one doubling-with-a-cap policy behind retries, restarts and reconnects.
#include "pkg/backoff/backoff.h"

#include <doctest/doctest.h>

#include <chrono>
#include <climits>

namespace dpcm::backoff {
namespace {

using namespace std::chrono_literals;

TEST_CASE("Exponential doubles from its initial delay up to its cap") {
  const Exponential b(250ms, 10s);
  CHECK(b.After(0) == 0ms);
  CHECK(b.After(-3) == 0ms);
  CHECK(b.After(1) == 250ms);
  CHECK(b.After(2) == 500ms);
  CHECK(b.After(3) == 1s);
  CHECK(b.After(6) == 8s);
  CHECK(b.After(7) == 10s);  // 16 s capped
  CHECK(b.After(1000) == 10s);
  CHECK(b.After(INT_MAX) == 10s);  // no overflow, no long loop
}

TEST_CASE("Exponential with odd bounds: a cap below the start, zero, negative") {
  CHECK(Exponential(5s, 1s).After(1) == 5s);  // the cap is at least the start
  CHECK(Exponential(5s, 1s).After(9) == 5s);
  CHECK(Exponential(0ms, 1s).After(5) == 0ms);
  CHECK(Exponential(-1ms, -5ms).After(3) == 0ms);
  const Exponential huge(std::chrono::hours(24 * 365), std::chrono::hours(24 * 365 * 100));
  CHECK(huge.After(INT_MAX) == std::chrono::hours(24 * 365 * 100));
}

}  // namespace
}  // namespace dpcm::backoff
