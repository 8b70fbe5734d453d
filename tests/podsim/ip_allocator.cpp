#include "tests/podsim/ip_allocator.h"

#include <charconv>

namespace dpcm::podsim {

std::optional<uint32_t> ParseIpv4(std::string_view text) {
  uint32_t address = 0;
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (text.empty() || text.front() != '.') return std::nullopt;
      text.remove_prefix(1);
    }
    unsigned value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end == text.data() || value > 255) return std::nullopt;
    text.remove_prefix(static_cast<size_t>(end - text.data()));
    address = (address << 8) | value;
  }
  if (!text.empty()) return std::nullopt;
  return address;
}

std::string FormatIpv4(uint32_t address) {
  return std::to_string((address >> 24) & 0xff) + "." + std::to_string((address >> 16) & 0xff) +
         "." + std::to_string((address >> 8) & 0xff) + "." + std::to_string(address & 0xff);
}

Result<IpAllocator> IpAllocator::Create(std::string_view base, uint32_t size) {
  const auto parsed = ParseIpv4(base);
  if (!parsed) return Status::Config("--ip-base: not an IPv4 address: " + std::string(base));
  if (size == 0 || static_cast<uint64_t>(*parsed) + size > 0xffffffffULL) {
    return Status::Config("--ip-base: the address range leaves IPv4");
  }
  return IpAllocator(*parsed, size);
}

std::optional<std::string> IpAllocator::Allocate(std::string_view preferred) {
  if (!preferred.empty()) {
    const auto address = ParseIpv4(preferred);
    if (address && *address > base_ && *address - base_ <= size_ &&
        used_.insert(*address - base_).second) {
      return FormatIpv4(*address);
    }
  }
  uint32_t offset = 1;
  for (uint32_t used : used_) {  // sorted: the first gap is the lowest free offset
    if (used != offset) break;
    ++offset;
  }
  if (offset > size_) return std::nullopt;
  used_.insert(offset);
  return FormatIpv4(base_ + offset);
}

void IpAllocator::Release(std::string_view ip) {
  const auto address = ParseIpv4(ip);
  if (address && *address > base_) used_.erase(*address - base_);
}

}  // namespace dpcm::podsim
