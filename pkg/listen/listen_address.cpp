#include "pkg/listen/listen_address.h"

#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>

namespace dpcm::listen {
namespace {

// SO_REUSEADDR only: cpp-httplib's default adds SO_REUSEPORT.
void ExclusivePortOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// False where the kernel has no IPv6 (booted with ipv6.disable=1, or built without it).
bool HostHasIpv6() {
  const int fd = socket(AF_INET6, SOCK_STREAM, 0);
  if (fd < 0) return false;
  close(fd);
  return true;
}

int BindHost(httplib::Server& server, const std::string& host, int port) {
  if (port == 0) return server.bind_to_any_port(host);
  return server.bind_to_port(host, port) ? port : -1;
}

}  // namespace

Result<ListenAddress> Parse(std::string_view address, std::string_view flag) {
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::Config(std::string(flag) + " \"" + std::string(address) +
                          "\" is not HOST:PORT or :PORT");
  }
  ListenAddress parsed;
  std::string_view host = address.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    return Status::Config(std::string(flag) + " \"" + std::string(address) +
                          "\": write an IPv6 address in brackets, e.g. [::1]:8080");
  }
  parsed.host = std::string(host);
  const std::string_view port = address.substr(colon + 1);
  const auto [end, error] = std::from_chars(port.data(), port.data() + port.size(), parsed.port);
  if (port.empty() || error != std::errc() || end != port.data() + port.size() || parsed.port < 0 ||
      parsed.port > 65535) {
    return Status::Config(std::string(flag) + " \"" + std::string(address) +
                          "\" has no valid port (0-65535)");
  }
  return parsed;
}

Result<int> Bind(httplib::Server& server, const ListenAddress& address) {
  server.set_socket_options(ExclusivePortOptions);
  std::string host = address.host;
  if (host.empty()) host = HostHasIpv6() ? "::" : "0.0.0.0";
  const int port = BindHost(server, host, address.port);
  if (port <= 0) return Status::Transport("cannot listen on " + Format(address));
  return port;
}

std::string Format(const ListenAddress& address) {
  const bool v6 = address.host.find(':') != std::string::npos;
  return (v6 ? "[" + address.host + "]" : address.host) + ":" + std::to_string(address.port);
}

}  // namespace dpcm::listen
