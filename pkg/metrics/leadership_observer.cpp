#include "pkg/metrics/leadership_observer.h"

namespace dpcm::metrics {
namespace {

class LeadershipMetrics final : public election::LeadershipObserver {
 public:
  explicit LeadershipMetrics(Metrics& metrics) : metrics_(metrics) {}
  void OnLeading(const std::string& name, bool leading) override {
    metrics_.LeaderElectionMasterStatus(name).Set(leading ? 1 : 0);
  }

 private:
  Metrics& metrics_;
};

}  // namespace

std::unique_ptr<election::LeadershipObserver> NewLeadershipObserver(Metrics& metrics) {
  return std::make_unique<LeadershipMetrics>(metrics);
}

}  // namespace dpcm::metrics
