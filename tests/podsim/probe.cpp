#include "tests/podsim/probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace dpcm::podsim {
namespace {

using Json = nlohmann::json;
using std::chrono::milliseconds;

int IntField(const Json& object, const char* name, int fallback) {
  const auto it = object.find(name);
  return it != object.end() && it->is_number_integer() ? it->get<int>() : fallback;
}

// An IntOrString port: a number, a numeric string, or a container port's name.
Result<int> ResolvePort(const Json& port, const Json& container) {
  if (port.is_number_integer()) return port.get<int>();
  if (port.is_string()) {
    const std::string name = port.get<std::string>();
    if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) return std::stoi(name);
    const auto ports = container.find("ports");
    if (ports != container.end() && ports->is_array()) {
      for (const auto& p : *ports) {
        if (p.is_object() && p.value("name", "") == name && p.contains("containerPort") &&
            p["containerPort"].is_number_integer()) {
          return p["containerPort"].get<int>();
        }
      }
    }
    return Status::Invalid("probe port \"" + name + "\" is not a port of the container");
  }
  return Status::Invalid("probe has no port");
}

// Connects to host:port within `timeout`; returns the socket or -1 with `message` set.
int ConnectWithTimeout(const std::string& host, int port, milliseconds timeout,
                       std::string& message) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0) {
    message = "resolve " + host + ": " + ::gai_strerror(rc);
    return -1;
  }
  const int fd = ::socket(found->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    message = std::string("socket: ") + std::strerror(errno);
    ::freeaddrinfo(found);
    return -1;
  }
  int rc = ::connect(fd, found->ai_addr, found->ai_addrlen);
  ::freeaddrinfo(found);
  if (rc != 0 && errno == EINPROGRESS) {
    pollfd pfd{fd, POLLOUT, 0};
    rc = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (rc == 0) {
      message = "dial tcp " + host + ":" + service + ": i/o timeout";
      ::close(fd);
      return -1;
    }
    int error = 0;
    socklen_t length = sizeof(error);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (rc < 0 || error != 0) {
      message = "dial tcp " + host + ":" + service + ": " + std::strerror(rc < 0 ? errno : error);
      ::close(fd);
      return -1;
    }
    return fd;
  }
  if (rc != 0) {
    message = "dial tcp " + host + ":" + service + ": " + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

bool RunHttpProbe(const ProbeSpec& spec, std::string& message) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(spec.timeout);
  const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(spec.timeout - seconds);
  auto configure = [&](httplib::ClientImpl& client) {
    client.set_connection_timeout(seconds.count(), micros.count());
    client.set_read_timeout(seconds.count(), micros.count());
    client.set_write_timeout(seconds.count(), micros.count());
    client.set_keep_alive(false);
  };
  httplib::Headers headers{{"User-Agent", "kube-probe/1.20"}, {"Accept", "*/*"}};
  for (const auto& [name, value] : spec.headers) headers.emplace(name, value);
  httplib::Result result{nullptr, httplib::Error::Unknown};
  if (spec.scheme == "HTTPS") {
    httplib::SSLClient client(spec.host, spec.port);
    client.enable_server_certificate_verification(false);
    configure(client);
    result = client.Get(spec.path, headers);
  } else {
    httplib::ClientImpl client(spec.host, spec.port);
    configure(client);
    result = client.Get(spec.path, headers);
  }
  if (!result) {
    message = "GET " + spec.Url() + ": " + httplib::to_string(result.error());
    return false;
  }
  if (result->status >= 200 && result->status < 400) return true;
  message = "HTTP probe failed with statuscode: " + std::to_string(result->status);
  return false;
}

}  // namespace

std::string ProbeSpec::Url() const {
  return std::string(scheme == "HTTPS" ? "https" : "http") + "://" + host + ":" +
         std::to_string(port) + path;
}

std::string ProbeSpec::Describe() const {
  if (kind == Kind::kTcpSocket) return "tcp-socket " + host + ":" + std::to_string(port);
  return "http-get " + Url();
}

Result<std::optional<ProbeSpec>> ParseProbe(const Json& probe, const Json& container,
                                            const std::string& pod_ip, milliseconds max_period) {
  if (!probe.is_object()) return std::optional<ProbeSpec>();
  ProbeSpec spec;
  spec.host = pod_ip;
  const Json* handler = nullptr;
  if (probe.contains("httpGet") && probe["httpGet"].is_object()) {
    handler = &probe["httpGet"];
    spec.kind = ProbeSpec::Kind::kHttpGet;
    spec.path = handler->value("path", "/");
    if (spec.path.empty() || spec.path.front() != '/') spec.path = "/" + spec.path;
    spec.scheme = handler->value("scheme", "HTTP");
    if (spec.scheme != "HTTP" && spec.scheme != "HTTPS") {
      return Status::Invalid("httpGet probe: unknown scheme " + spec.scheme);
    }
    if (handler->contains("httpHeaders") && (*handler)["httpHeaders"].is_array()) {
      for (const auto& h : (*handler)["httpHeaders"]) {
        if (h.is_object()) spec.headers.emplace_back(h.value("name", ""), h.value("value", ""));
      }
    }
  } else if (probe.contains("tcpSocket") && probe["tcpSocket"].is_object()) {
    handler = &probe["tcpSocket"];
    spec.kind = ProbeSpec::Kind::kTcpSocket;
  } else if (probe.contains("exec")) {
    return Status::Invalid("exec probes are not supported by the simulator");
  } else {
    return Status::Invalid("probe has no httpGet or tcpSocket handler");
  }
  const std::string host = handler->value("host", "");
  if (!host.empty()) spec.host = host;
  auto port = ResolvePort(handler->value("port", Json()), container);
  if (!port.ok()) return port.status();
  if (*port <= 0 || *port > 65535) return Status::Invalid("probe port out of range");
  spec.port = *port;
  spec.initial_delay = std::chrono::seconds(std::max(0, IntField(probe, "initialDelaySeconds", 0)));
  spec.period = std::min<milliseconds>(
      std::chrono::seconds(std::max(1, IntField(probe, "periodSeconds", 10))), max_period);
  spec.timeout = std::chrono::seconds(std::max(1, IntField(probe, "timeoutSeconds", 1)));
  spec.success_threshold = std::max(1, IntField(probe, "successThreshold", 1));
  spec.failure_threshold = std::max(1, IntField(probe, "failureThreshold", 3));
  return std::optional<ProbeSpec>(std::move(spec));
}

bool RunProbe(const ProbeSpec& spec, std::string& message) {
  if (spec.kind == ProbeSpec::Kind::kHttpGet) return RunHttpProbe(spec, message);
  const int fd = ConnectWithTimeout(spec.host, spec.port, spec.timeout, message);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

bool ProbeCounter::Record(bool success) {
  if (success) {
    failures_ = 0;
    if (++successes_ >= success_threshold_ && !result_) {
      result_ = true;
      return true;
    }
  } else {
    successes_ = 0;
    if (++failures_ >= failure_threshold_ && result_) {
      result_ = false;
      return true;
    }
  }
  return false;
}

void TaskScheduler::Start() {
  for (int i = 0; i < thread_count_; ++i) {
    threads_.emplace_back([this](const std::stop_token& stop) { Run(stop); });
  }
}

void TaskScheduler::Stop() {
  for (auto& thread : threads_) thread.request_stop();
  changed_.notify_all();
  threads_.clear();  // joins
  std::lock_guard lock(mutex_);
  tasks_.clear();
}

void TaskScheduler::Schedule(milliseconds delay, Task task) {
  std::lock_guard lock(mutex_);
  tasks_.emplace(std::chrono::steady_clock::now() + delay, std::move(task));
  changed_.notify_one();
}

void TaskScheduler::Run(const std::stop_token& stop) {
  std::unique_lock lock(mutex_);
  while (!stop.stop_requested()) {
    if (tasks_.empty()) {
      changed_.wait(lock, stop, [this] { return !tasks_.empty(); });
      continue;
    }
    const auto due = tasks_.begin()->first;
    if (due > std::chrono::steady_clock::now()) {
      changed_.wait_until(lock, stop, due,
                          [this, due] { return !tasks_.empty() && tasks_.begin()->first < due; });
      continue;
    }
    Task task = std::move(tasks_.begin()->second);
    tasks_.erase(tasks_.begin());
    lock.unlock();
    const auto next = task();
    lock.lock();
    if (next && !stop.stop_requested()) {
      tasks_.emplace(std::chrono::steady_clock::now() + *next, std::move(task));
      changed_.notify_one();
    }
  }
}

}  // namespace dpcm::podsim
