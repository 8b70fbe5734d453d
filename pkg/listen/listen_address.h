// Listen addresses of dpcm's HTTP servers: parsed, and bound on IPv6 and IPv4 by default.
#pragma once

#include <string>
#include <string_view>

#include "pkg/status/status.h"

namespace httplib {
class Server;
}  // namespace httplib

namespace dpcm::listen {

// A parsed "host:port". An empty host means every interface of both IP families.
struct ListenAddress {
  std::string host;  // without brackets: "", "0.0.0.0", "::", "127.0.0.1", "::1", a name
  int port = 0;      // 0: an ephemeral port
};

// Parses ":8080" (every interface, IPv6 and IPv4), "[::]:8080" (the same), "0.0.0.0:8080"
// (IPv4 only), "127.0.0.1:8080", "[::1]:8080" or "name:8080". A malformed address or a
// port outside 0..65535 is a kConfig error naming `flag` (e.g. "--metrics-bind-address").
Result<ListenAddress> Parse(std::string_view address, std::string_view flag);

// Binds `server` to `address` (it then listens with listen_after_bind()), without
// SO_REUSEPORT: a second process asking for a port in use fails instead of silently
// sharing it. An empty host, or "::", binds one IPv6 socket with IPV6_V6ONLY off
// (cpp-httplib clears it), which takes IPv4 connections too (as ::ffff:a.b.c.d); on a host
// without IPv6 an empty host falls back to "0.0.0.0". Returns the bound port (the real one
// for port 0), or kTransport when nothing could be bound.
Result<int> Bind(httplib::Server& server, const ListenAddress& address);

// "[::1]:8080", "127.0.0.1:8080" or ":8080": the address as a flag would spell it.
std::string Format(const ListenAddress& address);

}  // namespace dpcm::listen
