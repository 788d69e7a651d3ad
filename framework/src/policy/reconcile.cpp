#include "patronus/policy/reconcile.hpp"

#include <map>
#include <set>
#include <string>

namespace patronus::policy {

namespace {

bool same_policy(const NetworkPolicy& a, const NetworkPolicy& b) {
  return a.spec_json == b.spec_json && a.enabled == b.enabled && a.priority == b.priority;
}

bool same_pod(const Pod& a, const Pod& b) {
  if (a.labels != b.labels || a.ips != b.ips || a.ports.size() != b.ports.size()) return false;
  for (std::size_t i = 0; i < a.ports.size(); ++i) {
    if (a.ports[i].name != b.ports[i].name || a.ports[i].port != b.ports[i].port ||
        a.ports[i].protocol != b.ports[i].protocol) {
      return false;
    }
  }
  return true;
}

}  // namespace

ReconcileReport reconcile(std::unique_ptr<Classifier>& classifier,
                          std::vector<NetworkPolicy> policies, Inventory inventory) {
  ReconcileReport r;
  inventory.complete_namespaces();
  const Inventory& have = classifier->inventory();
  // Namespace labels feed every namespace selector: a change recompiles.
  bool rebuild = false;
  for (const auto& ns : have.namespaces) {
    const Labels* now = inventory.find_namespace_labels(ns.name);
    if (now == nullptr || *now != ns.labels) rebuild = true;
  }
  for (const auto& ns : inventory.namespaces) {
    const Labels* before = have.find_namespace_labels(ns.name);
    if (before != nullptr && *before != ns.labels) rebuild = true;
  }
  if (rebuild) {
    classifier = std::make_unique<Classifier>(std::move(policies), std::move(inventory));
    r.rebuilt = true;
    return r;
  }
  // Policies: new or changed ones upserted, missing ones removed (the classifier keeps a
  // disabled tombstone, which is what a removed policy compares as).
  std::map<std::string, const NetworkPolicy*> old_policies;
  for (const auto& p : classifier->policies()) old_policies[p.key()] = &p;
  std::set<std::string> wanted;
  std::vector<NetworkPolicy> upserts;
  for (auto& p : policies) {
    wanted.insert(p.key());
    const auto it = old_policies.find(p.key());
    if (it == old_policies.end() || !same_policy(*it->second, p)) upserts.push_back(std::move(p));
  }
  std::vector<std::pair<std::string, std::string>> removals;
  for (const auto& [key, p] : old_policies) {
    if (!wanted.count(key) && p->enabled) removals.emplace_back(p->namespace_, p->name);
  }
  // Pods.
  std::set<std::string> wanted_pods;
  std::vector<Pod> pod_upserts;
  for (auto& pod : inventory.pods) {
    wanted_pods.insert(pod.key());
    const int i = have.find_pod(pod.namespace_, pod.name);
    if (i < 0 || !same_pod(have.pods[static_cast<std::size_t>(i)], pod)) {
      pod_upserts.push_back(std::move(pod));
    }
  }
  std::vector<std::pair<std::string, std::string>> pod_removals;
  for (const auto& pod : have.pods) {
    if (!pod.name.empty() && !wanted_pods.count(pod.key())) {
      pod_removals.emplace_back(pod.namespace_, pod.name);
    }
  }
  for (auto& p : upserts) classifier->upsert_policy(std::move(p));
  for (const auto& [ns, name] : removals) (void)classifier->remove_policy(ns, name);
  for (auto& pod : pod_upserts) classifier->upsert_pod(std::move(pod));
  for (const auto& [ns, name] : pod_removals) (void)classifier->remove_pod(ns, name);
  r.policies_upserted = upserts.size();
  r.policies_removed = removals.size();
  r.pods_upserted = pod_upserts.size();
  r.pods_removed = pod_removals.size();
  return r;
}

}  // namespace patronus::policy
