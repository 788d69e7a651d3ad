// The flow table: 5-tuple (IPv4 and IPv6) -> class, path, bytes, packets, last seen. Bounded (the
// bound is fixed at construction and never grows), open addressing with linear probing over a
// compact index (4 bytes a slot, load <= 0.75, an 8-bit hash tag in each slot so most misses never
// touch an entry), entries dense in one array. 56 bytes an entry: at 1M flows the table takes
// about 61 bytes a flow. Deletion shifts back (no tombstones) and keeps the entries dense.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "patronus/model/types.hpp"

namespace patronus::steering {

// A flow's key as stored: IPv4 addresses as IPv4-mapped IPv6 (::ffff:a.b.c.d).
struct FlowKeyBytes {
  std::uint8_t src[16];
  std::uint8_t dst[16];
  std::uint16_t src_port;
  std::uint16_t dst_port;
  std::uint8_t protocol;
  static FlowKeyBytes of(const model::FlowKey& k);
  model::FlowKey to_flow_key() const;
  bool operator==(const FlowKeyBytes& o) const {
    return std::memcmp(src, o.src, 32) == 0 && src_port == o.src_port && dst_port == o.dst_port &&
           protocol == o.protocol;
  }
};

// The flow hash is keyed (SipHash-2-4, libsodium's crypto_shorthash) with a key each runtime
// draws from its Env: flows are chosen by whoever sends packets, and an unkeyed hash lets them
// pick keys that collide and turn every lookup into a scan (hash flooding). The key also decides
// which path a balanced flow takes, so a simulation with a seed stays reproducible.
using FlowHashKey = std::array<std::uint8_t, 16>;
std::uint64_t hash_flow(const FlowKeyBytes& k, const FlowHashKey& key);

constexpr std::uint16_t kNoPath = 0xFFFF;

struct FlowEntry {
  std::uint8_t src[16];
  std::uint8_t dst[16];
  std::uint16_t src_port;
  std::uint16_t dst_port;
  std::uint8_t protocol;
  std::uint8_t cls;          // class index in the runtime
  std::uint16_t path;        // path index in the runtime, kNoPath: none
  std::uint32_t last_seen;   // milliseconds (runtime clock), wraps; compare by difference
  std::uint32_t packets;     // saturates
  std::uint64_t bytes : 48;  // wraps at 256 TiB
  std::uint64_t site : 16;   // destination site index in the runtime (relayed flows share paths)
  FlowKeyBytes key() const;
};
static_assert(sizeof(FlowEntry) == 56, "the flow table's memory budget assumes 56-byte entries");

class FlowTable {
 public:
  static constexpr std::uint32_t kMaxCapacity = (1u << 24) - 2;
  // max_flows in 1..kMaxCapacity (the runtime's config checks it first).
  FlowTable(std::uint32_t max_flows, const FlowHashKey& key);

  std::uint64_t hash(const FlowKeyBytes& k) const { return hash_flow(k, key_); }
  FlowEntry* find(const FlowKeyBytes& key) { return find(key, hash(key)); }
  FlowEntry* find(const FlowKeyBytes& key, std::uint64_t hash);
  // Looks up n keys (a packet batch, n <= kBatch) with software prefetching of index slots and
  // entries, so the memory accesses of the batch overlap instead of waiting one after the other
  // (the technique of DPDK's rte_hash_lookup_bulk). out[i] is the entry or nullptr.
  static constexpr std::size_t kBatch = 32;
  void find_batch(const FlowKeyBytes* keys, std::size_t n, FlowEntry** out);
  // Inserts a zeroed entry for the key (path kNoPath) and returns it; returns the existing entry
  // if there is one (*inserted false), or nullptr when the table is full.
  FlowEntry* insert(const FlowKeyBytes& key, bool* inserted);
  bool erase(const FlowKeyBytes& key);
  void clear();

  std::uint32_t size() const { return static_cast<std::uint32_t>(entries_.size()); }
  std::uint32_t capacity() const { return max_; }
  // Bytes allocated by the table (index + entries), for the memory budget.
  std::size_t memory_bytes() const;

  // Dense iteration; erase() during it invalidates indices at and after the erased one (the last
  // entry moves into the hole), so erase while iterating backwards.
  FlowEntry& at(std::uint32_t i) { return entries_[i]; }
  const FlowEntry& at(std::uint32_t i) const { return entries_[i]; }

 private:
  std::uint32_t home(std::uint64_t hash) const {
    return static_cast<std::uint32_t>(((hash & 0xFFFFFFFFu) * slots_.size()) >> 32);
  }
  static std::uint32_t tag(std::uint64_t hash) {
    return static_cast<std::uint32_t>(hash >> 56) << 24;
  }
  std::uint32_t slot_of(const FlowKeyBytes& key, std::uint64_t hash) const;  // or UINT32_MAX
  void erase_slot(std::uint32_t slot);

  FlowHashKey key_;
  std::uint32_t max_;
  std::vector<std::uint32_t> slots_;  // tag << 24 | (entry index + 1); 0: empty
  std::vector<FlowEntry> entries_;
};

}  // namespace patronus::steering
