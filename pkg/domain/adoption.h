// Finds the pods an adopt-mode domain may take over before they carry its dpcm.io/domain label.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pkg/cache/informer.h"
#include "pkg/client/api_client.h"
#include "pkg/controller/controller.h"

namespace dpcm::domain {

// Where the reconciler finds an adopt-mode domain's unlabeled candidates. The operator's
// pod cache holds only pods labeled dpcm.io/domain (so unrelated pods cost it nothing);
// a pod that matches an adopt-mode selector but was not labeled yet is only seen here.
class CandidateSource {
 public:
  virtual ~CandidateSource() = default;
  // Watches the candidates of ns/domain: pods matching `match_labels` without a
  // dpcm.io/domain label. Cheap when nothing changed; a changed selector starts over.
  virtual void Watch(const std::string& ns, const std::string& domain,
                     const std::map<std::string, std::string>& match_labels) = 0;
  // Stops watching ns/domain's candidates (the domain is gone or no longer adopts).
  virtual void Forget(const std::string& ns, const std::string& domain) = 0;
  // The candidates seen so far (possibly none yet: their arrival enqueues the domain).
  virtual std::vector<cache::ObjectPtr> Candidates(const std::string& ns,
                                                   const std::string& domain) const = 0;
};

// One small informer per adopt-mode domain, listing and watching pods with the label
// selector "<matchLabels>,!dpcm.io/domain" in the domain's namespace, its objects
// trimmed like the main pod cache. A candidate leaves it as soon as the reconciler has
// labeled it (it no longer matches), and joins the main cache. Each informer has its
// own thread; an informer that is no longer needed is stopped on a thread of its own,
// so Forget never blocks a reconcile. Thread-safe.
class AdoptionWatches final : public CandidateSource {
 public:
  // Called on an informer's thread when a candidate appears or changes; must not block.
  using EnqueueFn = std::function<void(const controller::Request&)>;

  // `client` must outlive this object.
  AdoptionWatches(client::ApiClient& client, EnqueueFn enqueue);
  ~AdoptionWatches() override;  // StopAll()
  AdoptionWatches(const AdoptionWatches&) = delete;
  AdoptionWatches& operator=(const AdoptionWatches&) = delete;

  void Watch(const std::string& ns, const std::string& domain,
             const std::map<std::string, std::string>& match_labels) override;
  void Forget(const std::string& ns, const std::string& domain) override;
  std::vector<cache::ObjectPtr> Candidates(const std::string& ns,
                                           const std::string& domain) const override;
  // Stops every informer and waits for them.
  void StopAll();

  // The label selector for the candidates of a domain with `match_labels`.
  static std::string CandidateSelector(const std::map<std::string, std::string>& match_labels);

 private:
  struct Entry {
    std::string selector;
    std::unique_ptr<cache::Informer> informer;
  };
  struct Retiring {
    std::shared_ptr<std::atomic<bool>> done;
    std::jthread thread;
  };
  void RetireLocked(std::unique_ptr<cache::Informer> informer);

  client::ApiClient& client_;
  EnqueueFn enqueue_;
  mutable std::mutex mutex_;
  bool stopped_ = false;                  // guarded by mutex_
  std::map<std::string, Entry> entries_;  // guarded by mutex_; by ns/domain
  std::vector<Retiring> retiring_;        // guarded by mutex_; informers being stopped
};

}  // namespace dpcm::domain
