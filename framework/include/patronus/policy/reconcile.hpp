// Bringing a running Classifier to a new set of policies and pods with its incremental operations
// (what an enforcer does when its inputs change), so a datapath mirroring it writes only what
// changed.
#pragma once

#include <memory>
#include <vector>

#include "patronus/policy/classifier.hpp"
#include "patronus/policy/model.hpp"

namespace patronus::policy {

struct ReconcileReport {
  std::size_t policies_upserted = 0, policies_removed = 0;
  std::size_t pods_upserted = 0, pods_removed = 0;
  bool rebuilt = false;  // a namespace's labels changed: a new classifier was compiled
  bool changed() const {
    return rebuilt || policies_upserted || policies_removed || pods_upserted || pods_removed;
  }
};

// `classifier` is replaced (rebuilt) only when a defined namespace's labels changed or one was
// removed; otherwise it is updated in place, policy by policy and pod by pod.
ReconcileReport reconcile(std::unique_ptr<Classifier>& classifier,
                          std::vector<NetworkPolicy> policies, Inventory inventory);

}  // namespace patronus::policy
