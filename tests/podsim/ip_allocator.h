// Hands out loopback addresses to pods: base+1, base+2, ..., reusing released ones first.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "pkg/status/status.h"

namespace dpcm::podsim {

// Not thread-safe: the simulator calls it under its own lock.
class IpAllocator {
 public:
  // `base` is a dotted IPv4 address ("127.1.0.0"); addresses are base+1 .. base+`size`.
  static Result<IpAllocator> Create(std::string_view base, uint32_t size = 65534);

  // The lowest free address, or `preferred` when it is in range and free (a pod that
  // already had an address keeps it). Empty when every address is taken.
  std::optional<std::string> Allocate(std::string_view preferred = {});
  // Returns `ip` to the pool; unknown addresses are ignored.
  void Release(std::string_view ip);
  size_t in_use() const { return used_.size(); }

 private:
  IpAllocator(uint32_t base, uint32_t size) : base_(base), size_(size) {}

  uint32_t base_;
  uint32_t size_;
  std::set<uint32_t> used_;  // offsets 1..size_
};

// Parses a dotted IPv4 address into host byte order.
std::optional<uint32_t> ParseIpv4(std::string_view text);
std::string FormatIpv4(uint32_t address);

}  // namespace dpcm::podsim
