// Base64 (RFC 4648) encoding and decoding, as kubeconfig *-data fields and Basic auth use it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace dpcm::base64 {

// Standard alphabet with '=' padding.
std::string Encode(std::string_view bytes);

// Accepts the standard and the URL-safe alphabet, with or without padding, and ignores
// whitespace and line breaks. Returns nullopt on any other character.
std::optional<std::string> Decode(std::string_view text);

}  // namespace dpcm::base64
