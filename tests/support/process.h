// A child process for tests: started with argv (no shell), output to a file, stopped on
// destruction.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "pkg/status/status.h"

namespace dpcm::testing {

class ManagedProcess {
 public:
  // Starts `argv` with the test's environment plus `extra_env` ("NAME=value"), stdout
  // and stderr appended to `log_path`.
  static Result<std::unique_ptr<ManagedProcess>> Start(const std::vector<std::string>& argv,
                                                       const std::string& log_path,
                                                       const std::vector<std::string>& extra_env);
  ~ManagedProcess();  // Stop()
  ManagedProcess(const ManagedProcess&) = delete;
  ManagedProcess& operator=(const ManagedProcess&) = delete;

  // SIGTERM, then SIGKILL after `grace_ms`; waits for the exit. Returns the exit code,
  // or -signal. Idempotent.
  int Stop(int grace_ms = 5000);
  // SIGKILL and wait.
  void Kill();
  bool Running();
  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

 private:
  ManagedProcess(pid_t pid, std::string log_path) : pid_(pid), log_path_(std::move(log_path)) {}
  pid_t pid_;
  std::string log_path_;
  bool reaped_ = false;
  int exit_ = 0;
};

}  // namespace dpcm::testing
