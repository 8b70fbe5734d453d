// Feeds leader election's transitions to leader_election_master_status.
#pragma once

#include <memory>

#include "pkg/election/lease_elector.h"
#include "pkg/metrics/metrics.h"

namespace dpcm::metrics {

// An observer for LeaseElectorOptions::observer that sets
// leader_election_master_status{name} to 1 while this replica leads, else 0. `metrics`
// must outlive the observer.
std::unique_ptr<election::LeadershipObserver> NewLeadershipObserver(Metrics& metrics);

}  // namespace dpcm::metrics
