#include "patronus/steering/flow_table.hpp"

#include <sodium.h>

#include <algorithm>
#include <stdexcept>

namespace patronus::steering {

namespace {
constexpr std::uint32_t kIndexMask = 0x00FFFFFFu;

}  // namespace

FlowKeyBytes FlowKeyBytes::of(const model::FlowKey& k) {
  FlowKeyBytes b{};
  auto put = [](std::uint8_t* out, const model::IpAddress& a) {
    if (a.is_v4()) {
      std::memset(out, 0, 10);
      out[10] = out[11] = 0xFF;
      std::memcpy(out + 12, a.bytes().data(), 4);
    } else {
      std::memcpy(out, a.bytes().data(), 16);
    }
  };
  put(b.src, k.src);
  put(b.dst, k.dst);
  b.src_port = k.src_port;
  b.dst_port = k.dst_port;
  b.protocol = static_cast<std::uint8_t>(k.protocol);
  return b;
}

model::FlowKey FlowKeyBytes::to_flow_key() const {
  auto get = [](const std::uint8_t* in) {
    static const std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};
    if (std::memcmp(in, kMapped, 12) == 0) {
      return model::IpAddress::v4(std::uint32_t(in[12]) << 24 | std::uint32_t(in[13]) << 16 |
                                  std::uint32_t(in[14]) << 8 | in[15]);
    }
    std::array<std::uint8_t, 16> a{};
    std::memcpy(a.data(), in, 16);
    return model::IpAddress::v6(a);
  };
  model::FlowKey k;
  k.src = get(src);
  k.dst = get(dst);
  k.src_port = src_port;
  k.dst_port = dst_port;
  k.protocol = static_cast<model::IpProtocol>(protocol);
  return k;
}

std::uint64_t hash_flow(const FlowKeyBytes& k, const FlowHashKey& key) {
  static_assert(crypto_shorthash_BYTES == 8 && crypto_shorthash_KEYBYTES == 16);
  static constexpr std::uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  // The key's bytes without padding: addresses, ports (host order), protocol. An IPv4 flow (both
  // addresses IPv4-mapped) hashes its 4-byte addresses only: 13 bytes instead of 37, two SipHash
  // rounds fewer; the length keeps the two families apart.
  std::uint8_t in[37];
  std::size_t n = 0;
  if (std::memcmp(k.src, kMapped, 12) == 0 && std::memcmp(k.dst, kMapped, 12) == 0) {
    std::memcpy(in, k.src + 12, 4);
    std::memcpy(in + 4, k.dst + 12, 4);
    n = 8;
  } else {
    std::memcpy(in, k.src, 16);
    std::memcpy(in + 16, k.dst, 16);
    n = 32;
  }
  std::memcpy(in + n, &k.src_port, 2);
  std::memcpy(in + n + 2, &k.dst_port, 2);
  in[n + 4] = k.protocol;
  std::uint64_t h;
  crypto_shorthash(reinterpret_cast<unsigned char*>(&h), in, n + 5, key.data());
  return h;
}

FlowKeyBytes FlowEntry::key() const {
  FlowKeyBytes k{};
  std::memcpy(k.src, src, 16);
  std::memcpy(k.dst, dst, 16);
  k.src_port = src_port;
  k.dst_port = dst_port;
  k.protocol = protocol;
  return k;
}

FlowTable::FlowTable(std::uint32_t max_flows, const FlowHashKey& key) : key_(key), max_(max_flows) {
  if (max_flows == 0 || max_flows > kMaxCapacity) {
    throw std::invalid_argument("FlowTable: max_flows must be 1.." + std::to_string(kMaxCapacity));
  }
  // Load factor at most 0.75: slots = ceil(4/3 x max) + 1 (one empty slot always ends a probe).
  slots_.assign(static_cast<std::size_t>(max_flows) * 4 / 3 + 2, 0);
  // Entries grow as flows arrive (never past the bound): a runtime that sees few flows does not
  // pay for its maximum, which matters with hundreds of runtimes in one process.
}

std::size_t FlowTable::memory_bytes() const {
  return slots_.capacity() * sizeof(std::uint32_t) + entries_.capacity() * sizeof(FlowEntry);
}

void FlowTable::clear() {
  std::fill(slots_.begin(), slots_.end(), 0);
  entries_.clear();
}

std::uint32_t FlowTable::slot_of(const FlowKeyBytes& key, std::uint64_t hash) const {
  const std::uint32_t n = static_cast<std::uint32_t>(slots_.size());
  const std::uint32_t t = tag(hash);
  std::uint32_t i = home(hash);
  for (std::uint32_t probes = 0; probes < n; ++probes) {
    const std::uint32_t s = slots_[i];
    if (s == 0) return UINT32_MAX;
    if ((s & ~kIndexMask) == t) {
      const FlowEntry& e = entries_[(s & kIndexMask) - 1];
      if (std::memcmp(e.src, key.src, 32) == 0 && e.src_port == key.src_port &&
          e.dst_port == key.dst_port && e.protocol == key.protocol) {
        return i;
      }
    }
    if (++i == n) i = 0;
  }
  return UINT32_MAX;
}

FlowEntry* FlowTable::find(const FlowKeyBytes& key, std::uint64_t hash) {
  const std::uint32_t s = slot_of(key, hash);
  return s == UINT32_MAX ? nullptr : &entries_[(slots_[s] & kIndexMask) - 1];
}

void FlowTable::find_batch(const FlowKeyBytes* keys, std::size_t n, FlowEntry** out) {
  n = std::min(n, kBatch);
  std::uint64_t hashes[kBatch];
  std::uint32_t slot[kBatch];
  for (std::size_t i = 0; i < n; ++i) {
    hashes[i] = this->hash(keys[i]);
    slot[i] = home(hashes[i]);
    __builtin_prefetch(&slots_[slot[i]]);
  }
  // First probe slot of each key: prefetch the entry it points at when the tag matches.
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t s = slots_[slot[i]];
    if (s != 0 && (s & ~kIndexMask) == tag(hashes[i])) {
      __builtin_prefetch(&entries_[(s & kIndexMask) - 1]);
    }
  }
  for (std::size_t i = 0; i < n; ++i) out[i] = find(keys[i], hashes[i]);
}

FlowEntry* FlowTable::insert(const FlowKeyBytes& key, bool* inserted) {
  const std::uint64_t hash = this->hash(key);
  if (inserted) *inserted = false;
  if (FlowEntry* e = find(key, hash)) return e;
  if (entries_.size() >= max_) return nullptr;
  const std::uint32_t n = static_cast<std::uint32_t>(slots_.size());
  std::uint32_t i = home(hash);
  while (slots_[i] != 0) {
    if (++i == n) i = 0;
  }
  if (entries_.size() == entries_.capacity()) {
    entries_.reserve(std::min<std::size_t>(max_, std::max<std::size_t>(64, entries_.size() * 2)));
  }
  FlowEntry e{};
  std::memcpy(e.src, key.src, 16);
  std::memcpy(e.dst, key.dst, 16);
  e.src_port = key.src_port;
  e.dst_port = key.dst_port;
  e.protocol = key.protocol;
  e.path = kNoPath;
  entries_.push_back(e);
  slots_[i] = tag(hash) | static_cast<std::uint32_t>(entries_.size());
  if (inserted) *inserted = true;
  return &entries_.back();
}

void FlowTable::erase_slot(std::uint32_t slot) {
  // Backward-shift deletion (Knuth 6.4 Algorithm R): later members of the probe run move up.
  const std::uint32_t n = static_cast<std::uint32_t>(slots_.size());
  std::uint32_t i = slot;
  std::uint32_t j = slot;
  slots_[i] = 0;
  for (;;) {
    if (++j == n) j = 0;
    const std::uint32_t s = slots_[j];
    if (s == 0) return;
    const std::uint32_t k = home(this->hash(entries_[(s & kIndexMask) - 1].key()));
    // Move s to i unless its home lies cyclically in (i, j].
    const bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
    if (!stays) {
      slots_[i] = s;
      slots_[j] = 0;
      i = j;
    }
  }
}

bool FlowTable::erase(const FlowKeyBytes& key) {
  const std::uint64_t hash = this->hash(key);
  const std::uint32_t s = slot_of(key, hash);
  if (s == UINT32_MAX) return false;
  const std::uint32_t idx = (slots_[s] & kIndexMask) - 1;
  erase_slot(s);
  const std::uint32_t last = static_cast<std::uint32_t>(entries_.size()) - 1;
  if (idx != last) {
    // The last entry fills the hole; its slot points at its new index.
    const FlowKeyBytes lk = entries_[last].key();
    const std::uint32_t ls = slot_of(lk, this->hash(lk));
    entries_[idx] = entries_[last];
    slots_[ls] = (slots_[ls] & ~kIndexMask) | (idx + 1);
  }
  entries_.pop_back();
  return true;
}

}  // namespace patronus::steering
