// A TLS identity made of an Ed25519 key and a self-signed certificate, as the controller and each
// site use on the site channel (docs/adr/0023-site-channel.md): the key is made where it is used
// and never leaves that machine; the other end trusts the public key itself (a site pins the
// controller's; the controller knows each site's from its enrolment), not a CA. Private.
#pragma once

#include <array>
#include <cstdint>
#include <string>

#include "patronus/util/status.hpp"

typedef struct ssl_st SSL;

namespace patronus::channel {

using PublicKey = std::array<std::uint8_t, 32>;

struct TlsIdentity {
  std::string certificate_pem;
  std::string key_pem;  // secret: held in memory for the TLS context only
  PublicKey public_key{};
};

// "ed25519:" and the key in base64: what a site's config pins, what the controller prints.
std::string pin_of(const PublicKey& key);
Result<PublicKey> parse_pin(const std::string& pin);

// DIR/NAME.key and DIR/NAME.crt; made when both are missing (DIR created 0700, the key 0600,
// refused if a file is a symlink or the key is readable by others). `common_name` goes into a
// new certificate's subject.
Result<TlsIdentity> load_or_create_identity(const std::string& dir, const std::string& name,
                                            const std::string& common_name);

// A new identity in memory only (a benchmark's thousand sites; tests).
Result<TlsIdentity> make_identity(const std::string& common_name);

// The Ed25519 public key of a TLS connection's peer certificate; an error if it has none or
// another kind of key.
Result<PublicKey> peer_key(SSL* ssl);

}  // namespace patronus::channel
