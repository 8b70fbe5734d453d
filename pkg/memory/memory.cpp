#include "pkg/memory/memory.h"

#include <malloc.h>

#include <cstdlib>

namespace dpcm::memory {

void LimitArenas(int arenas) {
  if (std::getenv("MALLOC_ARENA_MAX") != nullptr) return;  // NOLINT(concurrency-mt-unsafe)
  mallopt(M_ARENA_MAX, arenas < 1 ? 1 : arenas);  // NOLINT(concurrency-mt-unsafe): before threads
}

void ReturnFreeMemory() { malloc_trim(0); }

HeapStats ReadHeapStats() {
  const struct mallinfo2 info = mallinfo2();
  return HeapStats{.in_use = info.uordblks + info.hblkhd,
                   .free = info.fordblks,
                   .mapped = info.arena + info.hblkhd};
}

}  // namespace dpcm::memory
