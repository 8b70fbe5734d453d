// MemberFollower: watches the agent's own ProcessDomain (and nothing else) and keeps a
// MemberBoard current.
#pragma once

#include <stop_token>
#include <string>

#include "pkg/agent/member_board.h"
#include "pkg/client/api_client.h"
#include "pkg/watch/watcher.h"

namespace dpcm::agent {

// The list/watch options that read one ProcessDomain by name: fieldSelector
// metadata.name=<domain>, which RBAC authorizes against a Role's resourceNames.
watch::WatcherOptions DomainWatchOptions(const std::string& domain);

// Follows ProcessDomain `ns`/`domain` with list+watch (resuming, relisting and backing off as
// watch::Watcher does) and publishes status.members, activePod and epoch on `board`. A list or
// watch the API server refuses or cannot answer is shown on the board (SetError) with the
// server's reason; a domain that does not exist or was deleted clears it.
class MemberFollower {
 public:
  // `client` and `board` must outlive the follower.
  MemberFollower(client::ApiClient& client, std::string ns, std::string domain, MemberBoard& board);

  // Lists and watches until `stop` fires, on the calling thread.
  void Run(const std::stop_token& stop);

 private:
  void Publish(const nlohmann::json& domain);

  client::ApiClient& client_;
  const std::string ns_;
  const std::string domain_;
  MemberBoard& board_;
};

}  // namespace dpcm::agent
