// WireGuard keys: RFC 7748 vector, clamping, base64 form, `wg pubkey` agreement, key files.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "patronus/mesh/keys.hpp"
#include "test_support.hpp"

namespace patronus::mesh {
namespace {

Key from_hex(const std::string& hex) {
  Key k{};
  for (std::size_t i = 0; i < 32; ++i) {
    k[i] = static_cast<std::uint8_t>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  }
  return k;
}

TEST(Keys, Rfc7748Vector) {
  // RFC 7748 section 6.1: Alice's private and public keys.
  const Key priv = from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  auto pub = public_key_of(priv);
  ASSERT_TRUE(pub.is_ok());
  EXPECT_EQ(pub.value(),
            from_hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"));
}

// Known answers for version 1 of the per-path secrets (security item 8): the probe key and the
// IPsec PSK of the RFC 7748 keys, computed independently (Python: cryptography's X25519 and
// hashlib's keyed BLAKE2b over the label with its NUL, both public keys in byte order and the
// canonical name). A change of the layout cannot pass silently: every deployed site would stop
// authenticating its peers' probes.
TEST(Keys, PerPathSecretsMatchTheirKnownAnswers) {
  const Key alice = from_hex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
  const Key bob = from_hex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
  const Key alice_pub = public_key_of(alice).value();
  const Key bob_pub = public_key_of(bob).value();
  const std::string name = canonical_path_name("hq", "wan0", "branch", "wan0");
  ASSERT_EQ(name, "branch:wan0~hq:wan0");
  const Key probe = from_hex("0737e5011601f6087dc5893f1eebbf6b517b06d93e7df0cb098c015f0fa5ad5f");
  const Key psk = from_hex("e611c1939386ff3eddf915da1a57eeeac5c3dc04131c5c5c6a6a636208c77fe6");
  EXPECT_EQ(derive_probe_key(alice, bob_pub, name).value(), probe);
  EXPECT_EQ(derive_probe_key(bob, alice_pub, name).value(), probe);  // both ends agree
  EXPECT_EQ(derive_path_secret(alice, bob_pub, "patronus ipsec psk v1", name).value(), psk);
  EXPECT_EQ(derive_path_secret(bob, alice_pub, "patronus ipsec psk v1", name).value(), psk);
}

TEST(Keys, GeneratedKeysAreClampedAndDistinct) {
  auto a = generate_keypair();
  auto b = generate_keypair();
  ASSERT_TRUE(a.is_ok() && b.is_ok());
  EXPECT_NE(a.value().private_key, b.value().private_key);
  EXPECT_EQ(a.value().private_key[0] & 7, 0);
  EXPECT_EQ(a.value().private_key[31] & 128, 0);
  EXPECT_EQ(a.value().private_key[31] & 64, 64);
  EXPECT_EQ(public_key_of(a.value().private_key).value(), a.value().public_key);
}

TEST(Keys, Base64RoundTripAndErrors) {
  auto kp = generate_keypair().value();
  const std::string b64 = key_to_base64(kp.public_key);
  EXPECT_EQ(b64.size(), 44u);
  EXPECT_EQ(b64.back(), '=');
  EXPECT_EQ(key_from_base64(b64 + "\n", "k").value(), kp.public_key);
  auto short_key = key_from_base64("abc", "peer key");
  ASSERT_FALSE(short_key.is_ok());
  EXPECT_NE(short_key.status().message().find("peer key: a WireGuard key is 44 characters"),
            std::string::npos);
  std::string bad = b64;
  bad[5] = '*';
  EXPECT_FALSE(key_from_base64(bad, "k").is_ok());
}

TEST(Keys, WgPubkeyAgrees) {
  // wireguard-tools is installed by scripts/install-deps; this is the interop check.
  for (int i = 0; i < 5; ++i) {
    auto kp = generate_keypair().value();
    test::TempDir dir;
    test::write_file(dir.file("priv"), key_to_base64(kp.private_key) + "\n");
    auto r = test::run({"/bin/sh", "-c", "wg pubkey < " + dir.file("priv")});
    ASSERT_EQ(r.exit_code, 0) << "wg pubkey failed (is wireguard-tools installed?): " << r.err;
    EXPECT_EQ(r.out, key_to_base64(kp.public_key) + "\n");
  }
  // And the other way: a key from `wg genkey`.
  auto r = test::run({"wg", "genkey"});
  ASSERT_EQ(r.exit_code, 0);
  auto priv = key_from_base64(r.out, "wg genkey");
  ASSERT_TRUE(priv.is_ok());
  test::TempDir dir;
  test::write_file(dir.file("priv"), r.out);
  auto pub = test::run({"/bin/sh", "-c", "wg pubkey < " + dir.file("priv")});
  EXPECT_EQ(pub.out, key_to_base64(public_key_of(priv.value()).value()) + "\n");
}

TEST(KeyDirectory, CreatesPrivateFilesAndReloadsThem) {
  test::TempDir dir;
  auto kd = KeyDirectory::open(dir.file("keys"));
  ASSERT_TRUE(kd.is_ok());
  EXPECT_FALSE(kd.value().load("hq", "wan0").value().has_value());
  auto kp = kd.value().load_or_create("hq", "wan0");
  ASSERT_TRUE(kp.is_ok()) << kp.status().to_string();
  struct stat st {};
  ASSERT_EQ(::stat(kd.value().key_path("hq", "wan0").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(dir.file("keys").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  auto again = kd.value().load_or_create("hq", "wan0");
  EXPECT_EQ(again.value().private_key, kp.value().private_key);
  EXPECT_EQ(again.value().public_key, kp.value().public_key);
  // A key file others can read is refused, not silently used.
  ::chmod(kd.value().key_path("hq", "wan0").c_str(), 0644);
  auto refused = kd.value().load("hq", "wan0");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("mode 644"), std::string::npos);
  EXPECT_NE(refused.status().message().find("exposed"), std::string::npos);
  // A malformed key file is an error and is left alone.
  test::write_file(kd.value().key_path("hq", "lte0"), "not a key\n");
  ::chmod(kd.value().key_path("hq", "lte0").c_str(), 0600);
  EXPECT_FALSE(kd.value().load_or_create("hq", "lte0").is_ok());
  EXPECT_EQ(test::read_file(kd.value().key_path("hq", "lte0")), "not a key\n");
}

// Key files and directories are not trusted blindly: a symlinked key (another user could point it
// at a key they know), a key directory others can write (they could plant one) and a key owned by
// someone else are refused; a new key is 0600 from its creation.
TEST(KeyDirectory, SymlinksForeignFilesAndOpenDirectoriesAreRefused) {
  test::TempDir dir;
  auto kd = KeyDirectory::open(dir.file("keys"));
  ASSERT_TRUE(kd.is_ok());
  ASSERT_TRUE(kd.value().load_or_create("hq", "wan0").is_ok());
  const std::string real = kd.value().key_path("hq", "wan0");
  const std::string link = kd.value().key_path("hq", "lte0");
  ASSERT_EQ(::symlink(real.c_str(), link.c_str()), 0);
  auto linked = kd.value().load("hq", "lte0");
  ASSERT_FALSE(linked.is_ok());
  EXPECT_NE(linked.status().message().find("symlink"), std::string::npos)
      << linked.status().message();

  ASSERT_EQ(::chmod(dir.file("keys").c_str(), 0777), 0);
  auto open_dir = KeyDirectory::open(dir.file("keys"));
  ASSERT_FALSE(open_dir.is_ok());
  EXPECT_NE(open_dir.status().message().find("writable by group or others"), std::string::npos)
      << open_dir.status().message();
  ASSERT_EQ(::chmod(dir.file("keys").c_str(), 0700), 0);

  if (::geteuid() == 0) {  // root can give a file away: one owned by nobody is refused
    ASSERT_EQ(::chown(real.c_str(), 65534, 65534), 0);
    auto foreign = kd.value().load("hq", "wan0");
    ASSERT_FALSE(foreign.is_ok());
    EXPECT_NE(foreign.status().message().find("owned by uid 65534"), std::string::npos)
        << foreign.status().message();
  }
}

}  // namespace
}  // namespace patronus::mesh
