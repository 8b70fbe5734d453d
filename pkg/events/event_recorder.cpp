#include "pkg/events/event_recorder.h"

#include <spdlog/spdlog.h>

#include <random>

#include "pkg/election/lease_record.h"

namespace dpcm::events {
namespace {

std::string RandomHex() {
  thread_local std::mt19937_64 generator{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  uint64_t bits = generator();
  for (int i = 0; i < 16; ++i, bits >>= 4U) out.push_back(kHex[bits & 0xFU]);
  return out;
}

}  // namespace

ObjectReference ObjectReference::Of(const nlohmann::json& object) {
  ObjectReference ref;
  if (!object.is_object()) return ref;
  ref.api_version = object.value("apiVersion", "");
  ref.kind = object.value("kind", "");
  if (object.contains("metadata") && object["metadata"].is_object()) {
    const auto& m = object["metadata"];
    ref.ns = m.value("namespace", "");
    ref.name = m.value("name", "");
    ref.uid = m.value("uid", "");
  }
  return ref;
}

EventRecorder::EventRecorder(client::ApiClient& client, std::string component, Clock& clock,
                             size_t max_queued)
    : client_(client),
      component_(std::move(component)),
      clock_(clock),
      max_queued_(max_queued),
      thread_([this](const std::stop_token& stop) { Run(stop); }) {}

EventRecorder::~EventRecorder() {
  thread_.request_stop();
  queued_.notify_all();
}

void EventRecorder::Record(const ObjectReference& about, const std::string& type,
                           const std::string& reason, const std::string& message) {
  const std::string now = election::FormatTime(clock_.WallNow());
  nlohmann::json event = {
      {"apiVersion", "v1"},
      {"kind", "Event"},
      {"metadata", {{"name", about.name + "." + RandomHex()}, {"namespace", about.ns}}},
      {"involvedObject",
       {{"apiVersion", about.api_version},
        {"kind", about.kind},
        {"namespace", about.ns},
        {"name", about.name},
        {"uid", about.uid}}},
      {"reason", reason},
      {"message", message.substr(0, 1024)},
      {"type", type},
      {"source", {{"component", component_}}},
      {"firstTimestamp", now},
      {"lastTimestamp", now},
      {"count", 1}};
  spdlog::info("event {} {}/{}: {} {}", type, about.ns, about.name, reason, message);
  {
    std::lock_guard lock(mutex_);
    if (queue_.size() >= max_queued_) {
      spdlog::warn("event queue full; dropping an event for {}/{}", about.ns, about.name);
      queue_.pop_front();
    }
    queue_.push_back(std::move(event));
  }
  queued_.notify_one();
}

void EventRecorder::Run(const std::stop_token& stop) {
  const auto ref = client::resources::Events();
  std::optional<Clock::Monotonic::time_point> drain_deadline;
  while (true) {
    nlohmann::json event;
    {
      std::unique_lock lock(mutex_);
      queued_.wait(lock, stop, [this] { return !queue_.empty(); });
      if (stop.stop_requested()) {
        if (!drain_deadline) drain_deadline = clock_.Now() + std::chrono::seconds(1);
        if (queue_.empty() || clock_.Now() > *drain_deadline) return;
      }
      event = std::move(queue_.front());
      queue_.pop_front();
    }
    const std::string ns = event["metadata"]["namespace"];
    if (auto created = client_.Create(ref, ns, event); !created.ok()) {
      spdlog::warn("could not record event {}: {}", event.value("reason", ""),
                   created.status().ToString());
    }
  }
}

}  // namespace dpcm::events
