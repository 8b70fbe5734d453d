#include "pkg/events/correlator.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>

#include "pkg/election/lease_record.h"

namespace dpcm::events {

EventCorrelator::EventCorrelator(std::string component, Clock& clock, CorrelatorOptions options)
    : component_(std::move(component)), clock_(clock), options_(options) {}

std::string EventCorrelator::SeriesKey(const Occurrence& occurrence) {
  const ObjectReference& about = occurrence.about;
  // '\n' cannot occur in names, kinds, types or reasons; a message containing it still
  // ends the key, so it cannot make two different occurrences collide.
  return about.ns + "\n" + about.kind + "\n" + about.name + "\n" + about.uid + "\n" +
         about.api_version + "\n" + occurrence.type + "\n" + occurrence.reason + "\n" +
         occurrence.message;
}

nlohmann::json EventCorrelator::EventOf(const Series& series) {
  nlohmann::json event = *cache::Unpack(series.first);
  event["count"] = series.count;
  event["lastTimestamp"] = election::FormatTime(series.last_at);
  return event;
}

EventCorrelator::SeriesMap::iterator EventCorrelator::Find(const std::string& id) {
  uint64_t number = 0;
  const char* end = id.data() + id.size();
  const auto [at, error] = std::from_chars(id.data(), end, number);
  if (error != std::errc() || at != end) return series_.end();
  const auto found = by_id_.find(number);
  return found == by_id_.end() ? series_.end() : found->second;
}

void EventCorrelator::Erase(SeriesMap::iterator it) {
  const Series& series = it->second;
  if (series.count > series.written) {
    const nlohmann::json event = EventOf(series);
    spdlog::warn("forgetting event {} {} with {} occurrences not yet written",
                 event.value("reason", ""), event["metadata"].value("name", ""),
                 series.count - series.written);
  }
  by_last_seen_.erase({series.last_seen, series.id});
  by_id_.erase(series.id);
  if (--series.bucket->second.series <= 0) buckets_.erase(series.bucket);
  series_.erase(it);
}

EventCorrelator::Observed EventCorrelator::Observe(const Occurrence& occurrence) {
  const std::string key = SeriesKey(occurrence);
  const TimePoint now = clock_.Now();
  auto it = series_.find(key);
  if (it != series_.end() && now - it->second.last_seen > options_.window) {
    Erase(it);  // too long ago: this occurrence starts a new Event
    it = series_.end();
  }
  TimePoint due = now;
  if (it == series_.end()) {
    Series series;
    series.id = next_id_++;
    series.last_at = clock_.WallNow();
    series.first_at = series.last_at;
    series.name = NewEventName(occurrence.about);
    const ObjectReference& about = occurrence.about;
    series.bucket =
        buckets_.try_emplace(about.ns + "/" + about.kind + "/" + about.name + "/" + about.uid)
            .first;
    ++series.bucket->second.series;
    it = series_.emplace(key, std::move(series)).first;
    by_id_.emplace(it->second.id, it);
    while (series_.size() > std::max<std::size_t>(options_.max_series, 1)) {
      Erase(by_id_.at(by_last_seen_.begin()->second));
    }
  } else {
    Series& series = it->second;
    ++series.count;
    series.last_at = clock_.WallNow();
    by_last_seen_.erase({series.last_seen, series.id});
    if (series.created) due = std::max(now, series.last_write + options_.update_interval);
  }
  Series& series = it->second;
  if (!series.first) {  // new, or settled since: made as it was (same key, name and time)
    series.first = cache::Pack(MakeEvent(occurrence, component_, series.name, series.first_at));
  }
  series.last_seen = now;
  by_last_seen_.emplace(now, series.id);
  return {std::to_string(series.id), due};
}

EventCorrelator::Due EventCorrelator::Take(const std::string& id, bool flush) {
  const auto it = Find(id);
  if (it == series_.end()) return {};
  Series& series = it->second;
  const int count = series.count;
  const TimePoint now = clock_.Now();
  if (count <= series.written) {
    // Nothing owed: forgotten once quiet for a window (a later occurrence could not join it
    // anyway), else asked again then.
    const TimePoint expires = series.last_seen + options_.window;
    if (now < expires) return {std::nullopt, expires};
    Erase(it);
    return {};
  }
  if (series.created && !flush) {
    const TimePoint due = series.last_write + options_.update_interval;
    if (due > now) return {std::nullopt, due};
  }
  Bucket& bucket = series.bucket->second;
  if (!bucket.tokens) {
    const double qps = 1.0 / std::chrono::duration<double>(options_.spam_refill).count();
    bucket.tokens = std::make_unique<TokenBucket>(qps, options_.spam_burst, clock_);
  }
  if (!bucket.tokens->TryAccept()) {
    // The object has used its burst: wait for a token (at most one refill away).
    return {std::nullopt, now + options_.spam_refill};
  }
  series.in_flight = count;
  series.in_flight_kind = series.created ? Write::Kind::kUpdate : Write::Kind::kCreate;
  return {Write{series.in_flight_kind, EventOf(series)}, std::nullopt};
}

std::optional<EventCorrelator::TimePoint> EventCorrelator::Written(const std::string& id,
                                                                   const Status& status) {
  const auto it = Find(id);
  if (it == series_.end()) return std::nullopt;
  Series& series = it->second;
  const TimePoint now = clock_.Now();
  const bool update = series.in_flight_kind == Write::Kind::kUpdate;
  if (update && status.IsNotFound()) {
    // The API expired the Event: create it again, with the whole count, at once.
    series.created = false;
    series.written = 0;
    return now;
  }
  if (status.ok() || (!update && status.IsAlreadyExists())) series.created = true;
  // A failure is not retried; the next occurrence writes again.
  if (!status.IsAlreadyExists()) series.written = series.in_flight;
  series.last_write = now;
  if (series.count <= series.written) {
    series.first = nullptr;  // nothing owed: the next occurrence makes it again
    return series.last_seen + options_.window;
  }
  return series.created ? series.last_write + options_.update_interval : now;
}

std::set<std::string> EventCorrelator::Owing() const {
  std::set<std::string> out;
  for (const auto& [key, series] : series_) {
    if (series.count > series.written) out.insert(std::to_string(series.id));
  }
  return out;
}

}  // namespace dpcm::events
