#include "pkg/metrics/process_collector.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>

namespace dpcm::metrics {
namespace {

// The fields of /proc/self/stat after the command name, so that index 0 is field 3
// ("state") of proc(5). Empty when the file cannot be read.
std::vector<std::string> ReadStatFields() {
  std::ifstream file("/proc/self/stat");
  const std::string line((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  // The command name is in parentheses and may itself hold spaces and ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return {};
  std::istringstream rest(line.substr(close + 1));
  return {std::istream_iterator<std::string>(rest), std::istream_iterator<std::string>()};
}

// Field `number` of proc(5)'s /proc/[pid]/stat (1-based, as in the manual page).
std::optional<double> StatField(const std::vector<std::string>& fields, std::size_t number) {
  const std::size_t index = number - 3;
  if (number < 3 || index >= fields.size()) return std::nullopt;
  try {
    return std::stod(fields[index]);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// The "btime" line of /proc/stat: boot time in seconds since the epoch.
std::optional<double> BootTime() {
  std::ifstream file("/proc/stat");
  std::string name;
  double value = 0;
  while (file >> name) {
    if (name == "btime" && file >> value) return value;
    file.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::optional<double> OpenFds() {
  std::error_code error;
  std::filesystem::directory_iterator it("/proc/self/fd", error);
  if (error) return std::nullopt;
  double count = 0;
  for (const auto& entry : it) {
    (void)entry;
    ++count;
  }
  return count - 1;  // the iterator's own descriptor
}

std::optional<double> MaxFds() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY) {
    return std::nullopt;
  }
  return static_cast<double>(limit.rlim_cur);
}

void Append(std::vector<prometheus::MetricFamily>& out, const char* name, const char* help,
            prometheus::MetricType type, std::optional<double> value) {
  if (!value) return;
  prometheus::ClientMetric metric;
  if (type == prometheus::MetricType::Counter) {
    metric.counter.value = *value;
  } else {
    metric.gauge.value = *value;
  }
  out.push_back({name, help, type, {metric}});
}

}  // namespace

ProcessCollector::ProcessCollector() {
  const auto started_ticks = StatField(ReadStatFields(), 22);
  const auto boot = BootTime();
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  if (started_ticks && boot && ticks_per_second > 0) {
    start_time_seconds_ = *boot + *started_ticks / static_cast<double>(ticks_per_second);
  }
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  const auto fields = ReadStatFields();
  const long ticks_per_second = sysconf(_SC_CLK_TCK);
  const long page_size = sysconf(_SC_PAGESIZE);
  std::optional<double> cpu_seconds;
  if (const auto user = StatField(fields, 14), system = StatField(fields, 15);
      user && system && ticks_per_second > 0) {
    cpu_seconds = (*user + *system) / static_cast<double>(ticks_per_second);
  }
  std::optional<double> resident_bytes;
  if (const auto pages = StatField(fields, 24); pages && page_size > 0) {
    resident_bytes = *pages * static_cast<double>(page_size);
  }

  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  Append(out, "process_cpu_seconds_total", "Total user and system CPU time spent in seconds.",
         MetricType::Counter, cpu_seconds);
  Append(out, "process_resident_memory_bytes", "Resident memory size in bytes.", MetricType::Gauge,
         resident_bytes);
  Append(out, "process_virtual_memory_bytes", "Virtual memory size in bytes.", MetricType::Gauge,
         StatField(fields, 23));
  Append(out, "process_start_time_seconds",
         "Start time of the process since unix epoch in seconds.", MetricType::Gauge,
         start_time_seconds_);
  Append(out, "process_open_fds", "Number of open file descriptors.", MetricType::Gauge, OpenFds());
  Append(out, "process_max_fds", "Maximum number of open file descriptors.", MetricType::Gauge,
         MaxFds());
  return out;
}

}  // namespace dpcm::metrics
