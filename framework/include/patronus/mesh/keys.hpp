// WireGuard keys: X25519 (Curve25519) key pairs from libsodium, in WireGuard's base64 form.
// Private keys are clamped exactly like `wg genkey`; public keys equal `wg pubkey`'s output.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "patronus/util/status.hpp"

namespace patronus::mesh {

using Key = std::array<std::uint8_t, 32>;

struct KeyPair {
  Key private_key{};
  Key public_key{};
};

// A fresh clamped private key from the OS CSPRNG (libsodium randombytes) and its public key.
Result<KeyPair> generate_keypair();
// A key pair determined by a seed and a label (BLAKE2b of both, clamped): simulations and tests
// only, where the same scenario seed must give the same keys. Never for a real site.
Result<KeyPair> seeded_keypair(std::uint64_t seed, std::string_view label);

// The public key of a private key (clamping first, as WireGuard does).
Result<Key> public_key_of(const Key& private_key);

// 44-character standard base64 (with '=' padding), the form `wg` prints and reads.
std::string key_to_base64(const Key& key);
// Accepts exactly that form (surrounding whitespace is ignored); errors name `what`.
Result<Key> key_from_base64(std::string_view text, std::string_view what);

// The canonical name of a path between two endpoints, the same on both sites:
// "a-site:a-endpoint~b-site:b-endpoint" with the two ends in byte order.
std::string canonical_path_name(std::string_view site_a, std::string_view endpoint_a,
                                std::string_view site_b, std::string_view endpoint_b);

// The per-path probe key (docs/design/probe-protocol.md): BLAKE2b-256 keyed with the X25519
// shared secret of the two endpoints, over a label, both public keys (in byte order) and the
// canonical path name. Both ends compute the same key from their own private key; every path gets
// a different one; no extra secret is distributed. Refuses a peer key that gives an all-zero
// shared secret (a low-order point).
Result<Key> derive_probe_key(const Key& local_private, const Key& remote_public,
                             std::string_view canonical_name);
// The same construction under another label, for another per-path secret (the IPsec transport's
// pre-shared key between two Patronus sites: "patronus ipsec psk v1"). Different labels give
// unrelated keys.
Result<Key> derive_path_secret(const Key& local_private, const Key& remote_public,
                               std::string_view label, std::string_view canonical_name);
// The path's 32-bit session id on the wire (from the canonical name; never 0).
std::uint32_t probe_session_id(std::string_view canonical_name);

// Private keys of the endpoints of one or more sites on disk: DIR/<site>/<endpoint>.key, one
// base64 line each, file mode 0600 in a 0700 directory (like /etc/wireguard). Give each site only
// its own subdirectory.
class KeyDirectory {
 public:
  // Creates DIR (0700) if missing.
  static Result<KeyDirectory> open(const std::string& dir);
  // The key pair of an endpoint, or nullopt when it has no key file yet. A key file that is
  // unreadable, malformed or readable by group/others is an error (nothing is overwritten).
  Result<std::optional<KeyPair>> load(std::string_view site, std::string_view endpoint) const;
  // load(), generating and writing a new key (0600, written to a temporary file and renamed) when
  // there is none.
  Result<KeyPair> load_or_create(std::string_view site, std::string_view endpoint) const;
  std::string key_path(std::string_view site, std::string_view endpoint) const;

  // Key rotation (docs/adr/0013-key-rotation.md). The next key waits in DIR/<site>/<endpoint>
  // .next.key: stage_next() creates it (or returns the one staged), peers learn its public half
  // and accept it, then commit_next() makes it the key (an atomic rename).
  Result<std::optional<KeyPair>> load_next(std::string_view site, std::string_view endpoint) const;
  Result<KeyPair> stage_next(std::string_view site, std::string_view endpoint) const;
  Result<KeyPair> commit_next(std::string_view site, std::string_view endpoint) const;
  std::string next_key_path(std::string_view site, std::string_view endpoint) const;
  const std::string& dir() const { return dir_; }

 private:
  explicit KeyDirectory(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace patronus::mesh
