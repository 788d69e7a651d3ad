// The proposals we accept and refuse, each refusal with its reason (charon itself accepts our
// defaults: tests/ipsec/vici_charon_netns_test.cpp loads them).
#include <gtest/gtest.h>

#include "proposals.hpp"

namespace patronus::ipsec {
namespace {

TEST(Proposals, TheDefaultsPassOurOwnCheck) {
  for (auto kind : {ProposalKind::kIke, ProposalKind::kEsp}) {
    const auto defaults = default_proposals(kind);
    ASSERT_FALSE(defaults.empty());
    for (const auto& p : defaults) EXPECT_TRUE(check_proposal(p, kind).is_ok()) << p;
  }
}

TEST(Proposals, StrongOnesAreAccepted) {
  for (const char* p : {"aes128gcm16-prfsha256-ecp256", "aes256-sha384-prfsha384-modp4096",
                        "chacha20poly1305-prfsha512-x448", "aes256ctr-sha256-prfsha256-ecp384"}) {
    EXPECT_TRUE(check_proposal(p, ProposalKind::kIke).is_ok()) << p;
  }
  for (const char* p : {"aes128gcm16", "aes256-sha256", "aes256gcm16-x25519-esn"}) {
    EXPECT_TRUE(check_proposal(p, ProposalKind::kEsp).is_ok()) << p;
  }
}

TEST(Proposals, WeakOrIncompleteOnesAreRefusedWithTheReason) {
  struct Case {
    const char* proposal;
    ProposalKind kind;
    const char* why;
  } cases[] = {
      {"aes256-sha1-prfsha1-modp2048", ProposalKind::kIke, "'sha1': SHA-1 is refused"},
      {"aes256gcm16-prfsha256-modp1024", ProposalKind::kIke, "'modp1024': MODP-1024 is too small"},
      {"aes256gcm16-prfsha256-modp2048", ProposalKind::kIke, "MODP-3072 and larger"},
      {"3des-sha256-prfsha256-x25519", ProposalKind::kIke, "Sweet32"},
      {"aes256gcm16-prfsha256", ProposalKind::kIke, "no key exchange group"},
      {"aes256gcm16-x25519", ProposalKind::kIke, "needs a PRF"},
      {"aes256-x25519", ProposalKind::kEsp, "needs an integrity algorithm"},
      {"aes256gcm16-sha256", ProposalKind::kEsp, "takes no integrity algorithm"},
      {"aes256gcm16-aes256-sha256", ProposalKind::kEsp, "mixes AEAD and non-AEAD"},
      {"aes256gcm8", ProposalKind::kEsp, "8-byte ICV"},
      {"null-sha256", ProposalKind::kEsp, "does not encrypt"},
      {"aes256gcm16-prfsha256", ProposalKind::kEsp, "a PRF, which ESP does not use"},
      {"aes256gcm16--x25519", ProposalKind::kEsp, "an empty algorithm"},
      {"rot13-sha256", ProposalKind::kEsp, "unknown or unsupported algorithm 'rot13'"},
      {"", ProposalKind::kIke, "empty"},
  };
  for (const auto& c : cases) {
    const Status s = check_proposal(c.proposal, c.kind);
    ASSERT_FALSE(s.is_ok()) << c.proposal;
    EXPECT_NE(s.message().find(c.why), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(std::string("'") + c.proposal + "'"), std::string::npos)
        << "the error names the proposal: " << s.message();
  }
}

}  // namespace
}  // namespace patronus::ipsec
