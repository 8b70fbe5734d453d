#include "pkg/events/event_sink.h"

namespace dpcm::events {

Status ApiEventSink::Create(const nlohmann::json& event) {
  const std::string ns = event["metadata"].value("namespace", "");
  auto created = client_.Create(client::resources::Events(), ns, event);
  return created.ok() ? Status::Ok() : created.status();
}

Status ApiEventSink::Update(const nlohmann::json& event) {
  const auto& metadata = event["metadata"];
  const nlohmann::json patch = {{"count", event["count"]},
                                {"lastTimestamp", event["lastTimestamp"]}};
  auto patched = client_.Patch(client::resources::Events(), metadata.value("namespace", ""),
                               metadata.value("name", ""), client::PatchType::kMerge, patch);
  return patched.ok() ? Status::Ok() : patched.status();
}

}  // namespace dpcm::events
