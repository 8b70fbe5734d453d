// Container probes as the kubelet runs them (httpGet, tcpSocket), and a pool that schedules them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::podsim {

// One probe of a container spec (readinessProbe or livenessProbe), resolved against the
// container's ports and the pod's IP.
struct ProbeSpec {
  enum class Kind { kHttpGet, kTcpSocket };
  Kind kind = Kind::kHttpGet;
  std::string scheme = "HTTP";  // or "HTTPS" (certificate not verified, as the kubelet does)
  std::string host;             // the pod IP unless the probe names a host
  int port = 0;
  std::string path = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds initial_delay{0};
  std::chrono::milliseconds period{10000};
  std::chrono::milliseconds timeout{1000};
  int success_threshold = 1;
  int failure_threshold = 3;

  std::string Describe() const;  // "http-get http://127.1.0.1:8080/healthz"
  std::string Url() const;       // "http://127.1.0.1:8080/healthz"
};

// Parses `probe` (a core/v1 Probe) of `container` for a pod at `pod_ip`. The period is
// capped at `max_period` (tests want fast probes). No value when `probe` is null or
// absent; an error for a probe the simulator cannot run (exec, grpc) or a named port
// the container does not declare.
Result<std::optional<ProbeSpec>> ParseProbe(const nlohmann::json& probe,
                                            const nlohmann::json& container,
                                            const std::string& pod_ip,
                                            std::chrono::milliseconds max_period);

// Runs one probe attempt; blocks for at most about spec.timeout. On failure `message`
// says why. HTTP succeeds on a status in [200, 400); TCP on an accepted connection.
bool RunProbe(const ProbeSpec& spec, std::string& message);

// Counts consecutive results the way the kubelet's prober does: the result flips only
// after success_threshold successes or failure_threshold failures in a row.
class ProbeCounter {
 public:
  ProbeCounter(bool initial, int success_threshold, int failure_threshold)
      : result_(initial),
        success_threshold_(success_threshold),
        failure_threshold_(failure_threshold) {}
  // Records one attempt; returns true when the result changed.
  bool Record(bool success);
  bool result() const { return result_; }

 private:
  bool result_;
  int success_threshold_;
  int failure_threshold_;
  int successes_ = 0;
  int failures_ = 0;
};

// Runs periodic tasks on a few threads. A task returns the delay until its next run,
// or nothing to end. Tasks may block (a probe waits up to its timeout); a task is never
// run by two threads at once because it is rescheduled only after it returns.
class TaskScheduler {
 public:
  using Task = std::function<std::optional<std::chrono::milliseconds>()>;

  explicit TaskScheduler(int threads) : thread_count_(threads) {}
  ~TaskScheduler() { Stop(); }
  TaskScheduler(const TaskScheduler&) = delete;
  TaskScheduler& operator=(const TaskScheduler&) = delete;

  void Start();
  // Ends the threads after their current tasks; pending tasks are dropped.
  void Stop();
  void Schedule(std::chrono::milliseconds delay, Task task);

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  void Run(const std::stop_token& stop);

  int thread_count_;
  std::mutex mutex_;
  std::condition_variable_any changed_;
  std::multimap<TimePoint, Task> tasks_;  // guarded by mutex_
  std::vector<std::jthread> threads_;
};

}  // namespace dpcm::podsim
