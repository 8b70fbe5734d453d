// Folds repeated Events into one and decides when each is written (client-go's correlator).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include "pkg/cache/packed.h"
#include "pkg/clock/clock.h"
#include "pkg/events/event.h"
#include "pkg/ratelimit/token_bucket.h"
#include "pkg/status/status.h"

namespace dpcm::events {

struct CorrelatorOptions {
  // An occurrence joins the series of identical ones (same involved object, type, reason
  // and message) if that series' last occurrence is at most this old; otherwise it starts
  // a new series, a new Event object.
  std::chrono::milliseconds window = std::chrono::minutes(10);
  // A series' Event is written at most once per this: the first occurrence is created at
  // once; repeats are merged (count, lastTimestamp) and written when this much has passed
  // since the series' last write.
  std::chrono::milliseconds update_interval = std::chrono::seconds(30);
  // Writes (creates and updates) per source component and involved object: a bucket of
  // `spam_burst` that refills one write per `spam_refill` (client-go's spam filter: 25, then
  // one per 5 minutes). A write without a token waits for one; its series keeps counting.
  int spam_burst = 25;
  std::chrono::milliseconds spam_refill = std::chrono::minutes(5);
  // Series kept; beyond it the one whose last occurrence is oldest is forgotten (with any
  // write it still owed: logged). An object's spam bucket is kept while it has a series.
  std::size_t max_series = 4096;
};

// One write the recorder owes the API.
struct Write {
  enum class Kind { kCreate, kUpdate };
  Kind kind = Kind::kCreate;
  nlohmann::json event;  // the whole Event as it stands (count, first/lastTimestamp)
};

// The series bookkeeping behind EventRecorder; not thread-safe (the recorder holds a lock).
// Contract, for occurrences O1, O2, ... of one series (identical object/type/reason/message,
// each within `window` of the one before):
//  - O1 is created as an Event with count 1 as soon as its object has a spam token;
//  - Ok adds 1 to count and sets lastTimestamp (the clock's wall time of Ok); the Event is
//    updated to the series' latest count no more often than once per update_interval, and
//    once more after the last occurrence, so the API ends up showing the full count;
//  - an update of an Event the API has expired (NotFound) creates it again, with the
//    series' whole count;
//  - other failed writes are not retried; the next occurrence writes again.
class EventCorrelator {
 public:
  using TimePoint = Clock::Monotonic::time_point;

  // `clock` must outlive the correlator. `component` is every Event's source.component.
  EventCorrelator(std::string component, Clock& clock, CorrelatorOptions options = {});

  // What Observe did: the series it counted in (a name for Take and Written, unique for
  // the correlator's life: a series forgotten and started again gets a new one), and when
  // that series' next write is due.
  struct Observed {
    std::string series;
    TimePoint due;
  };
  // Counts `occurrence` in its series (starting one if needed).
  Observed Observe(const Occurrence& occurrence);

  // What is owed for `series` now.
  struct Due {
    std::optional<Write> write;     // to write now, then report with Written
    std::optional<TimePoint> next;  // when to ask again (nullopt: the series is gone)
  };
  // The write owed for `series` now, if any (taking a spam token for it). `flush` ignores
  // update_interval (on shutdown), not the spam limit. A series that owes nothing is
  // forgotten (with its object's spam bucket, once its last series goes) when `window` has
  // passed since its last occurrence; until then `next` is that moment, so a caller that
  // asks again when told keeps only series that can still grow (before, the series of a
  // convergence stayed for good, up to max_series: heaptrack at 300 domains showed 0.45 MiB
  // of Event trees in steady state).
  Due Take(const std::string& series, bool flush = false);
  // Reports how the write last taken for `series` went. Returns when to ask again (to write
  // more, or to forget the series, see Take).
  std::optional<TimePoint> Written(const std::string& series, const Status& status);

  // Series that owe a write (for a flush on shutdown).
  std::set<std::string> Owing() const;
  // The number of series kept.
  std::size_t size() const { return series_.size(); }

 private:
  struct Bucket {
    std::unique_ptr<TokenBucket> tokens;
    int series = 0;  // series of this object
  };
  using Buckets = std::map<std::string, Bucket>;

  struct Series {
    uint64_t id = 0;  // what callers know it by (as decimal text: Observed::series)
    // The Event as first made, packed (a tree costs ~2 KiB, and a convergence of 1,000
    // domains leaves thousands of series for a window; issue 12); count and lastTimestamp,
    // which repeats change, are kept apart and set on it when it is written. Kept only
    // while a write is owed: a series that owes nothing keeps the Event's name and first
    // time, and its next occurrence, which carries the rest, makes the same Event again
    // (most series of a convergence never repeat: ~400 bytes each for the window).
    cache::PackedObject first;
    std::string name;                    // metadata.name
    Clock::Wall::time_point first_at{};  // firstTimestamp
    int count = 1;
    Clock::Wall::time_point last_at{};  // lastTimestamp
    Buckets::iterator bucket;           // its object's spam bucket
    TimePoint last_seen{};
    TimePoint last_write{};
    bool created = false;  // a create succeeded (and no update found it gone since)
    int written = 0;       // the count last written (or attempted)
    int in_flight = 0;     // the count of the write taken, until Written
    Write::Kind in_flight_kind = Write::Kind::kCreate;
  };
  using SeriesMap = std::map<std::string, Series>;  // by SeriesKey

  static std::string SeriesKey(const Occurrence& occurrence);
  // The Event as it stands: the first one with the series' count and lastTimestamp.
  static nlohmann::json EventOf(const Series& series);
  // The series called `id` (Observed::series); end() if none.
  SeriesMap::iterator Find(const std::string& id);
  void Erase(SeriesMap::iterator it);

  const std::string component_;
  Clock& clock_;
  const CorrelatorOptions options_;
  // A series is known to callers, to the eviction order and to the recorder's timers by
  // a number, not by its key: the key holds the whole message, and a convergence of 1,000
  // domains kept four copies of it per series (issue 12: memory per managed pod).
  SeriesMap series_;
  std::unordered_map<uint64_t, SeriesMap::iterator> by_id_;
  std::set<std::pair<TimePoint, uint64_t>> by_last_seen_;  // for eviction
  Buckets buckets_;                                        // by object
  uint64_t next_id_ = 1;
};

}  // namespace dpcm::events
