#include "pkg/events/correlator.h"

#include <spdlog/spdlog.h>

#include <algorithm>

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
  event["lastTimestamp"] = series.last_timestamp;
  return event;
}

void EventCorrelator::Erase(std::map<std::string, Series>::iterator it) {
  const Series& series = it->second;
  if (series.count > series.written) {
    const nlohmann::json event = EventOf(series);
    spdlog::warn("forgetting event {} {} with {} occurrences not yet written",
                 event.value("reason", ""), event["metadata"].value("name", ""),
                 series.count - series.written);
  }
  by_last_seen_.erase({series.last_seen, it->first});
  if (auto bucket = buckets_.find(series.object);
      bucket != buckets_.end() && --bucket->second.series <= 0) {
    buckets_.erase(bucket);
  }
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
    const nlohmann::json event =
        MakeEvent(occurrence, component_, NewEventName(occurrence.about), clock_.WallNow());
    series.count = event.value("count", 1);
    series.last_timestamp = event.value("lastTimestamp", "");
    series.first = cache::Pack(event);
    const ObjectReference& about = occurrence.about;
    series.object = about.ns + "/" + about.kind + "/" + about.name + "/" + about.uid;
    ++buckets_[series.object].series;
    it = series_.emplace(key, std::move(series)).first;
    while (series_.size() > std::max<std::size_t>(options_.max_series, 1)) {
      Erase(series_.find(by_last_seen_.begin()->second));
    }
  } else {
    Series& series = it->second;
    ++series.count;
    series.last_timestamp = election::FormatTime(clock_.WallNow());
    by_last_seen_.erase({series.last_seen, key});
    if (series.created) due = std::max(now, series.last_write + options_.update_interval);
  }
  it->second.last_seen = now;
  by_last_seen_.emplace(now, key);
  return {key, due};
}

EventCorrelator::Due EventCorrelator::Take(const std::string& key, bool flush) {
  const auto it = series_.find(key);
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
  Bucket& bucket = buckets_[series.object];
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

std::optional<EventCorrelator::TimePoint> EventCorrelator::Written(const std::string& key,
                                                                   const Status& status) {
  const auto it = series_.find(key);
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
  if (series.count <= series.written) return series.last_seen + options_.window;
  return series.created ? series.last_write + options_.update_interval : now;
}

std::set<std::string> EventCorrelator::Owing() const {
  std::set<std::string> out;
  for (const auto& [key, series] : series_) {
    if (series.count > series.written) out.insert(key);
  }
  return out;
}

}  // namespace dpcm::events
