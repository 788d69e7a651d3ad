// The compiled NetworkPolicy classifier the daemon uses per flow.
//
// Compilation: pods with the same namespace and labels share an *identity*; label selectors
// become identity bitsets (through a label -> bitset index); each rule becomes the union bitset
// of the identities its selector peers match, its ipBlocks and an interned *port set*. Per
// direction, identities selected by the same set of policies share a *class* whose table maps
// every peer identity to the union port set of the rules that match it, plus a longest-prefix
// list for ipBlocks (flattened so that the longest matching prefix alone decides). A verdict is
// then: identity of each end, class of each end, one table lookup per direction (and a prefix
// lookup only when the table says no and the class has ipBlocks). Named ports are kept by name
// in port sets and resolved against the destination pod when checked.
//
// Incremental updates: one policy added/changed/removed re-derives that policy's bitsets,
// re-classifies the identities of its namespace and rebuilds only the classes that contain it;
// one pod added/changed/removed touches only its identity (a new identity gets one column in
// every class table). A new namespace or a namespace whose labels change recompiles everything.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "patronus/policy/model.hpp"
#include "patronus/util/status.hpp"

namespace patronus::policy {

class Classifier {
  struct Impl;

 public:
  Classifier(std::vector<NetworkPolicy> policies, Inventory inventory);
  ~Classifier();
  Classifier(const Classifier&) = delete;
  Classifier& operator=(const Classifier&) = delete;

  // Endpoints refer to pods by their index in inventory().pods.
  bool allowed(const Endpoint& src, const Endpoint& dst, Protocol protocol,
               std::int32_t port) const;
  // By address: an IP that belongs to a pod is that pod, any other is external.
  bool allowed_ips(const model::IpAddress& src, const model::IpAddress& dst, Protocol protocol,
                   std::int32_t port) const;

  // Adds or replaces (by namespace/name) one policy, or removes one.
  void upsert_policy(NetworkPolicy policy);
  Status remove_policy(const std::string& ns, const std::string& name);
  // Adds or replaces (by namespace/name) one pod, or removes one. A removed pod keeps its index
  // (the slot is emptied: no IPs, matched by nothing).
  void upsert_pod(Pod pod);
  Status remove_pod(const std::string& ns, const std::string& name);

  // Everything from scratch (what the constructor does).
  void recompile();

  const Inventory& inventory() const { return inv_; }
  const std::vector<NetworkPolicy>& policies() const { return policies_; }
  struct Stats {
    std::size_t identities = 0;
    std::size_t ingress_classes = 0;
    std::size_t egress_classes = 0;
    std::size_t port_sets = 0;
    std::size_t full_compiles = 0;
  };
  Stats stats() const;

  // The compiled tables, for a datapath that mirrors them (the eBPF maps). A view: valid until
  // the classifier changes. Directions: 0 ingress, 1 egress. Ids are only stable within one
  // compilation: `compilation()` (unique in the process, across classifiers) changes when
  // everything was recompiled.
  struct PortRange {
    std::uint8_t protocol;
    std::uint16_t first, last;
  };
  struct PortSetView {
    bool all = false;                                         // every protocol and port
    std::vector<PortRange> ranges;                            // merged per protocol
    std::vector<std::pair<std::uint8_t, std::string>> names;  // named ports (protocol, name)
  };
  class Tables {
   public:
    std::uint64_t compilation() const;
    std::size_t identities() const;
    // The identity of a pod slot; UINT32_MAX for an emptied slot.
    std::uint32_t pod_identity(std::size_t pod) const;
    // The class of an identity in a direction; 0 when no policy isolates it.
    std::uint32_t identity_class(int direction, std::uint32_t identity) const;
    // Class ids are 1 .. classes(d) - 1; a class may be unused (live() false).
    std::size_t classes(int direction) const;
    bool live(int direction, std::uint32_t cls) const;
    // Changes whenever the class's entries are rebuilt (a new identity's column excepted: it is
    // added in place, read it with peer_ports).
    std::uint64_t version(int direction, std::uint32_t cls) const;
    const std::vector<std::uint32_t>& policies(int direction, std::uint32_t cls) const;  // slots
    // The port set a class allows for a peer identity (0: none).
    std::uint32_t peer_ports(int direction, std::uint32_t cls, std::uint32_t identity) const;
    // The class's ipBlock prefixes, flattened: for an address the longest containing prefix's
    // port set decides (0: none).
    std::vector<std::pair<model::IpPrefix, std::uint32_t>> prefixes(int direction,
                                                                    std::uint32_t cls) const;
    std::size_t port_sets() const;  // ids 1 .. port_sets() - 1 (0 is the empty set)
    PortSetView port_set(std::uint32_t id) const;

   private:
    friend class Classifier;
    explicit Tables(const Impl* m) : m_(m) {}
    const Impl* m_;
  };
  Tables tables() const;

 private:
  std::unique_ptr<Impl> impl_;
  std::vector<NetworkPolicy> policies_;  // removed policies leave a disabled tombstone
  Inventory inv_;
};

// What a reachability matrix asks: a connection by protocol to a port number or to the
// destination pod's port of that name ("tcp/80", "tcp/http", "udp/53").
struct Probe {
  std::string text;
  Protocol protocol = Protocol::kTcp;
  int port = 0;      // 0: by name
  std::string name;  // the port's name ("" by number)
};
Result<Probe> parse_probe(std::string_view text);

// Which pod may open `probe` to which: pods in namespace/name order, allowed[from][to]. A named
// probe to a pod without that port is not allowed (no connection can be made).
struct Reachability {
  std::vector<int> pods;  // indexes into the inventory's pods
  std::vector<std::vector<bool>> allowed;
};
// The destination port a probe reaches on `dst` (0: none).
int probe_port(const Probe& probe, const Pod& dst);
Reachability reachability(const Classifier& classifier, const Inventory& inventory,
                          const Probe& probe);

}  // namespace patronus::policy
