// Runs a container as a local process (posix_spawnp, no shell) and reaps children as they exit.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::podsim {

struct SpawnRequest {
  std::vector<std::string> argv;  // argv[0] is looked up in $PATH (the simulator's)
  std::vector<std::string> env;   // "NAME=value" entries, the whole environment
  std::string working_dir;        // empty: the simulator's
  std::string log_path;           // stdout and stderr are appended here; stdin is /dev/null
};

// Starts the process in a new process group of its own (so that it and anything it
// forks can be signalled together), with every signal at its default disposition and
// unblocked, and no file descriptor of the simulator's beyond 0-2. Fails with the errno
// text when the log cannot be opened or the program cannot be executed.
Result<pid_t> SpawnProcess(const SpawnRequest& request);

// Sends `signal` to the process group led by `pid` and to `pid` itself (in case the
// process left its group). Errors (already gone) are ignored.
void SignalProcess(pid_t pid, int signal);

// Describes a waitpid() status: "exit code 3" or "signal 9 (Killed)".
std::string DescribeWaitStatus(int wait_status);

// A thread that blocks in waitpid(-1) and reports each exited child at once. When the
// kernel says there are no children (ECHILD) it sleeps until ChildStarted() is called, so
// it never polls. Every child of the process is reaped here: nothing else may wait for
// children (posix_spawn's own wait for a child that failed to exec may lose the race;
// that is harmless).
class ChildReaper {
 public:
  // Called on the reaper's thread for every exited child.
  using ExitHandler = std::function<void(pid_t pid, int wait_status)>;

  explicit ChildReaper(ExitHandler on_exit) : on_exit_(std::move(on_exit)) {}
  ~ChildReaper() { Stop(); }
  ChildReaper(const ChildReaper&) = delete;
  ChildReaper& operator=(const ChildReaper&) = delete;

  void Start();
  // Wakes the reaper if it sleeps for want of children (call after each spawn).
  void ChildStarted();
  // Returns once the thread has ended: at once when there are no children, else when
  // the last one has exited. The caller must have made the children exit.
  void Stop();

 private:
  void Run(const std::stop_token& stop);

  ExitHandler on_exit_;
  std::mutex mutex_;
  std::condition_variable_any changed_;
  uint64_t spawns_ = 0;  // guarded by mutex_; counts ChildStarted() calls
  std::jthread thread_;
};

}  // namespace dpcm::podsim
