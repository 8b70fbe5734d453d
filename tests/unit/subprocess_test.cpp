// subprocess::Run with real programs: no shell, exactly the given environment, deadlines that
// kill the whole process group, bounded output, default signals in the child.
#include "pkg/subprocess/subprocess.h"

#include <doctest/doctest.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/eventually.h"
#include "tests/support/temp_dir.h"

namespace dpcm::subprocess {
namespace {

using namespace std::chrono_literals;
using Steady = std::chrono::steady_clock;

RunOptions Options(std::vector<std::string> argv, std::chrono::milliseconds timeout = 5000ms) {
  RunOptions options;
  options.argv = std::move(argv);
  options.env = {PathEntry()};
  options.timeout = timeout;
  return options;
}

std::chrono::milliseconds Since(Steady::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Steady::now() - start);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// True once process `pid` is gone or a zombie (killed, waiting for a reaper).
bool Dead(const std::string& pid) {
  std::ifstream stat("/proc/" + pid + "/stat");
  if (!stat) return true;
  std::string content;
  std::getline(stat, content);
  const auto close = content.rfind(')');
  return close != std::string::npos && close + 2 < content.size() &&
         (content[close + 2] == 'Z' || content[close + 2] == 'X');
}

long MaxRssKb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

TEST_CASE("Run reports a program's exit status and keeps stdout and stderr apart") {
  auto ok = Run(Options({"/bin/sh", "-c", "echo out; echo err >&2"}));
  REQUIRE_MESSAGE(ok.ok(), ok.status().ToString());
  CHECK(ok->succeeded());
  CHECK(ok->exit_code == 0);
  CHECK(ok->signal == 0);
  CHECK_FALSE(ok->timed_out);
  CHECK(ok->stdout_text == "out\n");
  CHECK(ok->stderr_text == "err\n");
  CHECK(ok->Describe() == "exit status 0");

  auto failed = Run(Options({"/bin/sh", "-c", "exit 3"}));
  REQUIRE(failed.ok());
  CHECK_FALSE(failed->succeeded());
  CHECK(failed->exit_code == 3);
  CHECK(failed->signal == 0);
  CHECK(failed->Describe() == "exit status 3");

  auto by_name = Run(Options({"false"}));  // looked up in PATH
  REQUIRE_MESSAGE(by_name.ok(), by_name.status().ToString());
  CHECK(by_name->exit_code == 1);
}

TEST_CASE("Run passes argv verbatim: no shell, no expansion, no globbing") {
  testing::TempDir dir;
  const std::string marker = (dir.path() / "F").string();
  const std::vector<std::string> args = {"$(touch " + marker + "); rm -rf x",
                                         "`touch " + marker + "`",
                                         "*",
                                         "a  b",
                                         "'quoted' \"double\"",
                                         "$HOME",
                                         "; touch " + marker,
                                         "| touch " + marker,
                                         "line1\nline2"};
  std::vector<std::string> argv = {"/bin/echo"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto ran = Run(Options(argv));
  REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  CHECK(ran->succeeded());
  std::string expected;
  for (const auto& arg : args) expected += (expected.empty() ? "" : " ") + arg;
  CHECK(ran->stdout_text == expected + "\n");
  CHECK_FALSE(std::filesystem::exists(marker));
}

TEST_CASE("Run gives the program exactly the environment it is handed, nothing inherited") {
  const std::vector<std::string> env = {"A=1", "B=two words", "C=$(touch /tmp/x); `id`", "EMPTY="};
  RunOptions options = Options({"/usr/bin/env"});
  options.env = env;
  auto ran = Run(options);
  REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  CHECK(ran->succeeded());
  auto lines = Lines(ran->stdout_text);
  std::sort(lines.begin(), lines.end());
  auto want = env;
  std::sort(want.begin(), want.end());
  CHECK(lines == want);  // no PATH, HOME, ... from the test process

  options.env.clear();
  auto empty = Run(options);
  REQUIRE(empty.ok());
  CHECK(empty->stdout_text.empty());
}

TEST_CASE("Run kills a hanging program at its timeout and returns soon after") {
  const auto start = Steady::now();
  auto ran = Run(Options({"/bin/sleep", "30"}, 300ms));
  const auto elapsed = Since(start);
  REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  CHECK(ran->timed_out);
  CHECK_FALSE(ran->succeeded());
  CHECK(ran->signal == SIGKILL);
  CHECK(ran->exit_code == -1);
  CHECK(ran->took >= 300ms);
  CHECK(elapsed >= 300ms);
  CHECK(elapsed < 300ms + 1500ms);
  CHECK(ran->Describe().find("timed out after") == 0);
}

TEST_CASE("Run kills a program that writes without end at its timeout") {
  RunOptions options = Options({"/usr/bin/yes", "flood"}, 300ms);
  options.max_output = 1024;
  const auto start = Steady::now();
  auto ran = Run(options);
  const auto elapsed = Since(start);
  REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  CHECK(ran->timed_out);
  CHECK(ran->stdout_truncated);
  CHECK(ran->stdout_text.size() == 1024);
  CHECK(elapsed < 300ms + 1500ms);
}

TEST_CASE("Run does not wait for a background child holding the pipe, and kills it") {
  const auto start = Steady::now();
  auto ran = Run(Options({"/bin/sh", "-c", "sleep 30 & echo $!; echo started"}, 10000ms));
  const auto elapsed = Since(start);
  REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  CHECK_FALSE(ran->timed_out);
  CHECK(ran->exit_code == 0);
  CHECK(elapsed < 5000ms);
  const auto lines = Lines(ran->stdout_text);
  REQUIRE(lines.size() == 2);
  CHECK(lines[1] == "started");
  const std::string& child = lines[0];
  CAPTURE(child);
  CHECK(testing::Eventually([&] { return Dead(child); }, 3000ms, 10ms));
}

TEST_CASE("Run keeps at most max_output bytes of megabytes of output, with memory bounded") {
  const long rss_before = MaxRssKb();
  RunOptions options = Options({"/usr/bin/head", "-c", "50000000", "/dev/zero"}, 20000ms);
  options.max_output = 4096;
  const auto start = Steady::now();
  auto ran = Run(options);
  REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
  CHECK(ran->succeeded());  // the rest was read and dropped: head never blocked
  CHECK(ran->stdout_text.size() == 4096);
  CHECK(ran->stdout_truncated);
  CHECK_FALSE(ran->stderr_truncated);
  CHECK(ran->stderr_text.empty());
  CHECK(Since(start) < 15000ms);
  CHECK(MaxRssKb() - rss_before < 20 * 1024);  // far below the 50 MB written

  options.argv = {"/bin/sh", "-c", "head -c 3000000 /dev/zero >&2; echo done"};
  auto both = Run(options);
  REQUIRE(both.ok());
  CHECK(both->succeeded());
  CHECK(both->stderr_text.size() == 4096);
  CHECK(both->stderr_truncated);
  CHECK(both->stdout_text == "done\n");
  CHECK_FALSE(both->stdout_truncated);
}

TEST_CASE("Run returns an error Status for a program that cannot be started") {
  for (const char* program : {"/nonexistent/dpcm-no-such-program", "dpcm-no-such-program"}) {
    CAPTURE(std::string(program));
    auto ran = Run(Options({program, "arg"}));
    REQUIRE_FALSE(ran.ok());
    CHECK(ran.status().IsNotFound());
    CHECK(ran.status().message().find(program) != std::string::npos);
  }

  testing::TempDir dir;
  const std::string script = dir.Write("not-executable", "#!/bin/sh\nexit 0\n");
  chmod(script.c_str(), 0644);
  CHECK_FALSE(Run(Options({script})).ok());

  CHECK(Run(Options({})).status().IsInvalid());
  CHECK(Run(Options({""})).status().IsInvalid());
}

TEST_CASE("Run gives the child default signal handling even when the caller blocks or ignores") {
  RunOptions options = Options({"/bin/sh", "-c", "kill -TERM $$; sleep 5"}, 4000ms);
  SUBCASE("SIGTERM blocked in the calling thread") {
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigset_t saved;
    REQUIRE(pthread_sigmask(SIG_BLOCK, &term, &saved) == 0);
    auto ran = Run(options);
    pthread_sigmask(SIG_SETMASK, &saved, nullptr);
    REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
    CHECK_FALSE(ran->timed_out);
    CHECK(ran->signal == SIGTERM);
    CHECK(ran->exit_code == -1);
    CHECK(ran->Describe() == "killed by signal 15");
  }
  SUBCASE("SIGTERM ignored by the process") {
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;  // NOLINT(cppcoreguidelines-pro-type-union-access)
    sigemptyset(&ignore.sa_mask);
    struct sigaction saved {};
    REQUIRE(sigaction(SIGTERM, &ignore, &saved) == 0);
    auto ran = Run(options);
    sigaction(SIGTERM, &saved, nullptr);
    REQUIRE_MESSAGE(ran.ok(), ran.status().ToString());
    CHECK_FALSE(ran->timed_out);
    CHECK(ran->signal == SIGTERM);
  }
}

TEST_CASE("Run from several threads at once keeps each program's output apart") {
  constexpr int kThreads = 4;
  std::vector<std::string> outputs(kThreads);
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i, &outputs] {
      auto ran = Run(Options({"/bin/sh", "-c", "sleep 0.1; echo $0", std::to_string(i)}));
      outputs[static_cast<std::size_t>(i)] = ran.ok() ? ran->stdout_text : ran.status().ToString();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    CHECK(outputs[static_cast<std::size_t>(i)] == std::to_string(i) + "\n");
  }
}

}  // namespace
}  // namespace dpcm::subprocess
