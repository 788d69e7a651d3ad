#include "proposals.hpp"

#include <set>
#include <sstream>

namespace patronus::ipsec {

namespace {

enum class Role { kAead, kCipher, kInteg, kPrf, kDh };

struct Known {
  const char* name;
  Role role;
  const char* refused;  // nullptr: accepted; otherwise why not
};

const Known kAlgorithms[] = {
    {"aes128gcm16", Role::kAead, nullptr},
    {"aes192gcm16", Role::kAead, nullptr},
    {"aes256gcm16", Role::kAead, nullptr},
    {"chacha20poly1305", Role::kAead, nullptr},
    {"aes128gcm8", Role::kAead, "an 8-byte ICV is too short (use aes*gcm16)"},
    {"aes256gcm8", Role::kAead, "an 8-byte ICV is too short (use aes*gcm16)"},
    {"aes128gcm12", Role::kAead, "a 12-byte ICV is shorter than we accept (use aes*gcm16)"},
    {"aes256gcm12", Role::kAead, "a 12-byte ICV is shorter than we accept (use aes*gcm16)"},
    {"aes128", Role::kCipher, nullptr},
    {"aes192", Role::kCipher, nullptr},
    {"aes256", Role::kCipher, nullptr},
    {"aes128ctr", Role::kCipher, nullptr},
    {"aes256ctr", Role::kCipher, nullptr},
    {"3des", Role::kCipher, "3DES has a 64-bit block (Sweet32) and is deprecated (RFC 8221)"},
    {"des", Role::kCipher, "DES is broken"},
    {"blowfish", Role::kCipher, "Blowfish has a 64-bit block"},
    {"null", Role::kCipher, "NULL encryption does not encrypt"},
    {"sha256", Role::kInteg, nullptr},
    {"sha384", Role::kInteg, nullptr},
    {"sha512", Role::kInteg, nullptr},
    {"sha1", Role::kInteg, "SHA-1 is refused (collisions; RFC 8247 deprecates it for IKEv2)"},
    {"md5", Role::kInteg, "MD5 is broken"},
    {"aesxcbc", Role::kInteg, nullptr},
    {"prfsha256", Role::kPrf, nullptr},
    {"prfsha384", Role::kPrf, nullptr},
    {"prfsha512", Role::kPrf, nullptr},
    {"prfsha1", Role::kPrf, "SHA-1 is refused (RFC 8247 deprecates it for IKEv2)"},
    {"prfmd5", Role::kPrf, "MD5 is broken"},
    {"x25519", Role::kDh, nullptr},
    {"curve25519", Role::kDh, nullptr},
    {"x448", Role::kDh, nullptr},
    {"curve448", Role::kDh, nullptr},
    {"ecp256", Role::kDh, nullptr},
    {"ecp384", Role::kDh, nullptr},
    {"ecp521", Role::kDh, nullptr},
    {"modp3072", Role::kDh, nullptr},
    {"modp4096", Role::kDh, nullptr},
    {"modp6144", Role::kDh, nullptr},
    {"modp8192", Role::kDh, nullptr},
    {"modp768", Role::kDh, "MODP-768 is far too small"},
    {"modp1024", Role::kDh, "MODP-1024 is too small (Logjam; RFC 8247 says MUST NOT)"},
    {"modp1536", Role::kDh, "MODP-1536 is too small (we accept MODP-3072 and larger)"},
    {"modp2048", Role::kDh, "MODP-2048 is below what we accept (MODP-3072 and larger)"},
    {"modp1024s160", Role::kDh, "the subgroup MODP groups are refused (RFC 8247)"},
    {"modp2048s224", Role::kDh, "the subgroup MODP groups are refused (RFC 8247)"},
    {"modp2048s256", Role::kDh, "the subgroup MODP groups are refused (RFC 8247)"},
};

const Known* find(const std::string& token) {
  for (const auto& k : kAlgorithms) {
    if (token == k.name) return &k;
  }
  return nullptr;
}

}  // namespace

std::vector<std::string> default_proposals(ProposalKind kind) {
  if (kind == ProposalKind::kIke) {
    return {"aes256gcm16-prfsha384-x25519", "chacha20poly1305-prfsha384-x25519",
            "aes256gcm16-prfsha384-modp3072"};
  }
  return {"aes256gcm16-x25519", "chacha20poly1305-x25519", "aes256gcm16-modp3072"};
}

Status check_proposal(const std::string& proposal, ProposalKind kind) {
  const std::string what =
      std::string(kind == ProposalKind::kIke ? "IKE" : "ESP") + " proposal '" + proposal + "'";
  if (proposal.empty() || proposal.size() > 200) {
    return invalid_argument(what + ": empty or longer than 200 characters");
  }
  std::set<Role> roles;
  std::stringstream ss(proposal);
  std::string token;
  while (std::getline(ss, token, '-')) {
    if (token.empty()) return invalid_argument(what + ": an empty algorithm between '-'");
    if (kind == ProposalKind::kEsp && (token == "esn" || token == "noesn")) continue;
    const Known* k = find(token);
    if (k == nullptr) {
      return invalid_argument(what + ": unknown or unsupported algorithm '" + token + "'");
    }
    if (k->refused != nullptr) return invalid_argument(what + ": '" + token + "': " + k->refused);
    if (kind == ProposalKind::kEsp && k->role == Role::kPrf) {
      return invalid_argument(what + ": '" + token + "' is a PRF, which ESP does not use");
    }
    roles.insert(k->role);
  }
  const bool aead = roles.count(Role::kAead) > 0;
  const bool cipher = roles.count(Role::kCipher) > 0;
  if (!aead && !cipher) return invalid_argument(what + ": no encryption algorithm");
  if (aead && cipher) {
    return invalid_argument(what +
                            ": mixes AEAD and non-AEAD ciphers (strongSwan needs separate "
                            "proposals for them)");
  }
  if (cipher && !roles.count(Role::kInteg)) {
    return invalid_argument(what +
                            ": a non-AEAD cipher needs an integrity algorithm (sha256 or "
                            "better)");
  }
  if (aead && roles.count(Role::kInteg)) {
    return invalid_argument(what + ": an AEAD cipher takes no integrity algorithm");
  }
  if (kind == ProposalKind::kIke && !roles.count(Role::kDh)) {
    return invalid_argument(what + ": no key exchange group (x25519, ecp256+ or modp3072+)");
  }
  if (kind == ProposalKind::kIke && aead && !roles.count(Role::kPrf)) {
    return invalid_argument(what + ": an AEAD IKE proposal needs a PRF (prfsha256 or better)");
  }
  return Status::ok();
}

}  // namespace patronus::ipsec
