// Names from the cluster as the simulator trusts them: DNS-1123 checks and state file names.
#pragma once

#include <string>
#include <string_view>

namespace dpcm::podsim {

// True for a DNS-1123 subdomain (what pod names are): at most 253 characters of
// [a-z0-9.-], each dot-separated part starting and ending with [a-z0-9].
bool IsDns1123Subdomain(std::string_view name);

// True for a DNS-1123 label (what namespace names are): at most 63 characters of
// [a-z0-9-], starting and ending with [a-z0-9].
bool IsDns1123Label(std::string_view name);

// The file name "<pod><suffix>" when it fits in NAME_MAX (255 bytes). A longer one (pod
// names may have 253 characters) keeps a prefix of the name and appends a hash of the
// whole name, so that it stays unique: "<prefix>-<16 hex digits><suffix>".
std::string StateFileName(std::string_view pod_name, std::string_view suffix);

}  // namespace dpcm::podsim
