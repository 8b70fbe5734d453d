#include "tests/podsim/child_process.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>

namespace dpcm::podsim {
namespace {

std::string ErrnoText(int error) { return std::strerror(error); }

// posix_spawn's C structures, released on every path.
class SpawnAttributes {
 public:
  SpawnAttributes() {
    posix_spawnattr_init(&attr_);
    posix_spawn_file_actions_init(&actions_);
  }
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions_);
    posix_spawnattr_destroy(&attr_);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;

  posix_spawnattr_t attr_;
  posix_spawn_file_actions_t actions_;
};

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  pointers.reserve(strings.size() + 1);
  for (const auto& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

Result<pid_t> SpawnProcess(const SpawnRequest& request) {
  if (request.argv.empty() || request.argv[0].empty()) {
    return Status::Invalid("no command to run");
  }
  const int log_fd =
      ::open(request.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) {
    return Status::Internal("open " + request.log_path + ": " + ErrnoText(errno));
  }
  SpawnAttributes spawn;
  // A fresh process group; default dispositions for the signals the simulator ignores
  // or handles (ignored ones would survive exec); an empty signal mask (the simulator
  // blocks SIGTERM and SIGINT in every thread to sigwait() for them).
  sigset_t defaults;
  sigemptyset(&defaults);
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2}) {
    sigaddset(&defaults, sig);
  }
  sigset_t empty_mask;
  sigemptyset(&empty_mask);
  posix_spawnattr_setsigdefault(&spawn.attr_, &defaults);
  posix_spawnattr_setsigmask(&spawn.attr_, &empty_mask);
  posix_spawnattr_setpgroup(&spawn.attr_, 0);
  posix_spawnattr_setflags(&spawn.attr_,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  posix_spawn_file_actions_addopen(&spawn.actions_, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&spawn.actions_, log_fd, 1);
  posix_spawn_file_actions_adddup2(&spawn.actions_, log_fd, 2);
  if (!request.working_dir.empty()) {
    posix_spawn_file_actions_addchdir_np(&spawn.actions_, request.working_dir.c_str());
  }
  // Sockets to the API server and other pods' log files must not leak into the pod.
  posix_spawn_file_actions_addclosefrom_np(&spawn.actions_, 3);

  auto argv = CStrings(request.argv);
  auto envp = CStrings(request.env);
  pid_t pid = 0;
  const int error =
      posix_spawnp(&pid, argv[0], &spawn.actions_, &spawn.attr_, argv.data(), envp.data());
  ::close(log_fd);
  if (error != 0) {
    return Status::Invalid("exec " + request.argv[0] + ": " + ErrnoText(error));
  }
  return pid;
}

void SignalProcess(pid_t pid, int signal) {
  if (pid <= 0) return;  // never signal 0 or -1: that would hit the simulator or everything
  ::kill(-pid, signal);
  ::kill(pid, signal);
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return "exit code " + std::to_string(WEXITSTATUS(wait_status));
  if (WIFSIGNALED(wait_status)) {
    const int sig = WTERMSIG(wait_status);
    const char* name = ::sigdescr_np(sig);
    return "signal " + std::to_string(sig) + " (" + (name ? name : "?") + ")";
  }
  return "status " + std::to_string(wait_status);
}

void ChildReaper::Start() {
  thread_ = std::jthread([this](const std::stop_token& stop) { Run(stop); });
}

void ChildReaper::ChildStarted() {
  std::lock_guard lock(mutex_);
  ++spawns_;
  changed_.notify_all();
}

void ChildReaper::Stop() {
  if (thread_.joinable()) {
    thread_.request_stop();
    changed_.notify_all();
    thread_.join();
  }
}

void ChildReaper::Run(const std::stop_token& stop) {
  while (true) {
    uint64_t seen = 0;
    {
      std::lock_guard lock(mutex_);
      seen = spawns_;
    }
    int wait_status = 0;
    const pid_t pid = ::waitpid(-1, &wait_status, 0);
    if (pid > 0) {
      if (WIFEXITED(wait_status) || WIFSIGNALED(wait_status)) on_exit_(pid, wait_status);
    } else if (errno == ECHILD) {
      // No children: sleep until one is started (a spawn after `seen` was read wakes
      // this at once) or the reaper is stopped.
      std::unique_lock lock(mutex_);
      changed_.wait(lock, stop, [this, seen] { return spawns_ != seen; });
      if (spawns_ == seen) return;  // stopped
    }
    // EINTR: wait again.
  }
}

}  // namespace dpcm::podsim
