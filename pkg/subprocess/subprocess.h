// Runs a program from an argv (never a shell) with a deadline and bounded output capture.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::subprocess {

struct RunOptions {
  // argv[0] is an absolute path or a name looked up in PATH (posix_spawnp). Nothing is
  // interpreted: no shell, no globbing, no variable expansion.
  std::vector<std::string> argv;
  // The child's whole environment as NAME=VALUE entries (the operator's own is not
  // inherited, so nothing leaks by accident).
  std::vector<std::string> env;
  // After this the process group is SIGKILLed.
  std::chrono::milliseconds timeout{1000};
  // Bytes kept from each of stdout and stderr; the rest is read and dropped so the
  // child never blocks on a full pipe.
  std::size_t max_output = std::size_t{64} * 1024;
};

struct RunResult {
  int exit_code = -1;  // the exit status, or -1 when killed by a signal
  int signal = 0;      // the terminating signal, or 0
  bool timed_out = false;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  std::string stdout_text;
  std::string stderr_text;
  std::chrono::milliseconds took{0};

  bool succeeded() const { return !timed_out && exit_code == 0; }
  // "exit status 3", "killed by signal 9", "timed out after 1000 ms".
  std::string Describe() const;
};

// strerror(error), thread-safe.
std::string ErrorText(int error);

// "PATH=<the operator's PATH>": the one variable a plugin's environment starts from.
std::string PathEntry();

// Starts argv in its own process group with stdin from /dev/null, default signal
// dispositions and an empty signal mask (the operator blocks and ignores some), waits
// for it up to `timeout`, then kills the whole group. Returns an error only when the
// program could not be started (not found, not executable); a program that fails or
// hangs is a RunResult. Thread-safe; blocks the calling thread for at most about
// `timeout` plus a few milliseconds.
Result<RunResult> Run(const RunOptions& options);

}  // namespace dpcm::subprocess
