#include "pkg/domain/adoption.h"

#include <utility>

#include "pkg/domain/member.h"
#include "pkg/domain/spec.h"

namespace dpcm::domain {

AdoptionWatches::AdoptionWatches(client::ApiClient& client, EnqueueFn enqueue)
    : client_(client), enqueue_(std::move(enqueue)) {}

AdoptionWatches::~AdoptionWatches() { StopAll(); }

std::string AdoptionWatches::CandidateSelector(
    const std::map<std::string, std::string>& match_labels) {
  std::string selector;
  for (const auto& [key, value] : match_labels) selector += key + "=" + value + ",";
  return selector + "!" + kDomainLabel;
}

void AdoptionWatches::Watch(const std::string& ns, const std::string& domain,
                            const std::map<std::string, std::string>& match_labels) {
  const std::string selector = CandidateSelector(match_labels);
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  const std::string key = ns + "/" + domain;
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    if (it->second.selector == selector) return;
    RetireLocked(std::move(it->second.informer));
    entries_.erase(it);
  }
  cache::InformerOptions options;
  options.watcher.selectors.label_selector = selector;
  options.transform = TrimPod;
  auto informer =
      std::make_unique<cache::Informer>(client_, client::resources::Pods(), ns, options);
  const controller::Request request{ns, domain};
  auto enqueue = [this, request](const cache::ObjectPtr& /*pod*/) { enqueue_(request); };
  informer->AddHandlers({.on_add = enqueue,
                         .on_update = [enqueue](const cache::ObjectPtr& /*old*/,
                                                const cache::ObjectPtr& pod) { enqueue(pod); },
                         .on_delete = nullptr});
  informer->Start();
  entries_.emplace(key, Entry{selector, std::move(informer)});
}

void AdoptionWatches::Forget(const std::string& ns, const std::string& domain) {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(ns + "/" + domain);
  if (it == entries_.end()) return;
  RetireLocked(std::move(it->second.informer));
  entries_.erase(it);
}

std::vector<cache::ObjectPtr> AdoptionWatches::Candidates(const std::string& ns,
                                                          const std::string& domain) const {
  std::lock_guard lock(mutex_);
  const auto it = entries_.find(ns + "/" + domain);
  if (it == entries_.end()) return {};
  return it->second.informer->store().List();
}

void AdoptionWatches::StopAll() {
  std::map<std::string, Entry> entries;
  std::vector<Retiring> retiring;
  {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    entries.swap(entries_);
    retiring.swap(retiring_);
  }
  for (auto& [key, entry] : entries) entry.informer->Stop();
  // `retiring` joins its threads as it goes out of scope.
}

void AdoptionWatches::RetireLocked(std::unique_ptr<cache::Informer> informer) {
  // Stopping a watch may wait for its stream to end; never on the caller's thread.
  // Threads that have finished are joined (at once) as their entries go.
  std::erase_if(retiring_, [](const Retiring& r) { return r.done->load(); });
  auto done = std::make_shared<std::atomic<bool>>(false);
  retiring_.push_back(
      {done, std::jthread([done, retired = std::shared_ptr<cache::Informer>(std::move(informer))] {
         retired->Stop();
         done->store(true);
       })});
}

}  // namespace dpcm::domain
