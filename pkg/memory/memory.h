// Memory: how much the C allocator (glibc malloc) keeps of what the process freed.
#pragma once

#include <cstddef>

namespace dpcm::memory {

// The malloc arenas a process gets unless told otherwise: glibc gives each thread that
// allocates while another holds an arena a new one, up to 8 per core, and every arena keeps
// its own free pages and its own partly used ones. A controller whose threads mostly wait
// (watches, probes, timers, HTTP pools) gains nothing from them and pays their RSS: cap
// them at `arenas` (M_ARENA_MAX) unless the environment sets MALLOC_ARENA_MAX (then that
// wins, as glibc documents it). Call first in main, before any thread starts; threads then
// share the arenas (a lock per allocation, uncontended here). `arenas` >= 1.
void LimitArenas(int arenas);

// Returns the free pages of every arena to the system (malloc_trim): after a large
// transient allocation (an initial list, a cache that dropped objects). Walks the heap, so
// call it after such an event, not on a timer. Thread-safe.
void ReturnFreeMemory();

// What the allocator holds, in bytes (mallinfo2): `in_use` by live allocations, `free` in
// its free lists (resident or not), `mapped` from the system in all (heap arenas + large
// blocks mmapped on their own).
struct HeapStats {
  size_t in_use = 0;
  size_t free = 0;
  size_t mapped = 0;
};
HeapStats ReadHeapStats();

}  // namespace dpcm::memory
