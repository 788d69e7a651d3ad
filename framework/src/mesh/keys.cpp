#include "patronus/mesh/keys.hpp"

#include "patronus/util/file.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace patronus::mesh {

namespace {

Status sodium_ready() {
  static const int rc = sodium_init();  // 0: initialised now, 1: already; -1: failure
  if (rc < 0) return internal_error("libsodium failed to initialise (sodium_init)");
  return Status::ok();
}

void clamp(Key& k) {
  k[0] &= 248;
  k[31] &= 127;
  k[31] |= 64;
}

std::string errno_text() {
  return std::strerror(errno);
}

}  // namespace

Result<KeyPair> generate_keypair() {
  if (auto s = sodium_ready(); !s.is_ok()) return s;
  KeyPair kp;
  randombytes_buf(kp.private_key.data(), kp.private_key.size());
  clamp(kp.private_key);
  auto pub = public_key_of(kp.private_key);
  if (!pub.is_ok()) return pub.status();
  kp.public_key = pub.value();
  return kp;
}

Result<KeyPair> seeded_keypair(std::uint64_t seed, std::string_view label) {
  if (auto s = sodium_ready(); !s.is_ok()) return s;
  static constexpr char kLabel[] = "patronus seeded key v1";
  unsigned char seed_bytes[8];
  for (int i = 0; i < 8; ++i) seed_bytes[i] = static_cast<unsigned char>(seed >> (8 * i));
  KeyPair kp;
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kp.private_key.size());
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(kLabel), sizeof kLabel);
  crypto_generichash_update(&st, seed_bytes, sizeof seed_bytes);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label.data()),
                            label.size());
  crypto_generichash_final(&st, kp.private_key.data(), kp.private_key.size());
  clamp(kp.private_key);
  auto pub = public_key_of(kp.private_key);
  if (!pub.is_ok()) return pub.status();
  kp.public_key = pub.value();
  return kp;
}

Result<Key> public_key_of(const Key& private_key) {
  if (auto s = sodium_ready(); !s.is_ok()) return s;
  Key priv = private_key;
  clamp(priv);
  Key pub{};
  if (crypto_scalarmult_curve25519_base(pub.data(), priv.data()) != 0) {
    sodium_memzero(priv.data(), priv.size());
    return invalid_argument("private key gives a degenerate public key");
  }
  sodium_memzero(priv.data(), priv.size());
  return pub;
}

std::string canonical_path_name(std::string_view site_a, std::string_view endpoint_a,
                                std::string_view site_b, std::string_view endpoint_b) {
  std::string a = std::string(site_a) + ":" + std::string(endpoint_a);
  std::string b = std::string(site_b) + ":" + std::string(endpoint_b);
  if (b < a) std::swap(a, b);
  return a + "~" + b;
}

Result<Key> derive_probe_key(const Key& local_private, const Key& remote_public,
                             std::string_view canonical_name) {
  return derive_path_secret(local_private, remote_public, "patronus probe key v1", canonical_name);
}

Result<Key> derive_path_secret(const Key& local_private, const Key& remote_public,
                               std::string_view label, std::string_view canonical_name) {
  if (auto s = sodium_ready(); !s.is_ok()) return s;
  auto local_public = public_key_of(local_private);
  if (!local_public.is_ok()) return local_public.status();
  Key priv = local_private;
  clamp(priv);
  Key shared{};
  const int rc = crypto_scalarmult_curve25519(shared.data(), priv.data(), remote_public.data());
  sodium_memzero(priv.data(), priv.size());
  if (rc != 0) {
    return invalid_argument("peer public key " + key_to_base64(remote_public) +
                            " is a low-order point (all-zero shared secret)");
  }
  const Key* lo = &local_public.value();
  const Key* hi = &remote_public;
  if (std::memcmp(lo->data(), hi->data(), 32) > 0) std::swap(lo, hi);
  // The label with its NUL, as the probe key has always been derived.
  const std::string label_z(label);
  crypto_generichash_state st;
  crypto_generichash_init(&st, shared.data(), shared.size(), 32);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(label_z.c_str()),
                            label_z.size() + 1);
  crypto_generichash_update(&st, lo->data(), 32);
  crypto_generichash_update(&st, hi->data(), 32);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(canonical_name.data()),
                            canonical_name.size());
  Key out{};
  crypto_generichash_final(&st, out.data(), out.size());
  sodium_memzero(shared.data(), shared.size());
  return out;
}

std::uint32_t probe_session_id(std::string_view canonical_name) {
  (void)sodium_ready();
  static const char kLabel[] = "patronus probe session v1";
  crypto_generichash_state st;
  unsigned char h[8];
  crypto_generichash_init(&st, nullptr, 0, sizeof h);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(kLabel), sizeof kLabel);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(canonical_name.data()),
                            canonical_name.size());
  crypto_generichash_final(&st, h, sizeof h);
  std::uint32_t v =
      std::uint32_t(h[0]) << 24 | std::uint32_t(h[1]) << 16 | std::uint32_t(h[2]) << 8 | h[3];
  return v == 0 ? 1 : v;
}

std::string key_to_base64(const Key& key) {
  char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)] = {};
  sodium_bin2base64(out, sizeof out, key.data(), key.size(), sodium_base64_VARIANT_ORIGINAL);
  return out;
}

Result<Key> key_from_base64(std::string_view text, std::string_view what) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' ||
                           text.back() == '\t')) {
    text.remove_suffix(1);
  }
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  const std::string w(what);
  if (text.size() != 44 || text[43] != '=') {
    return invalid_argument(w + ": a WireGuard key is 44 characters of base64 ending in '=' (got " +
                            std::to_string(text.size()) + " characters)");
  }
  if (auto s = sodium_ready(); !s.is_ok()) return s;
  Key k{};
  std::size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(k.data(), k.size(), text.data(), text.size(), nullptr, &len, &end,
                        sodium_base64_VARIANT_ORIGINAL) != 0 ||
      len != 32 || end != text.data() + text.size()) {
    return invalid_argument(w + ": not valid base64 for a 32-byte key");
  }
  return k;
}

Result<KeyDirectory> KeyDirectory::open(const std::string& dir) {
  if (dir.empty()) return invalid_argument("key directory: empty path");
  if (auto s = private_directory(dir); !s.is_ok()) {
    return Status(s.code(), "key directory " + s.message());
  }
  return KeyDirectory(dir);
}

std::string KeyDirectory::key_path(std::string_view site, std::string_view endpoint) const {
  return dir_ + "/" + std::string(site) + "/" + std::string(endpoint) + ".key";
}

namespace {

Result<std::optional<KeyPair>> load_key_file(const std::string& path) {
  auto text = read_private_file(path, 4096);  // a key file is one 45-byte line
  if (!text.is_ok()) return text.status();
  if (!text.value()) return std::optional<KeyPair>();
  auto priv = key_from_base64(*text.value(), path);
  if (!priv.is_ok()) return priv.status();
  KeyPair kp;
  kp.private_key = priv.value();
  auto pub = public_key_of(kp.private_key);
  if (!pub.is_ok()) return pub.status();
  kp.public_key = pub.value();
  return std::optional<KeyPair>(kp);
}

// A new key written to `path` (0600, through a temporary file and a rename).
Result<KeyPair> create_key_file(const std::string& site_dir, const std::string& path) {
  if (auto s = private_directory(site_dir); !s.is_ok()) return s;
  auto kp = generate_keypair();
  if (!kp.is_ok()) return kp.status();
  if (auto s = write_file_atomic(path, key_to_base64(kp.value().private_key) + "\n", 0600);
      !s.is_ok()) {
    return unavailable(path + ": cannot write the private key: " + s.message());
  }
  return kp.value();
}

}  // namespace

Result<std::optional<KeyPair>> KeyDirectory::load(std::string_view site,
                                                  std::string_view endpoint) const {
  // The site's folder is checked as its keys were made in it: a key in a folder others could
  // write could have been swapped (a rotation refuses it too).
  const std::string site_dir = dir_ + "/" + std::string(site);
  struct stat st {};
  if (::lstat(site_dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return std::optional<KeyPair>();
    return unavailable(site_dir + ": " + std::strerror(errno));
  }
  if (auto s = closed_directory(site_dir); !s.is_ok())
    return Status(s.code(), "key folder " + s.message());
  return load_key_file(key_path(site, endpoint));
}

Result<KeyPair> KeyDirectory::load_or_create(std::string_view site,
                                             std::string_view endpoint) const {
  auto existing = load(site, endpoint);
  if (!existing.is_ok()) return existing.status();
  if (existing.value()) return *existing.value();
  return create_key_file(dir_ + "/" + std::string(site), key_path(site, endpoint));
}

std::string KeyDirectory::next_key_path(std::string_view site, std::string_view endpoint) const {
  return dir_ + "/" + std::string(site) + "/" + std::string(endpoint) + ".next.key";
}

Result<std::optional<KeyPair>> KeyDirectory::load_next(std::string_view site,
                                                       std::string_view endpoint) const {
  return load_key_file(next_key_path(site, endpoint));
}

Result<KeyPair> KeyDirectory::stage_next(std::string_view site, std::string_view endpoint) const {
  auto current = load(site, endpoint);
  if (!current.is_ok()) return current.status();
  if (!current.value()) {
    return failed_precondition(key_path(site, endpoint) + ": no key to rotate");
  }
  auto staged = load_next(site, endpoint);
  if (!staged.is_ok()) return staged.status();
  if (staged.value()) return *staged.value();
  return create_key_file(dir_ + "/" + std::string(site), next_key_path(site, endpoint));
}

Result<KeyPair> KeyDirectory::commit_next(std::string_view site, std::string_view endpoint) const {
  auto staged = load_next(site, endpoint);
  if (!staged.is_ok()) return staged.status();
  if (!staged.value()) {
    return failed_precondition(next_key_path(site, endpoint) +
                               ": no next key staged (stage one first and let the peers learn it)");
  }
  if (::rename(next_key_path(site, endpoint).c_str(), key_path(site, endpoint).c_str()) != 0) {
    return unavailable(key_path(site, endpoint) + ": " + errno_text());
  }
  return *staged.value();
}

}  // namespace patronus::mesh
