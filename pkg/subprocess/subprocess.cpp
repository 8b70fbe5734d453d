#include "pkg/subprocess/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

namespace dpcm::subprocess {
namespace {

using Steady = std::chrono::steady_clock;

// Closes a file descriptor when it goes out of scope.
class Fd {
 public:
  Fd() = default;
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Takes ownership of `fd`, closing the one held before.
  void Reset(int fd) {
    Reset();
    fd_ = fd;
  }
  void Reset() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  Fd read;
  Fd write;
};

Status MakePipe(Pipe& p) {
  std::array<int, 2> fds{};
  if (pipe2(fds.data(), O_CLOEXEC) != 0) {
    return Status::Internal(std::string("pipe: ") + ErrorText(errno));
  }
  p.read.Reset(fds[0]);
  p.write.Reset(fds[1]);
  fcntl(p.read.get(), F_SETFL, O_NONBLOCK);
  return Status::Ok();
}

// One captured stream: keeps the first `limit` bytes, drops the rest.
struct Capture {
  Fd* fd = nullptr;
  std::string* text = nullptr;
  bool* truncated = nullptr;
  bool open = true;

  void Drain(std::size_t limit) {
    std::array<char, 16384> buffer{};
    while (open) {
      const ssize_t n = read(fd->get(), buffer.data(), buffer.size());
      if (n > 0) {
        const auto room = limit > text->size() ? limit - text->size() : 0;
        const auto keep = std::min(room, static_cast<std::size_t>(n));
        text->append(buffer.data(), keep);
        if (keep < static_cast<std::size_t>(n)) *truncated = true;
        continue;
      }
      if (n == 0 || (errno != EAGAIN && errno != EINTR)) open = false;
      return;
    }
  }
};

// Owns the posix_spawn attribute objects.
struct SpawnSetup {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attributes{};
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

std::vector<char*> CStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string ErrorText(int error) {
  std::array<char, 256> buffer{};
  return strerror_r(error, buffer.data(), buffer.size());  // the GNU version returns the text
}

std::string PathEntry() {
  const char* path = std::getenv("PATH");  // NOLINT(concurrency-mt-unsafe): never set by dpcm
  return "PATH=" + std::string(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin");
}

std::string RunResult::Describe() const {
  if (timed_out) return "timed out after " + std::to_string(took.count()) + " ms";
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit status " + std::to_string(exit_code);
}

Result<RunResult> Run(const RunOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return Status::Invalid("no program to run");
  }
  Pipe out;
  Pipe err;
  if (Status s = MakePipe(out); !s.ok()) return s;
  if (Status s = MakePipe(err); !s.ok()) return s;

  SpawnSetup setup;
  posix_spawn_file_actions_addopen(&setup.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&setup.actions, out.write.get(), STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, err.write.get(), STDERR_FILENO);
  sigset_t empty;
  sigemptyset(&empty);
  sigset_t all;
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attributes, &empty);
  posix_spawnattr_setsigdefault(&setup.attributes, &all);
  posix_spawnattr_setpgroup(&setup.attributes, 0);
  posix_spawnattr_setflags(&setup.attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                                  POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_USEVFORK);

  auto argv = CStrings(options.argv);
  auto env = CStrings(options.env);
  const auto started = Steady::now();
  pid_t pid = 0;
  const int spawned =
      posix_spawnp(&pid, argv[0], &setup.actions, &setup.attributes, argv.data(), env.data());
  if (spawned != 0) {
    return Status::NotFound("cannot run " + options.argv[0] + ": " + ErrorText(spawned));
  }
  out.write.Reset();
  err.write.Reset();

  RunResult result;
  std::array<Capture, 2> captures = {
      Capture{&out.read, &result.stdout_text, &result.stdout_truncated},
      Capture{&err.read, &result.stderr_text, &result.stderr_truncated}};
  const auto deadline = started + options.timeout;
  int wait_status = 0;
  bool exited = false;
  while (true) {
    // WNOWAIT leaves the zombie in place: its pid (the group id) cannot be reused
    // before the group is killed below.
    siginfo_t info{};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid) {
      exited = true;
      break;
    }
    const auto now = Steady::now();
    if (now >= deadline) break;
    // Poll the pipes, waking at least every 20 ms to notice an exit whose pipes a
    // grandchild still holds open.
    std::array<pollfd, 2> fds{};
    nfds_t count = 0;
    for (auto& c : captures) {
      if (c.open) fds[count++] = {c.fd->get(), POLLIN, 0};
    }
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count() + 1;
    const int wait_ms = static_cast<int>(std::min<int64_t>(left, 20));
    if (count == 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      continue;
    }
    if (poll(fds.data(), count, wait_ms) > 0) {
      for (auto& c : captures) c.Drain(options.max_output);
    }
  }
  // On a timeout the program goes; after an exit its leftovers (background children
  // that would keep running or hold the pipes) go too.
  result.timed_out = !exited;
  kill(-pid, SIGKILL);
  while (waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  for (auto& c : captures) c.Drain(options.max_output);
  result.took = std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - started);
  if (WIFEXITED(wait_status)) {
    result.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    result.signal = WTERMSIG(wait_status);
  }
  return result;
}

}  // namespace dpcm::subprocess
