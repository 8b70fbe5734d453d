#include "tests/podsim/names.h"

#include <cstdint>
#include <cstdio>

namespace dpcm::podsim {
namespace {

constexpr size_t kMaxFileName = 255;

bool IsAlnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

bool IsLabelBody(std::string_view label) {
  if (label.empty() || !IsAlnum(label.front()) || !IsAlnum(label.back())) return false;
  for (char c : label) {
    if (!IsAlnum(c) && c != '-') return false;
  }
  return true;
}

uint64_t Fnv1a(std::string_view text) {
  uint64_t hash = 14695981039346656037ULL;
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

}  // namespace

bool IsDns1123Label(std::string_view name) { return name.size() <= 63 && IsLabelBody(name); }

bool IsDns1123Subdomain(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string_view part =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (!IsLabelBody(part)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

std::string StateFileName(std::string_view pod_name, std::string_view suffix) {
  if (pod_name.size() + suffix.size() <= kMaxFileName) {
    return std::string(pod_name) + std::string(suffix);
  }
  char hash[17];
  std::snprintf(hash, sizeof(hash), "%016llx", static_cast<unsigned long long>(Fnv1a(pod_name)));
  const size_t keep = kMaxFileName - suffix.size() - 17;
  return std::string(pod_name.substr(0, keep)) + "-" + hash + std::string(suffix);
}

}  // namespace dpcm::podsim
