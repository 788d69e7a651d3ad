// IKE and ESP proposals (strongSwan's syntax: algorithm keywords joined by '-', e.g.
// "aes256gcm16-prfsha384-x25519"), checked against what we accept: AEAD ciphers (AES-GCM with a
// 16-byte ICV, ChaCha20-Poly1305) or AES-CBC/CTR with SHA-2 integrity; SHA-2 PRFs; X25519, X448,
// ECP-256 or larger, or MODP of 3072 bits or more. SHA-1, MD5, DES, 3DES, Blowfish, NULL ciphers,
// MODP-1024/1536/2048 and the subgroup variants are refused, each with the reason.
#pragma once

#include <string>
#include <vector>

#include "patronus/util/status.hpp"

namespace patronus::ipsec {

enum class ProposalKind { kIke, kEsp };

// The defaults we propose: AES-256-GCM and ChaCha20-Poly1305 with X25519 (IKE also with a
// SHA-384 PRF), and a MODP-3072 fallback for peers without X25519.
std::vector<std::string> default_proposals(ProposalKind kind);

// OK, or an error naming the proposal, the algorithm and why it is refused.
Status check_proposal(const std::string& proposal, ProposalKind kind);

}  // namespace patronus::ipsec
