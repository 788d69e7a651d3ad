// The operator API's identities in virtual time: RFC 6238 and RFC 4648 test vectors, access
// tokens that expire, are revoked by logout and a password change, and are refused when signed
// with another key; refresh tokens spent once; API keys bounded by their maker's role; login rate
// limits and their windows; audit entries written with the change, never with a secret, and
// nothing written when the store refuses.
#include "auth.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

#include "patronus/controller/core.hpp"
#include "patronus/env/virtual_world.hpp"

namespace patronus::controllerd {
namespace {

constexpr std::int64_t kSec = 1'000'000'000;

AuthOptions fast() {
  AuthOptions o;
  o.pwhash_ops = crypto_pwhash_OPSLIMIT_MIN;
  o.pwhash_mem = crypto_pwhash_MEMLIMIT_MIN;
  return o;
}

std::array<std::uint8_t, 32> secret(std::uint8_t fill) {
  std::array<std::uint8_t, 32> s{};
  s.fill(fill);
  return s;
}

// A store that refuses every write while `failing`.
class FlakyStore final : public controller::FleetStore {
 public:
  Result<controller::FleetSnapshot> load() override { return inner->load(); }
  Status write(const controller::FleetBatch& b) override {
    if (failing) return unavailable("disk full");
    return inner->write(b);
  }
  Result<std::vector<fleet::AuditEntry>> read_audit(const controller::AuditQuery& q) override {
    return inner->read_audit(q);
  }
  std::unique_ptr<controller::FleetStore> inner = controller::make_memory_fleet_store();
  bool failing = false;
};

struct AuthTest : ::testing::Test {
  env::VirtualWorld world{11};
  env::Env& env = world.add_node("controller", {});
  FlakyStore store;
  Auth auth{env, &store, secret(7), fast()};
  AuditContext ctx{"local:test", "127.0.0.1", "POST", "/api/v1/users", "users/x"};

  void SetUp() override { world.set_wall_epoch_ns(1'796'000'000LL * kSec); }

  void add_user(const std::string& name, Role role, const std::string& password) {
    auto h = hash_password(password, crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
    ASSERT_TRUE(h.is_ok());
    ASSERT_TRUE(auth.create_user(name, role, h.value(), ctx).is_ok());
  }
  Result<Tokens> login(const std::string& name, const std::string& password,
                       const std::string& totp = "") {
    auto a = auth.admit_login(name, "192.0.2.1");
    if (!a.is_ok()) return a.status();
    return auth.finish_login(a.value(), verify_password(a.value().hash, password), totp, ctx);
  }
};

TEST(Totp, Rfc6238TestVectorsSha1) {
  const std::string key = "12345678901234567890";  // RFC 6238, appendix B
  EXPECT_EQ(totp_code(key, 59, 8), "94287082");
  EXPECT_EQ(totp_code(key, 1111111109, 8), "07081804");
  EXPECT_EQ(totp_code(key, 1111111111, 8), "14050471");
  EXPECT_EQ(totp_code(key, 1234567890, 8), "89005924");
  EXPECT_EQ(totp_code(key, 2000000000, 8), "69279037");
  EXPECT_EQ(totp_code(key, 20000000000, 8), "65353130");
  EXPECT_EQ(totp_code(key, 59, 6), "287082");  // the six digits authenticator apps show
}

TEST(Base32, Rfc4648TestVectors) {
  EXPECT_EQ(base32(""), "");
  EXPECT_EQ(base32("f"), "MY");
  EXPECT_EQ(base32("fo"), "MZXQ");
  EXPECT_EQ(base32("foo"), "MZXW6");
  EXPECT_EQ(base32("foob"), "MZXW6YQ");
  EXPECT_EQ(base32("fooba"), "MZXW6YTB");
  EXPECT_EQ(base32("foobar"), "MZXW6YTBOI");
}

TEST_F(AuthTest, AnAccessTokenExpiresAndItsLoginCanBeRefreshedOnce) {
  add_user("alice", Role::kOperator, "correct horse battery");
  auto t = login("alice", "correct horse battery");
  ASSERT_TRUE(t.is_ok()) << t.status().message();
  auto p = auth.authenticate(t.value().access_token);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p.value().actor, "user:alice");
  EXPECT_EQ(p.value().role, Role::kOperator);
  world.run_until(world.now_ns() + 15 * 60 * kSec + kSec);
  auto late = auth.authenticate(t.value().access_token);
  ASSERT_FALSE(late.is_ok());
  EXPECT_EQ(late.status().code(), Code::kUnauthenticated);
  EXPECT_NE(late.status().message().find("expired"), std::string::npos);
  auto r = auth.refresh(t.value().refresh_token, "192.0.2.1");
  ASSERT_TRUE(r.is_ok()) << r.status().message();
  EXPECT_TRUE(auth.authenticate(r.value().access_token).is_ok());
  EXPECT_FALSE(auth.refresh(t.value().refresh_token, "192.0.2.1").is_ok());  // spent
}

TEST_F(AuthTest, TokensOfAnotherKeyOrEditedClaimsAreRefused) {
  add_user("alice", Role::kViewer, "correct horse battery");
  auto t = login("alice", "correct horse battery");
  ASSERT_TRUE(t.is_ok());
  Auth other(env, nullptr, secret(8), fast());
  ASSERT_TRUE(other.load(store.load().value()).is_ok());
  EXPECT_FALSE(other.authenticate(t.value().access_token).is_ok());
  std::string forged = t.value().access_token;
  forged[6] = forged[6] == 'A' ? 'B' : 'A';  // a claim's byte
  EXPECT_FALSE(auth.authenticate(forged).is_ok());
  for (const std::string& junk :
       std::vector<std::string>{"", "pat_", "pat_.", "pat_x.y", "pak_", "pak_0123456789abcdef_",
                                "prt_", std::string(5000, 'a')}) {
    EXPECT_FALSE(auth.authenticate(junk).is_ok()) << junk.substr(0, 20);
  }
}

TEST_F(AuthTest, LogoutAndAPasswordChangeEndLoginsAtOnce) {
  add_user("alice", Role::kAdmin, "correct horse battery");
  auto a = login("alice", "correct horse battery");
  auto b = login("alice", "correct horse battery");
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  auto pa = auth.authenticate(a.value().access_token);
  ASSERT_TRUE(pa.is_ok());
  ASSERT_TRUE(auth.logout(pa.value(), ctx).is_ok());
  EXPECT_FALSE(auth.authenticate(a.value().access_token).is_ok());
  EXPECT_TRUE(auth.authenticate(b.value().access_token).is_ok());
  auto h =
      hash_password("a new long password", crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
  ASSERT_TRUE(auth.set_password("alice", h.value(), ctx).is_ok());
  EXPECT_FALSE(auth.authenticate(b.value().access_token).is_ok());
  EXPECT_FALSE(auth.refresh(b.value().refresh_token, "192.0.2.1").is_ok());
  EXPECT_FALSE(login("alice", "correct horse battery").is_ok());
  EXPECT_TRUE(login("alice", "a new long password").is_ok());
}

TEST_F(AuthTest, FailedLoginsAreLimitedPerUserUntilTheWindowPasses) {
  add_user("alice", Role::kViewer, "correct horse battery");
  for (int i = 0; i < 5; ++i) {
    auto t = login("alice", "wrong");
    ASSERT_FALSE(t.is_ok());
    EXPECT_EQ(t.status().code(), Code::kUnauthenticated);
  }
  auto limited = login("alice", "correct horse battery");
  ASSERT_FALSE(limited.is_ok());
  EXPECT_EQ(limited.status().code(), Code::kResourceExhausted);
  EXPECT_GE(auth.retry_after_s("alice", "192.0.2.1"), 1);
  world.run_until(world.now_ns() + 61 * kSec);
  EXPECT_TRUE(login("alice", "correct horse battery").is_ok());
}

TEST_F(AuthTest, AFloodOfAddressesIsBounded) {
  AuthOptions o = fast();
  o.max_limited = 100;
  Auth small(env, nullptr, secret(7), o);
  int refused = 0;
  for (int i = 0; i < 1000; ++i) {
    auto a =
        small.admit_login("x", "10.0." + std::to_string(i / 256) + "." + std::to_string(i % 256));
    refused += !a.is_ok();
  }
  EXPECT_EQ(refused, 900);  // the table holds 100 addresses; the rest wait for the window
  world.run_until(world.now_ns() + 61 * kSec);
  EXPECT_TRUE(small.admit_login("x", "10.9.9.9").is_ok());
}

TEST_F(AuthTest, ApiKeysAreBoundedByTheirMakersRoleAndRevocable) {
  add_user("op", Role::kOperator, "correct horse battery");
  const Principal op{"user:op", "op", Role::kOperator, ""};
  EXPECT_EQ(auth.create_key(op, "k", Role::kAdmin, 86400 * kSec, ctx).status().code(),
            Code::kPermissionDenied);
  auto k = auth.create_key(op, "ci", Role::kViewer, 86400 * kSec, ctx);
  ASSERT_TRUE(k.is_ok());
  EXPECT_EQ(k.value().key.rfind("pak_" + k.value().record.id() + "_", 0), 0u);
  EXPECT_EQ(k.value().record.hash().find(k.value().key), std::string::npos);
  auto p = auth.authenticate(k.value().key);
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p.value().role, Role::kViewer);
  EXPECT_EQ(p.value().actor, "key:" + k.value().record.id());
  std::string wrong = k.value().key;
  wrong.back() = wrong.back() == 'A' ? 'B' : 'A';
  EXPECT_FALSE(auth.authenticate(wrong).is_ok());
  ASSERT_TRUE(auth.revoke_key(k.value().record.id(), ctx).is_ok());
  EXPECT_FALSE(auth.authenticate(k.value().key).is_ok());
  auto shortlived = auth.create_key(op, "short", Role::kViewer, 10 * kSec, ctx);
  ASSERT_TRUE(shortlived.is_ok());
  world.run_until(world.now_ns() + 11 * kSec);
  EXPECT_FALSE(auth.authenticate(shortlived.value().key).is_ok());
}

TEST_F(AuthTest, ASecondFactorIsNeededOnceConfirmedAndACodeCountsOnce) {
  add_user("alice", Role::kViewer, "correct horse battery");
  auto b32 = auth.enrol_totp("alice", ctx);
  ASSERT_TRUE(b32.is_ok());
  // The secret back from base32 (the user's authenticator app does this).
  std::string secret_bytes;
  {
    std::uint32_t buf = 0;
    int bits = 0;
    for (char c : b32.value()) {
      const int v = c >= 'A' && c <= 'Z' ? c - 'A' : c - '2' + 26;
      buf = (buf << 5) | static_cast<std::uint32_t>(v);
      bits += 5;
      if (bits >= 8) {
        secret_bytes.push_back(static_cast<char>((buf >> (bits - 8)) & 0xff));
        bits -= 8;
      }
    }
  }
  const auto now_s = [&] { return env.wall_ns() / kSec; };
  EXPECT_TRUE(login("alice", "correct horse battery").is_ok());  // pending: not needed yet
  ASSERT_TRUE(auth.confirm_totp("alice", totp_code(secret_bytes, now_s()), ctx).is_ok());
  EXPECT_FALSE(login("alice", "correct horse battery").is_ok());
  // The confirming code is spent; the next step's is good once.
  world.run_until(world.now_ns() + 30 * kSec);
  const std::string code = totp_code(secret_bytes, now_s());
  EXPECT_TRUE(login("alice", "correct horse battery", code).is_ok());
  EXPECT_FALSE(login("alice", "correct horse battery", code).is_ok());
  // The stored record holds it sealed, not in the clear.
  const auto snap = store.load();
  for (const auto& u : snap.value().users) {
    EXPECT_EQ(u.totp_sealed().find(secret_bytes), std::string::npos);
  }
}

TEST_F(AuthTest, AuditEntriesGoWithTheirChangeAndHoldNoSecret) {
  add_user("alice", Role::kAdmin, "correct horse battery");
  auto rows = store.read_audit({});
  ASSERT_TRUE(rows.is_ok());
  ASSERT_EQ(rows.value().size(), 1u);
  const auto& e = rows.value()[0];
  EXPECT_EQ(e.actor(), "local:test");
  EXPECT_NE(e.after_json().find("\"role\":\"admin\""), std::string::npos);
  EXPECT_EQ(e.after_json().find("argon2"), std::string::npos);
  EXPECT_NE(e.patch_json().find("\"op\""), std::string::npos);
  // The store refuses: no user, no entry.
  store.failing = true;
  auto h =
      hash_password("another password!", crypto_pwhash_OPSLIMIT_MIN, crypto_pwhash_MEMLIMIT_MIN);
  EXPECT_EQ(auth.create_user("bob", Role::kViewer, h.value(), ctx).status().code(),
            Code::kUnavailable);
  EXPECT_FALSE(auth.user("bob").has_value());
  store.failing = false;
  EXPECT_EQ(store.read_audit({}).value().size(), 1u);
}

TEST_F(AuthTest, TheLastAdminStaysAndDeletingAUserRevokesItsKeys) {
  add_user("root", Role::kAdmin, "correct horse battery");
  EXPECT_EQ(auth.delete_user("root", ctx).code(), Code::kFailedPrecondition);
  EXPECT_EQ(auth.set_role("root", Role::kViewer, ctx).code(), Code::kFailedPrecondition);
  add_user("op", Role::kOperator, "correct horse battery");
  auto k = auth.create_key({"user:op", "op", Role::kOperator, ""}, "ci", Role::kOperator,
                           86400 * kSec, ctx);
  ASSERT_TRUE(k.is_ok());
  ASSERT_TRUE(auth.delete_user("op", ctx).is_ok());
  EXPECT_FALSE(auth.authenticate(k.value().key).is_ok());
  EXPECT_TRUE(auth.key(k.value().record.id())->revoked());
}

// The core's operator changes carry their audit entry in the same store write; a refused write
// leaves neither the change nor the entry.
TEST(CoreAudit, AnOperatorsChangeAndItsEntryAreOneWrite) {
  env::VirtualWorld world(5);
  env::Env& env = world.add_node("controller", {});
  struct Null : controller::Outbox {
    void send(controller::SessionId, const controller::v1::ToSite&) override {}
  } outbox;
  FlakyStore store;
  controller::Core core(env, outbox, {}, &store);
  ASSERT_TRUE(core.load().is_ok());
  int audited = 0;
  core.set_auditor([&](controller::FleetBatch& b, const controller::FleetBatch& before) {
    ++audited;
    fleet::AuditEntry e;
    e.set_actor("user:t");
    e.set_before_json(before.put_sites.empty() ? "null" : before.put_sites[0].name());
    b.audit.push_back(e);
  });
  fleet::Request add;
  auto* rec = add.mutable_add_sites()->add_sites();
  rec->set_name("s1");
  auto* ep = rec->add_endpoints();
  ep->set_name("wan0");
  ep->set_address("10.0.1.1:51820");
  rec->add_subnets("172.16.1.0/24");
  ASSERT_FALSE(core.handle(add).has_error());
  EXPECT_EQ(store.read_audit({}).value().size(), 1u);
  store.failing = true;
  fleet::Request remove;
  remove.mutable_remove_site()->set_name(add.add_sites().sites(0).name());
  EXPECT_TRUE(core.handle(remove).has_error());
  store.failing = false;
  EXPECT_TRUE(core.site_record(add.add_sites().sites(0).name()).has_value());
  const auto rows = store.read_audit({}).value();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(audited, 2);  // the refused one was audited but not written
  ASSERT_FALSE(core.handle(remove).has_error());
  EXPECT_EQ(store.read_audit({}).value()[0].before_json(), add.add_sites().sites(0).name());
}

}  // namespace
}  // namespace patronus::controllerd
