// What the allocator reports about the process heap.
#include "pkg/memory/memory.h"

#include <doctest/doctest.h>

#include <cstring>
#include <memory>

namespace dpcm::memory {
namespace {

TEST_CASE("heap statistics count a live allocation as in use and stop counting it when freed") {
  constexpr size_t kSize = 4 * 1024 * 1024;
  const HeapStats before = ReadHeapStats();
  auto block = std::make_unique<char[]>(kSize);
  std::memset(block.get(), 1, kSize);  // touched, so no allocator can skip it
  const HeapStats with = ReadHeapStats();
  CHECK(with.in_use >= before.in_use + kSize);
  CHECK(with.mapped >= with.in_use);
  block.reset();
  const HeapStats after = ReadHeapStats();
  CHECK(after.in_use + kSize <= with.in_use);
}

}  // namespace
}  // namespace dpcm::memory
