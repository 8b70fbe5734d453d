#include "pkg/agent/member_follower.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <utility>

#include "pkg/object/object.h"

namespace dpcm::agent {

watch::WatcherOptions DomainWatchOptions(const std::string& domain) {
  watch::WatcherOptions options;
  options.selectors.field_selector = "metadata.name=" + domain;
  options.initial_backoff = std::chrono::milliseconds(500);
  options.max_backoff = std::chrono::milliseconds(30000);
  return options;
}

MemberFollower::MemberFollower(client::ApiClient& client, std::string ns, std::string domain,
                               MemberBoard& board)
    : client_(client), ns_(std::move(ns)), domain_(std::move(domain)), board_(board) {}

void MemberFollower::Publish(const nlohmann::json& domain) {
  const nlohmann::json* status =
      domain.contains("status") && domain["status"].is_object() ? &domain["status"] : nullptr;
  const std::string active_pod = status ? object::StringField(*status, "activePod") : "";
  int64_t epoch = -1;
  if (status && status->contains("epoch") && (*status)["epoch"].is_number_integer()) {
    epoch = (*status)["epoch"].get<int64_t>();
  }
  board_.Apply(MembersFromDomain(domain), active_pod, epoch);
}

void MemberFollower::Run(const std::stop_token& stop) {
  watch::WatcherOptions options = DomainWatchOptions(domain_);
  const std::string what = "processdomain " + ns_ + "/" + domain_;
  options.on_error = [this, what](const Status& status) {
    board_.SetError("cannot follow " + what + ": " + status.ToString());
  };
  // A watch that reopens after a failure, on a domain where nothing changed meanwhile,
  // brings no event: the board is in sync again all the same.
  options.on_connected = [this] { board_.Resume(); };
  watch::Watcher watcher(client_, client::resources::ProcessDomains(), ns_, std::move(options));
  std::optional<nlohmann::json> listed;
  watcher.Run(stop, [&](watch::WatcherEvent&& event) {
    switch (event.type) {
      case watch::WatcherEventType::kInitStart:
        listed.reset();
        break;
      case watch::WatcherEventType::kInitApply:
        if (object::Meta(event.object, "name") == domain_) {
          listed = std::move(event.object);
        }
        break;
      case watch::WatcherEventType::kInitDone:
        if (listed) {
          Publish(*listed);
        } else {
          board_.Clear(what + " not found");
        }
        break;
      case watch::WatcherEventType::kApply:
        Publish(event.object);
        break;
      case watch::WatcherEventType::kDelete:
        spdlog::info("{} was deleted", what);
        board_.Clear(what + " was deleted");
        break;
    }
  });
}

}  // namespace dpcm::agent
