#include "patronus/policy/reference.hpp"

namespace patronus::policy {

bool ReferenceEvaluator::peer_matches(const NetworkPolicy& p, const Peer& peer,
                                      const Endpoint& other) const {
  if (peer.ip_block) return other.ip && peer.ip_block->contains(*other.ip);
  if (other.pod < 0) return false;  // selectors select pods, never external IPs
  const Pod& pod = inv_.pods[static_cast<std::size_t>(other.pod)];
  if (peer.namespace_selector) {
    const Labels* ns = inv_.find_namespace_labels(pod.namespace_);
    const bool ok = ns ? peer.namespace_selector->matches(*ns)
                       : peer.namespace_selector->matches(inv_.namespace_labels(pod.namespace_));
    if (!ok) return false;
  } else if (pod.namespace_ != p.namespace_) {
    return false;
  }
  return !peer.pod_selector || peer.pod_selector->matches(pod.labels);
}

bool ReferenceEvaluator::port_matches(const PolicyPort& pp, Protocol protocol, std::int32_t port,
                                      const Pod* dst_pod) {
  if (pp.protocol != protocol) return false;
  if (!pp.port_name.empty()) {
    if (!dst_pod) return false;
    const auto resolved = dst_pod->named_port(pp.port_name, protocol);
    return resolved && *resolved == port;
  }
  if (!pp.port) return true;
  if (pp.end_port) return port >= *pp.port && port <= *pp.end_port;
  return port == *pp.port;
}

DirectionResult ReferenceEvaluator::direction(const Endpoint& self, const Endpoint& other,
                                              bool ingress, Protocol protocol, std::int32_t port,
                                              const Pod* dst_pod) const {
  DirectionResult r;
  if (self.pod < 0) return r;
  r.checked = true;
  const Pod& pod = inv_.pods[static_cast<std::size_t>(self.pod)];
  for (std::size_t i = 0; i < policies_.size(); ++i) {
    const NetworkPolicy& p = policies_[i];
    if (!p.enabled || p.namespace_ != pod.namespace_) continue;
    if (ingress ? !p.affects_ingress : !p.affects_egress) continue;
    if (!p.pod_selector.matches(pod.labels)) continue;
    r.isolated = true;
    r.policies.push_back(static_cast<int>(i));
    const auto& rules = ingress ? p.ingress : p.egress;
    for (std::size_t k = 0; k < rules.size(); ++k) {
      const Rule& rule = rules[k];
      bool peer_ok = rule.peers.empty();
      for (const auto& peer : rule.peers) {
        if (peer_matches(p, peer, other)) {
          peer_ok = true;
          break;
        }
      }
      if (!peer_ok) continue;
      bool port_ok = rule.ports.empty();
      for (const auto& pp : rule.ports) {
        if (port_matches(pp, protocol, port, dst_pod)) {
          port_ok = true;
          break;
        }
      }
      if (port_ok) r.allowed_by.push_back({static_cast<int>(i), static_cast<int>(k)});
    }
  }
  r.allowed = !r.isolated || !r.allowed_by.empty();
  return r;
}

Verdict ReferenceEvaluator::evaluate(const Endpoint& src, const Endpoint& dst, Protocol protocol,
                                     std::int32_t port) const {
  const Pod* dst_pod = dst.pod >= 0 ? &inv_.pods[static_cast<std::size_t>(dst.pod)] : nullptr;
  Verdict v;
  v.egress = direction(src, dst, false, protocol, port, dst_pod);
  v.ingress = direction(dst, src, true, protocol, port, dst_pod);
  v.allowed = v.egress.allowed && v.ingress.allowed;
  return v;
}

}  // namespace patronus::policy
