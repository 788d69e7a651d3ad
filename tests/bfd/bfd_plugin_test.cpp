// The BFD plugin in virtual time, two instances against each other (sessions towards paths'
// remote ends): the three-way handshake at 1 s, the poll on reaching Up and the negotiated
// detection time, Down within the detection time with diagnostic 1 (and 3 on the far side),
// back Up, AdminDown on stop, the TTL rule, and keyed SHA1 with a wrong key and a replay.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bfd_packet.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/env/virtual_world.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;
using model::IpAddress;
using model::SocketAddress;
using J = nlohmann::json;

constexpr std::int64_t kMs = 1'000'000;

struct Seen : core::RouterObserver {
  std::vector<std::pair<std::int64_t, patronus_path_liveness>> liveness;
  std::vector<J> sessions;
  J counters;
  env::Env* env = nullptr;
  void on_liveness(const std::string&, const patronus_path_liveness& l) override {
    liveness.emplace_back(env->now_ns(), l);
  }
  void on_event(const std::string&, const std::string& type, const std::string& json) override {
    if (type == "bfd.session") sessions.push_back(J::parse(json));
    if (type == "bfd.counters") counters = J::parse(json);
  }
  const J* last_state(const std::string& state) const {
    for (auto it = sessions.rbegin(); it != sessions.rend(); ++it) {
      if ((*it)["state"] == state) return &*it;
    }
    return nullptr;
  }
};

class BfdPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = reg_.load_file(test::plugin_dir() + "/libpatronus-bfd.so");
    ASSERT_TRUE(l.is_ok()) << l.status().to_string();
    lib_ = l.value();
  }
  std::string config(const std::string& yaml) {
    auto b = lib_->schema()->text_to_bytes(yaml, "config");
    EXPECT_TRUE(b.is_ok()) << b.status().to_string();
    return b.is_ok() ? b.value() : "";
  }
  // Two nodes a (10.0.0.1) and b (10.0.0.2), each watching path 7 towards the other.
  void build(const std::string& cfg_a, const std::string& cfg_b, env::LinkParams link = {}) {
    a_env_ = &w_.add_node("a", {ia_});
    b_env_ = &w_.add_node("b", {ib_});
    w_.set_link(ia_, ib_, link);
    w_.set_link(ib_, ia_, link);
    a_ = std::make_unique<core::RouterInstance>(*a_env_, "a");
    b_ = std::make_unique<core::RouterInstance>(*b_env_, "b");
    sa_.env = a_env_;
    sb_.env = b_env_;
    a_->set_observer(&sa_);
    b_->set_observer(&sb_);
    ASSERT_TRUE(a_->add_plugin(lib_, "bfd", config(cfg_a)).is_ok());
    ASSERT_TRUE(b_->add_plugin(lib_, "bfd", config(cfg_b)).is_ok());
    ASSERT_TRUE(a_->start().is_ok());
    ASSERT_TRUE(b_->start().is_ok());
    ASSERT_TRUE(a_->watch_path("bfd", desc(ia_, ib_)).is_ok());
    ASSERT_TRUE(b_->watch_path("bfd", desc(ib_, ia_)).is_ok());
  }
  static patronus_path_desc desc(const IpAddress& local, const IpAddress& remote) {
    patronus_path_desc d{};
    d.struct_size = sizeof d;
    d.path_id = 7;
    d.local = SocketAddress(local, 0).to_abi();
    d.remote = SocketAddress(remote, 0).to_abi();
    return d;
  }
  void cut(bool down) {
    w_.set_link_up(ia_, ib_, !down);
    w_.set_link_up(ib_, ia_, !down);
  }
  static int ups(const Seen& s) {
    int n = 0;
    for (const auto& [t, l] : s.liveness) n += l.state == PATRONUS_PATH_UP;
    return n;
  }

  core::PluginRegistry reg_;
  std::shared_ptr<const core::PluginLibrary> lib_;
  env::VirtualWorld w_{5};
  IpAddress ia_ = IpAddress::parse("10.0.0.1").value(), ib_ = IpAddress::parse("10.0.0.2").value();
  env::Env *a_env_ = nullptr, *b_env_ = nullptr;
  Seen sa_, sb_;  // outlive the routers that report to them
  std::unique_ptr<core::RouterInstance> a_, b_;
};

TEST_F(BfdPlugin, ComesUpNegotiatesAndDetectsACutWithinTheDetectionTime) {
  const std::string cfg = "desired_min_tx_ms: 50\nrequired_min_rx_ms: 50\ndetect_multiplier: 3";
  build(cfg, cfg, {2 * kMs, 0, 0.0, 0, true});
  w_.run_until(5000 * kMs);
  ASSERT_EQ(sa_.liveness.size(), 1u);
  ASSERT_EQ(sb_.liveness.size(), 1u);
  EXPECT_EQ(sa_.liveness[0].second.state, PATRONUS_PATH_UP);
  EXPECT_EQ(sa_.liveness[0].second.path_id, 7u);
  // Up within the slow phase: Down -> Init -> Up takes at most a couple of 1 s intervals.
  EXPECT_LT(sa_.liveness[0].first, 2500 * kMs);
  // After the poll sequences, 50 ms x 3: the detection time is 150 ms on both ends.
  const J* up = sa_.last_state("up");
  ASSERT_NE(up, nullptr);
  EXPECT_DOUBLE_EQ(sa_.sessions.back()["detect_time_ms"].get<double>(), 150.0)
      << sa_.sessions.back().dump();
  EXPECT_EQ(sa_.sessions.back()["remote_desired_min_tx_ms"], 50.0);

  const std::int64_t cut_at = w_.now_ns();
  cut(true);
  w_.run_until(cut_at + 1000 * kMs);
  ASSERT_EQ(sa_.liveness.size(), 2u);
  const auto& [t_down, down] = sa_.liveness[1];
  EXPECT_EQ(down.state, PATRONUS_PATH_DOWN);
  EXPECT_EQ(down.diagnostic, PATRONUS_DIAG_DETECT_EXPIRED);
  EXPECT_EQ(down.detect_time_ns, 150 * kMs);
  // The last packet arrived at most one (jittered) interval before the cut; Down follows it by
  // exactly the detection time.
  EXPECT_EQ(t_down - down.last_rx_ns, 150 * kMs);
  EXPECT_LE(t_down - cut_at, 150 * kMs);
  EXPECT_GT(t_down - cut_at, 150 * kMs - 50 * kMs - 2 * kMs);
  ASSERT_EQ(sb_.liveness.size(), 2u);
  EXPECT_EQ(sb_.liveness[1].second.diagnostic, PATRONUS_DIAG_DETECT_EXPIRED);

  cut(false);
  w_.run_until(w_.now_ns() + 5000 * kMs);
  ASSERT_EQ(sa_.liveness.size(), 3u);
  EXPECT_EQ(sa_.liveness[2].second.state, PATRONUS_PATH_UP);
  EXPECT_EQ(sb_.liveness.back().second.state, PATRONUS_PATH_UP);

  // Stopping one end: the other hears AdminDown and goes Down with diagnostic 3 at once.
  const std::int64_t stop_at = w_.now_ns();
  a_->stop();
  w_.run_until(stop_at + 20 * kMs);
  EXPECT_EQ(sb_.liveness.back().second.state, PATRONUS_PATH_DOWN);
  EXPECT_EQ(sb_.liveness.back().second.diagnostic, PATRONUS_DIAG_NEIGHBOR_DOWN);
  EXPECT_EQ(sa_.counters["discarded"]["ttl"], 0);
}

// A router between the ends: TTL 254 arrives, every packet is dropped and counted, nothing comes
// up (RFC 5881 5).
TEST_F(BfdPlugin, PacketsThatCrossedARouterAreDropped) {
  env::LinkParams routed;
  routed.hops = 1;
  build("", "", routed);
  w_.run_until(10000 * kMs);
  EXPECT_TRUE(sa_.liveness.empty());
  a_->stop();
  EXPECT_GE(sa_.counters["discarded"]["ttl"].get<int>(), 8) << sa_.counters.dump();
  EXPECT_EQ(sa_.counters["state_changes"], 0);
}

// b is configured differently: nothing comes up on a, each packet refused for the reason given.
class BfdAuth : public BfdPlugin {
 protected:
  void expect_never_up(const std::string& b_cfg, const char* reason) {
    build("auth: {type: keyed-sha1, key_id: 1, key: right}", b_cfg);
    w_.run_until(10000 * kMs);
    EXPECT_EQ(ups(sa_), 0);
    a_->stop();
    EXPECT_GE(sa_.counters["discarded"][reason].get<int>(), 5) << sa_.counters.dump();
  }
};

TEST_F(BfdAuth, AWrongKeyNeverComesUp) {
  expect_never_up("auth: {type: keyed-sha1, key_id: 1, key: wrong}", "auth_digest");
}
TEST_F(BfdAuth, AWrongKeyIdNeverComesUp) {
  expect_never_up("auth: {type: keyed-sha1, key_id: 9, key: right}", "auth_key_id");
}
TEST_F(BfdAuth, AnotherTypeNeverComesUp) {
  expect_never_up("auth: {type: meticulous-keyed-sha1, key_id: 1, key: right}", "auth_type");
}
TEST_F(BfdAuth, NoAuthenticationNeverComesUp) {
  expect_never_up("", "auth_missing");
}

// The key from an owner-only file, raw on one end and as hex on the other, with the type left
// to its default (meticulous keyed SHA1): the ends agree and come up. A file others can read is
// refused as exposed, a symlink refused, and neither key nor anything of it is in the error.
TEST_F(BfdPlugin, AKeyFileRawOrHexComesUpAndAnExposedOneIsRefused) {
  test::TempDir dir;
  const std::string raw = dir.file("raw.key"), hex = dir.file("hex.key");
  test::write_file(raw, "s3cret-k\n");
  test::write_file(hex, "hex:73336372 65742d6b\n");
  ASSERT_EQ(::chmod(raw.c_str(), 0600), 0);
  ASSERT_EQ(::chmod(hex.c_str(), 0600), 0);
  env::Env& x = w_.add_node("x", {IpAddress::parse("10.0.0.9").value()});
  auto refused = [&](const std::string& yaml, const char* want) {
    core::RouterInstance r(x, "x");
    Status st = r.add_plugin(lib_, "bfd", config(yaml));
    if (st.is_ok()) st = r.start();
    EXPECT_FALSE(st.is_ok()) << yaml;
    EXPECT_NE(st.message().find(want), std::string::npos) << st.message();
    EXPECT_EQ(st.message().find("s3cret"), std::string::npos) << st.message();
  };
  refused("auth: {key_id: 1, key_file: " + hex + "}", "hex");  // a space in the digits
  test::write_file(hex, "hex:7333637265742d6b\n");
  ASSERT_EQ(::chmod(hex.c_str(), 0600), 0);
  const std::string exposed = dir.file("exposed.key");
  test::write_file(exposed, "s3cret-k\n");
  ASSERT_EQ(::chmod(exposed.c_str(), 0644), 0);
  refused("auth: {key_id: 1, key_file: " + exposed + "}", "exposed");
  ASSERT_EQ(::symlink(raw.c_str(), dir.file("link.key").c_str()), 0);
  refused("auth: {key_id: 1, key_file: " + dir.file("link.key") + "}", "symlink");
  refused("auth: {key_id: 1, key: x, key_file: " + raw + "}", "not both");
  build("desired_min_tx_ms: 50\nrequired_min_rx_ms: 50\nauth: {key_id: 3, key_file: " + raw + "}",
        "desired_min_tx_ms: 50\nrequired_min_rx_ms: 50\nauth: {type: meticulous-keyed-sha1, "
        "key_id: 3, key_file: " +
            hex + "}");
  w_.run_until(5000 * kMs);
  EXPECT_EQ(ups(sa_), 1);
  EXPECT_EQ(ups(sb_), 1);
}

// Meticulous keyed SHA1 comes up, and refuses a packet with a sequence number it has seen: a third
// party on the link replays a signed packet of a's to b.
TEST_F(BfdPlugin, MeticulousKeyedSha1ComesUpAndRefusesAReplayedSequence) {
  const std::string cfg =
      "desired_min_tx_ms: 50\nrequired_min_rx_ms: 50\n"
      "auth: {type: meticulous-keyed-sha1, key_id: 2, key: s3cret}";
  build(cfg, cfg);
  w_.run_until(5000 * kMs);
  ASSERT_EQ(ups(sa_), 1);
  ASSERT_EQ(ups(sb_), 1);
  // A packet a sent, signed with the right key, as an attacker on the link would record it:
  // rebuilt from what b's session reports and re-sent with an old sequence number.
  const J* up = sb_.last_state("up");
  ASSERT_NE(up, nullptr);
  bfd::Packet p;
  p.state = bfd::State::kUp;
  p.my_disc = (*up)["remote_discriminator"];
  p.your_disc = (*up)["local_discriminator"];
  p.desired_min_tx_us = p.required_min_rx_us = 50000;
  p.auth_present = true;
  p.auth.type = bfd::kAuthMeticulousKeyedSha1;
  p.auth.key_id = 2;
  p.auth.sequence = 1;  // long past
  bfd::Sha1Key key{};
  std::memcpy(key.data(), "s3cret", 6);
  std::uint8_t buf[bfd::kMaxPacket];
  const auto n = bfd::encode(p, buf);
  bfd::sign(buf, n, key);
  env::EndpointId attacker = 0;
  ASSERT_TRUE(
      a_env_->open_udp(SocketAddress(ia_, 40000), env::UdpOptions{255}, {}, &attacker, nullptr)
          .is_ok());
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(a_env_->send_udp(attacker, SocketAddress(ib_, 3784), buf, n).is_ok());
  }
  w_.run_until(w_.now_ns() + 100 * kMs);
  b_->stop();
  EXPECT_EQ(sb_.counters["discarded"]["auth_sequence"], 5) << sb_.counters.dump();
  EXPECT_EQ(sb_.counters["discarded"]["auth_digest"], 0) << "the replayed packets were signed";
  EXPECT_EQ(ups(sb_), 1) << "the session stayed up";
}

}  // namespace
