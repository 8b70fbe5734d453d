#include "pkg/cache/packed.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dpcm::cache {
namespace {

using nlohmann::json;

// Strings that recur in the objects this operator caches (trimmed pods, ProcessDomains,
// Leases, Services) and in what it writes: each is one byte in a packed object (tags
// 0x00..0x7F and 0xC0..0xFF). Only this process reads what it packed, so the list may change
// freely between versions.
constexpr std::array kDictionary = {
    // metadata
    "apiVersion", "kind", "metadata", "name", "namespace", "uid", "resourceVersion", "labels",
    "annotations", "ownerReferences", "blockOwnerDeletion", "controller", "creationTimestamp",
    "deletionTimestamp", "deletionGracePeriodSeconds", "generation", "finalizers", "spec", "status",
    "items", "v1", "Pod", "Service", "coordination.k8s.io/v1", "Lease", "dpcm.io/v1alpha1",
    "ProcessDomain", "Event",
    // labels and annotations of ours
    "dpcm.io/domain", "dpcm.io/role", "dpcm.io/epoch", "dpcm.io/fenced-epoch",
    "dpcm.io/holder-instance", "dc", "pc", "app",
    // pod status (trimmed)
    "phase", "podIP", "conditions", "type", "True", "False", "Unknown", "Initialized", "Ready",
    "ContainersReady", "PodScheduled", "containerStatuses", "ready", "restartCount", "state",
    "lastState", "running", "waiting", "terminated", "Pending", "Running", "Succeeded", "Failed",
    // Lease
    "holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions",
    // Service
    "ports", "port", "targetPort", "protocol", "TCP", "UDP", "selector", "clusterIP", "clusterIPs",
    "None", "ClusterIP", "ipFamilies", "IPv4", "ipFamilyPolicy", "SingleStack", "sessionAffinity",
    "internalTrafficPolicy", "Cluster", "publishNotReadyAddresses", "loadBalancer",
    // ProcessDomain spec
    "replicas", "paused", "mode", "template", "containers", "image", "command", "args", "env",
    "value", "election", "failoverDelaySeconds", "renewDeadlineSeconds", "retryPeriodSeconds",
    "health", "failureThreshold", "periodSeconds", "successThreshold", "timeoutSeconds", "restart",
    "backoff", "initialSeconds", "maxSeconds", "maxConcurrent", "roleHooks", "agent",
    // ProcessDomain status
    "activePod", "epoch", "failovers", "fencing", "LabelOnly", "lastFailover", "lastFailoverTime",
    "memberRestarts", "members", "consecutiveFailures", "healthy", "message", "restarts", "role",
    "observedGeneration", "reason", "lastTransitionTime", "Degraded", "Progressing", "DcElected",
    "AllMembersHealthy", "Stable", "from", "to", "time", "hooks", "none", "phases", "ms", "decided",
    "fenced", "leaseWritten", "labeled", "container-exited", ""};

// Tags (the first byte of every value).
constexpr uint8_t kDictionaryLow = 0x80;   // 0x00..0x7F: kDictionary[tag]
constexpr uint8_t kDictionaryHigh = 0xC0;  // 0xC0..0xFF: kDictionary[0x80 + tag - 0xC0]
static_assert(kDictionary.size() <= kDictionaryLow + (0x100 - kDictionaryHigh));
constexpr uint8_t kShortString = 0x80;  // 0x80..0x9F: a string of 0..31 bytes follows
constexpr uint8_t kSmallInt = 0xA0;     // 0xA0..0xAF: the unsigned integer 0..15
constexpr uint8_t kNull = 0xB0;
constexpr uint8_t kFalse = 0xB1;
constexpr uint8_t kTrue = 0xB2;
constexpr uint8_t kUnsigned = 0xB3;   // varint
constexpr uint8_t kNegative = 0xB4;   // varint of -1 - value
constexpr uint8_t kDouble = 0xB5;     // 8 bytes, host order (never leaves the process)
constexpr uint8_t kString = 0xB6;     // varint length, bytes
constexpr uint8_t kRepeated = 0xB7;   // varint: the n-th remembered string of this object
constexpr uint8_t kArray = 0xB8;      // varint count, values
constexpr uint8_t kObject = 0xB9;     // varint count, (string, value) pairs
constexpr uint8_t kUuid = 0xBA;       // 16 bytes of a lowercase 8-4-4-4-12 UUID
constexpr uint8_t kTimestamp = 0xBB;  // varint seconds since 1970 of "YYYY-MM-DDTHH:MM:SSZ"
constexpr uint8_t kBinary = 0xBC;     // varint subtype + 1 (0: none), varint length, bytes
constexpr uint8_t kMicroTime = 0xBD;  // varint microseconds since 1970 of "...:SS.ffffffZ"
constexpr size_t kShortLimit = 32;
constexpr size_t kSmallIntLimit = 16;
// Literal strings this long or longer are remembered; a repeat is then kRepeated + index.
constexpr size_t kRememberFrom = 4;

const std::unordered_map<std::string_view, uint8_t>& DictionaryIndex() {
  static const auto* index = [] {
    auto* map = new std::unordered_map<std::string_view, uint8_t>();
    for (size_t i = 0; i < kDictionary.size(); ++i) {
      const size_t tag = i < kDictionaryLow ? i : kDictionaryHigh + (i - kDictionaryLow);
      map->emplace(kDictionary[i], static_cast<uint8_t>(tag));  // the first of duplicates wins
    }
    return map;
  }();
  return *index;
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }
int HexValue(char c) { return c <= '9' ? c - '0' : c - 'a' + 10; }
constexpr std::string_view kHexDigits = "0123456789abcdef";
constexpr std::array<size_t, 4> kUuidDashes = {8, 13, 18, 23};
constexpr size_t kUuidLength = 36;
constexpr size_t kUuidBytes = 16;

bool IsUuidDash(size_t at) {
  return std::find(kUuidDashes.begin(), kUuidDashes.end(), at) != kUuidDashes.end();
}

bool IsUuid(std::string_view s) {
  if (s.size() != kUuidLength) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    if (IsUuidDash(i) ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

std::string FormatTimestamp(uint64_t seconds) {
  const auto t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::array<char, 32> text{};
  const size_t n = std::strftime(text.data(), text.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return {text.data(), n};
}
constexpr size_t kTimestampLength = 20;  // 2006-01-02T15:04:05Z

// Seconds since 1970 of an RFC 3339 UTC timestamp with whole seconds, if `s` is exactly
// the text FormatTimestamp gives for them (so that unpacking gives back the same text).
std::optional<uint64_t> TimestampSeconds(std::string_view s) {
  if (s.size() != kTimestampLength || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != 'Z') {
    return std::nullopt;
  }
  auto number = [&s](size_t from, size_t length) {
    int value = -1;
    const auto [end, ec] = std::from_chars(s.data() + from, s.data() + from + length, value);
    return ec == std::errc() && end == s.data() + from + length ? value : -1;
  };
  std::tm tm{};
  tm.tm_year = number(0, 4) - 1900;  // struct tm counts years from 1900, months from 0
  tm.tm_mon = number(5, 2) - 1;
  tm.tm_mday = number(8, 2);
  tm.tm_hour = number(11, 2);
  tm.tm_min = number(14, 2);
  tm.tm_sec = number(17, 2);
  const std::time_t t = timegm(&tm);
  if (t < 0 || FormatTimestamp(static_cast<uint64_t>(t)) != s) return std::nullopt;
  return static_cast<uint64_t>(t);
}

// The same for a Kubernetes MicroTime (six digits of fraction, e.g. a Lease's renewTime), in
// microseconds.
constexpr size_t kMicroTimeLength = 27;  // 2006-01-02T15:04:05.000000Z
constexpr size_t kMicroDigits = 6;
constexpr uint64_t kMicrosPerSecond = 1000000;
std::optional<uint64_t> MicroTimeMicros(std::string_view s) {
  if (s.size() != kMicroTimeLength || s[kTimestampLength - 1] != '.') return std::nullopt;
  uint64_t micros = 0;
  const char* digits = s.data() + kTimestampLength;
  const auto [end, ec] = std::from_chars(digits, digits + kMicroDigits, micros);
  if (ec != std::errc() || end != digits + kMicroDigits || s.back() != 'Z') return std::nullopt;
  std::string whole(s.substr(0, kTimestampLength - 1));
  whole.push_back('Z');
  const auto seconds = TimestampSeconds(whole);
  if (!seconds.has_value()) return std::nullopt;
  return *seconds * kMicrosPerSecond + micros;
}
std::string FormatMicroTime(uint64_t micros) {
  std::string text = FormatTimestamp(micros / kMicrosPerSecond);
  std::array<char, kMicroDigits + 2> fraction{};
  std::snprintf(fraction.data(), fraction.size(), ".%06llu",
                static_cast<unsigned long long>(micros % kMicrosPerSecond));
  text.insert(text.size() - 1, fraction.data());
  return text;
}

class Packer {
 public:
  explicit Packer(std::string& out) : out_(out) {}

  void Value(const json& value) {
    switch (value.type()) {
      case json::value_t::null:
      case json::value_t::discarded:
        Byte(kNull);
        return;
      case json::value_t::boolean:
        Byte(value.get<bool>() ? kTrue : kFalse);
        return;
      case json::value_t::number_unsigned:
        Unsigned(value.get<uint64_t>());
        return;
      case json::value_t::number_integer: {
        const auto n = value.get<int64_t>();
        if (n >= 0) {
          Unsigned(static_cast<uint64_t>(n));
        } else {
          Byte(kNegative);
          Varint(static_cast<uint64_t>(-(n + 1)));
        }
        return;
      }
      case json::value_t::number_float: {
        const auto d = value.get<double>();
        Byte(kDouble);
        out_.append(reinterpret_cast<const char*>(&d), sizeof d);
        return;
      }
      case json::value_t::string:
        String(value.get_ref<const std::string&>());
        return;
      case json::value_t::array:
        Byte(kArray);
        Varint(value.size());
        for (const auto& element : value) Value(element);
        return;
      case json::value_t::object:
        Byte(kObject);
        Varint(value.size());
        for (const auto& [key, element] : value.items()) {
          String(key);
          Value(element);
        }
        return;
      case json::value_t::binary: {
        const auto& binary = value.get_binary();
        Byte(kBinary);
        Varint(binary.has_subtype() ? binary.subtype() + 1 : 0);
        Varint(binary.size());
        out_.append(reinterpret_cast<const char*>(binary.data()), binary.size());
        return;
      }
    }
  }

 private:
  void Byte(uint8_t b) { out_.push_back(static_cast<char>(b)); }
  void Varint(uint64_t n) {
    constexpr uint8_t kMore = 0x80;
    constexpr uint8_t kLow = 0x7F;
    while (n >= kMore) {
      Byte(static_cast<uint8_t>((n & kLow) | kMore));
      n >>= 7U;
    }
    Byte(static_cast<uint8_t>(n));
  }
  void Unsigned(uint64_t n) {
    if (n < kSmallIntLimit) {
      Byte(static_cast<uint8_t>(kSmallInt + n));
    } else {
      Byte(kUnsigned);
      Varint(n);
    }
  }
  // `s` must stay alive until the packing ends (it is a string of the packed tree).
  void String(std::string_view s) {
    if (const auto it = DictionaryIndex().find(s); it != DictionaryIndex().end()) {
      Byte(it->second);
      return;
    }
    if (IsUuid(s)) {
      Byte(kUuid);
      for (size_t i = 0; i < s.size(); i += 2) {
        if (s[i] == '-') ++i;
        Byte(static_cast<uint8_t>((HexValue(s[i]) << 4U) | HexValue(s[i + 1])));
      }
      return;
    }
    if (const auto seconds = TimestampSeconds(s)) {
      Byte(kTimestamp);
      Varint(*seconds);
      return;
    }
    if (const auto micros = MicroTimeMicros(s)) {
      Byte(kMicroTime);
      Varint(*micros);
      return;
    }
    if (s.size() >= kRememberFrom) {
      const auto [it, added] = remembered_.emplace(s, remembered_.size());
      if (!added) {
        Byte(kRepeated);
        Varint(it->second);
        return;
      }
    }
    if (s.size() < kShortLimit) {
      Byte(static_cast<uint8_t>(kShortString + s.size()));
    } else {
      Byte(kString);
      Varint(s.size());
    }
    out_.append(s);
  }

  std::string& out_;
  std::unordered_map<std::string_view, size_t> remembered_;
};

class Unpacker {
 public:
  explicit Unpacker(std::string_view in) : in_(in) {}

  json Value() {
    const uint8_t tag = Byte();
    if (tag < kDictionaryLow) return Dictionary(tag);
    if (tag >= kDictionaryHigh) return Dictionary(kDictionaryLow + (tag - kDictionaryHigh));
    if (tag >= kShortString && tag < kShortString + kShortLimit) {
      return Literal(tag - kShortString);
    }
    if (tag >= kSmallInt && tag < kSmallInt + kSmallIntLimit) {
      return static_cast<uint64_t>(tag - kSmallInt);
    }
    switch (tag) {
      case kNull:
        return nullptr;
      case kFalse:
        return false;
      case kTrue:
        return true;
      case kUnsigned:
        return Varint();
      case kNegative:
        return -static_cast<int64_t>(Varint()) - 1;
      case kDouble: {
        double d = 0;
        std::memcpy(&d, Take(sizeof d).data(), sizeof d);
        return d;
      }
      case kString:
        return Literal(Varint());
      case kRepeated: {
        const uint64_t n = Varint();
        if (n >= remembered_.size()) throw std::runtime_error("packed: bad repeat");
        return std::string(remembered_[n]);
      }
      case kArray: {
        json array = json::array();
        for (uint64_t n = Varint(); n > 0; --n) array.push_back(Value());
        return array;
      }
      case kObject: {
        json object = json::object();
        for (uint64_t n = Varint(); n > 0; --n) {
          json key = Value();
          if (!key.is_string()) throw std::runtime_error("packed: key not a string");
          object[key.get_ref<const std::string&>()] = Value();
        }
        return object;
      }
      case kUuid: {
        const std::string_view bytes = Take(kUuidBytes);
        std::string uuid;
        uuid.reserve(kUuidLength);
        for (const char c : bytes) {
          if (IsUuidDash(uuid.size())) uuid.push_back('-');
          const auto b = static_cast<uint8_t>(c);
          uuid.push_back(kHexDigits[b >> 4U]);
          uuid.push_back(kHexDigits[b & 0xFU]);
        }
        return uuid;
      }
      case kTimestamp:
        return FormatTimestamp(Varint());
      case kMicroTime:
        return FormatMicroTime(Varint());
      case kBinary: {
        const uint64_t subtype = Varint();
        const std::string_view bytes = Take(Varint());
        std::vector<uint8_t> data(bytes.begin(), bytes.end());
        if (subtype == 0) return json::binary(std::move(data));
        return json::binary(std::move(data),
                            static_cast<json::binary_t::subtype_type>(subtype - 1));
      }
      default:
        throw std::runtime_error("packed: unknown tag");
    }
  }

  bool done() const { return in_.empty(); }

 private:
  uint8_t Byte() { return static_cast<uint8_t>(Take(1)[0]); }
  static json Dictionary(size_t index) {
    if (index >= kDictionary.size()) throw std::runtime_error("packed: unknown tag");
    return kDictionary[index];
  }
  uint64_t Varint() {
    constexpr uint8_t kMore = 0x80;
    constexpr uint8_t kLow = 0x7F;
    constexpr unsigned kMaxShift = 63;
    uint64_t n = 0;
    for (unsigned shift = 0; shift <= kMaxShift; shift += 7) {
      const uint8_t b = Byte();
      n |= static_cast<uint64_t>(b & kLow) << shift;
      if ((b & kMore) == 0) return n;
    }
    throw std::runtime_error("packed: varint too long");
  }
  std::string_view Take(uint64_t n) {
    if (n > in_.size()) throw std::runtime_error("packed: truncated");
    const std::string_view taken = in_.substr(0, n);
    in_.remove_prefix(n);
    return taken;
  }
  json Literal(uint64_t length) {
    const std::string_view s = Take(length);
    if (s.size() >= kRememberFrom) remembered_.push_back(s);
    return std::string(s);
  }

  std::string_view in_;
  std::vector<std::string_view> remembered_;  // into in_'s buffer
};

}  // namespace

PackedObject Pack(const nlohmann::json& object) { return PackWithKey("", object); }

PackedObject PackWithKey(std::string_view key, const nlohmann::json& object) {
  std::string bytes;
  Packer(bytes).Value(object);
  constexpr std::size_t kMax = std::numeric_limits<uint32_t>::max();
  if (key.size() > kMax || bytes.size() > kMax) throw std::length_error("packed: over 4 GiB");
  // One allocation for the control block, the key and the bytes.
  auto block = std::make_shared_for_overwrite<char[]>(key.size() + bytes.size());
  std::copy(key.begin(), key.end(), block.get());
  std::copy(bytes.begin(), bytes.end(), block.get() + key.size());
  PackedObject packed;
  packed.block_ = std::move(block);
  packed.key_size_ = static_cast<uint32_t>(key.size());
  packed.bytes_size_ = static_cast<uint32_t>(bytes.size());
  return packed;
}

ObjectPtr Unpack(const PackedObject& packed) {
  return packed == nullptr ? nullptr : UnpackBytes(packed.bytes());
}

ObjectPtr UnpackBytes(std::string_view bytes) {
  Unpacker unpacker(bytes);
  auto object = std::make_shared<const nlohmann::json>(unpacker.Value());
  if (!unpacker.done()) throw std::runtime_error("packed: trailing bytes");
  return object;
}

}  // namespace dpcm::cache
