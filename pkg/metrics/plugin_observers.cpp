#include "pkg/metrics/plugin_observers.h"

#include <chrono>

namespace dpcm::metrics {
namespace {

class HealthCheckMetrics final : public health::CheckObserver {
 public:
  explicit HealthCheckMetrics(Metrics& metrics) : metrics_(metrics) {}
  void OnCheck(const health::Target& target, health::Outcome outcome,
               Clock::Monotonic::duration took) override {
    metrics_.HealthChecksTotal(target.ns, target.domain, health::OutcomeLabel(outcome))
        ->Increment();
    metrics_.HealthCheckDuration().Observe(std::chrono::duration<double>(took).count());
  }

 private:
  Metrics& metrics_;
};

class RoleHookMetrics final : public rolehook::DeliveryObserver {
 public:
  explicit RoleHookMetrics(Metrics& metrics) : metrics_(metrics) {}
  void OnDelivery(const rolehook::Assignment& assignment, bool ok) override {
    metrics_.RoleHooksTotal(assignment.ns, assignment.domain, ok ? "success" : "failure")
        ->Increment();
  }

 private:
  Metrics& metrics_;
};

}  // namespace

std::unique_ptr<health::CheckObserver> NewHealthCheckObserver(Metrics& metrics) {
  return std::make_unique<HealthCheckMetrics>(metrics);
}

std::unique_ptr<rolehook::DeliveryObserver> NewRoleHookObserver(Metrics& metrics) {
  return std::make_unique<RoleHookMetrics>(metrics);
}

}  // namespace dpcm::metrics
