// Reports the process's own resources (process_* metrics) from /proc/self at each scrape.
#pragma once

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include <optional>
#include <vector>

namespace dpcm::metrics {

// The process collector of the Go client, read fresh on every Collect():
// process_resident_memory_bytes, process_virtual_memory_bytes, process_cpu_seconds_total,
// process_start_time_seconds, process_open_fds and process_max_fds. A value that cannot be
// read (no /proc) is left out rather than reported as zero. Thread-safe.
class ProcessCollector final : public prometheus::Collectable {
 public:
  // Reads the start time once; it does not change.
  ProcessCollector();

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  std::optional<double> start_time_seconds_;  // Unix time
};

}  // namespace dpcm::metrics
