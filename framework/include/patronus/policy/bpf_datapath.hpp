// The eBPF NetworkPolicy datapath: the compiled classifier's tables as BPF maps, enforced by tc
// (clsact ingress) programs on real interfaces, or asked through BPF_PROG_TEST_RUN.
//
// sync() mirrors a Classifier incrementally: only the entries a change affects are written, in an
// order where every intermediate state gives each packet the old or the new verdict (a rebuilt
// class is written under a fresh id and identities are switched to it one write each; removals
// come last). A new compilation of the classifier, or a map that must grow, is a full reload:
// every table is built fresh in the other generation and one write makes it live.
//
// Needs root (CAP_BPF + CAP_NET_ADMIN) and a kernel with BPF; open() says what is missing.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "patronus/model/address.hpp"
#include "patronus/policy/classifier.hpp"
#include "patronus/util/status.hpp"

namespace patronus::policy::bpf {

struct Options {
  // Record connections and pass the replies of allowed ones (off: a stateless verdict per packet,
  // what `policy matrix --datapath bpf` asks).
  bool conntrack = true;
  // Pin the counters under /sys/fs/bpf/patronus/<pin_name>/ and keep the per-class attribution
  // in /run/patronus/policy/<pin_name>.json, so `patronus policy counters` can read them from
  // another process. Empty: nothing pinned. Where no BPF filesystem is mounted at /sys/fs/bpf,
  // a root process mounts one (as Cilium's agent does) and says so through `log`; anyone else is
  // told how.
  std::string pin_name;
  // What the datapath did to the system beyond its own objects (a mount), one line each.
  std::function<void(const std::string&)> log;
};

struct VerdictCounts {
  std::uint64_t allowed = 0, denied = 0, reply = 0, not_ip = 0, malformed = 0, fragment_passed = 0,
                fragment_dropped = 0, no_tables = 0;
};

// Packets evaluated under a policy: a packet counts for every policy that isolates the end it
// was checked at (ingress of the destination, egress of the source).
struct PolicyCount {
  std::string policy;     // namespace/name
  std::string direction;  // "ingress" or "egress"
  std::uint64_t allowed = 0, denied = 0;
};

struct SyncReport {
  bool full = false;        // a full reload (new generation)
  std::string why;          // why a full reload
  std::size_t written = 0;  // map entries written
  std::size_t removed = 0;  // map entries removed
};

struct MapUsage {
  std::string name;
  std::size_t entries = 0;
  std::size_t max_entries = 0;
  std::size_t bytes = 0;  // the kernel's memlock figure
};

// One test packet: Ethernet + IPv4/IPv6 + the transport header's ports.
struct Packet {
  model::IpAddress src, dst;
  std::uint8_t protocol = 6;  // IP protocol number
  std::uint16_t sport = 40000, dport = 80;
  std::vector<std::uint8_t> frame() const;
};

class Datapath {
 public:
  // Loads the programs (the verifier runs here). Error: what is missing (not root, no BPF, ...).
  static Result<std::unique_ptr<Datapath>> open(const Options& options);
  ~Datapath();  // detaches from every interface it attached to, removes its pins
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  Status sync(const Classifier& classifier);    // incremental (a full reload when needed)
  Status reload(const Classifier& classifier);  // always a full reload
  const SyncReport& last_sync() const;

  // The verdict of the loaded programs for one frame (BPF_PROG_TEST_RUN): true = passed.
  Result<bool> test_run(const std::vector<std::uint8_t>& frame);
  // The same frame `repeat` times in the kernel; the kernel's mean time per run.
  struct TimedRun {
    bool passed = false;
    std::uint32_t ns_per_run = 0;
  };
  Result<TimedRun> time_run(const std::vector<std::uint8_t>& frame, int repeat);

  // clsact ingress on an interface (Ethernet or L3 devices such as wireguard-go's TUN).
  Status attach(const std::string& interface);
  Status detach(const std::string& interface);

  Result<VerdictCounts> verdicts() const;
  Result<std::vector<PolicyCount>> policy_counts() const;
  std::vector<MapUsage> maps() const;

 private:
  struct Impl;
  explicit Datapath(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Where enforcers pin their counters: one directory each, named by its pin_name.
inline constexpr const char* kPinRoot = "/sys/fs/bpf/patronus";

// What a running enforcer (pinned under `pin_name`) has counted, read from another process.
struct PinnedCounts {
  VerdictCounts verdicts;
  std::vector<PolicyCount> policies;
};
Result<PinnedCounts> read_pinned(const std::string& pin_name);

// Why this process cannot load the datapath (empty when it can), without loading anything.
std::string unavailable_reason();

}  // namespace patronus::policy::bpf
