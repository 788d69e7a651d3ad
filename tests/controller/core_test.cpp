// The controller's core in virtual time: enrolment with one-time tokens, configs pushed to
// connected sites and acknowledged, a burst of changes compiled once, resumed sessions sent
// nothing, drift bounded.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>
#include <vector>

#include "fleet_fixtures.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/env/virtual_world.hpp"
#include "patronus/mesh/keys.hpp"

namespace patronus::controller {
namespace {

constexpr std::int64_t kMs = 1'000'000;
constexpr std::int64_t kSec = 1'000'000'000;

// What the core sent, per session, with the time.
struct Recorder : Outbox {
  explicit Recorder(const env::Env& env) : env(env) {}
  void send(SessionId session, const v1::ToSite& m) override {
    if (m.has_rotate()) {
      rotations.push_back({session, env.now_ns(), m});
      return;
    }
    if (m.has_welcome()) {
      welcomes.push_back({session, env.now_ns(), m});  // every connect's, counted apart
      return;
    }
    sent.push_back({session, env.now_ns(), m});
  }
  struct Sent {
    SessionId session;
    std::int64_t at_ns;
    v1::ToSite message;
  };
  std::size_t count(SessionId s) const {
    std::size_t n = 0;
    for (const auto& x : sent) n += x.session == s;
    return n;
  }
  const Sent* last(SessionId s) const {
    for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
      if (it->session == s) return &*it;
    }
    return nullptr;
  }
  const env::Env& env;
  std::vector<Sent> sent, welcomes, rotations;
};

// The fixture's site without its key: the key comes at enrolment.
FleetSite site_spec(int i) {
  return test::fleet_site(i, false);
}

std::array<std::uint8_t, 32> identity_of(int i) {
  std::array<std::uint8_t, 32> id{};
  id.fill(static_cast<std::uint8_t>(i + 1));
  return id;
}

std::string wg_key_of(int i) {
  return mesh::key_to_base64(
      mesh::seeded_keypair(static_cast<std::uint64_t>(i) + 100, "wg").value().public_key);
}

// A site's report of one endpoint's keys (base64); `next` is the staged next key ("" none).
v1::Keys keys_of(const std::string& endpoint, const std::string& current,
                 const std::string& next = "") {
  v1::Keys keys;
  auto* k = keys.add_keys();
  k->set_endpoint(endpoint);
  k->set_public_key(current);
  k->set_next_public_key(next);
  return keys;
}

// A base64 key as a plan carries it (32 raw bytes).
std::string raw_key(const std::string& base64) {
  const auto k = mesh::key_from_base64(base64, "").value();
  return std::string(reinterpret_cast<const char*>(k.data()), k.size());
}

struct Bench {
  env::VirtualWorld world{7};
  env::Env& env = world.add_node("controller", {});
  Recorder out{env};
  Core core{env, out};

  // Added, enrolled with a fresh token and connected (session i), acknowledging what it gets.
  void join(int i) {
    ASSERT_TRUE(core.add_site(site_spec(i)).is_ok());
    auto token = core.create_token("s" + std::to_string(i));
    ASSERT_TRUE(token.is_ok()) << token.status().to_string();
    ASSERT_TRUE(
        core.enrol(token.value(), "s" + std::to_string(i), identity_of(i), {wg_key_of(i)}).is_ok());
    ASSERT_TRUE(core.connect(static_cast<SessionId>(i), "s" + std::to_string(i), identity_of(i), "")
                    .is_ok());
  }
  // Every session acknowledges the last config it was sent.
  void ack_all() {
    std::map<SessionId, const Recorder::Sent*> last;
    for (const auto& x : out.sent) last[x.session] = &x;
    for (const auto& [session, x] : last) {
      if (!core.session_site(session)) continue;  // a session that has ended
      const auto& p = x->message.config();
      EXPECT_TRUE(core.acknowledge(session, p.version(), p.hash()).is_ok());
    }
  }
};

TEST(ControllerCore, SitesEnrolReceiveTheirConfigsAndANewSiteReachesEveryone) {
  Bench b;
  for (int i = 0; i < 3; ++i) b.join(i);
  EXPECT_TRUE(b.out.sent.empty()) << "nothing before the debounce";
  b.world.run_until(1 * kSec);
  EXPECT_EQ(b.core.counters().compiles, 1u) << "the three joins are one burst";
  for (SessionId s = 0; s < 3; ++s) {
    ASSERT_EQ(b.out.count(s), 1u);
    const auto& p = b.out.last(s)->message.config();
    EXPECT_EQ(p.version(), 1u);
    EXPECT_EQ(p.config().site(), "s" + std::to_string(s));
    EXPECT_EQ(p.config().plan().paths_size(), 2);
    EXPECT_EQ(p.hash(), site::content_hash(p.config()));
    EXPECT_EQ(b.out.last(s)->at_ns, 500 * kMs) << "sent at the debounce";
  }
  b.ack_all();
  for (const auto& st : b.core.statuses()) {
    EXPECT_TRUE(st.connected && st.in_mesh) << st.name;
    EXPECT_EQ(st.applied_hash, st.hash) << st.name;
  }

  // A fourth site: every site gets a new version within the debounce, naming it.
  const std::int64_t t_add = b.world.now_ns();
  b.join(3);
  b.world.run_until(t_add + 1 * kSec);
  for (SessionId s = 0; s < 4; ++s) {
    const auto* x = b.out.last(s);
    ASSERT_NE(x, nullptr);
    EXPECT_LE(x->at_ns - t_add, 500 * kMs);
    bool names_s3 = s == 3;
    for (const auto& r : x->message.config().config().plan().remote_sites()) {
      names_s3 = names_s3 || r.name() == "s3";
    }
    EXPECT_TRUE(names_s3) << "site " << s << " does not know s3";
  }
  EXPECT_EQ(b.out.last(0)->message.config().version(), 2u);
  // Path ids agree at both ends.
  std::uint64_t id01 = 0, id10 = 0;
  for (const auto& p : b.out.last(0)->message.config().config().plan().paths()) {
    if (p.remote_site() == "s1") id01 = p.id();
  }
  for (const auto& p : b.out.last(1)->message.config().config().plan().paths()) {
    if (p.remote_site() == "s0") id10 = p.id();
  }
  EXPECT_NE(id01, 0u);
  EXPECT_EQ(id01, id10);
}

TEST(ControllerCore, TokensAreOneTimeExpireAndGuessingIsRateLimited) {
  Bench b;
  ASSERT_TRUE(b.core.add_site(site_spec(0)).is_ok());
  ASSERT_TRUE(b.core.add_site(site_spec(1)).is_ok());
  EXPECT_FALSE(b.core.create_token("nowhere").is_ok());
  auto t0 = b.core.create_token("s0");
  ASSERT_TRUE(t0.is_ok());
  auto refused = [&](const Status& s, const std::string& says) {
    ASSERT_FALSE(s.is_ok()) << says;
    EXPECT_NE(s.message().find(says), std::string::npos) << s.message();
  };
  refused(b.core.enrol(t0.value(), "s1", identity_of(1), {wg_key_of(1)}), "for another site");
  refused(b.core.enrol(t0.value(), "s0", identity_of(0), {"not base64"}), "endpoint_keys[0]");
  ASSERT_TRUE(b.core.enrol(t0.value(), "s0", identity_of(0), {wg_key_of(0)}).is_ok());
  refused(b.core.enrol(t0.value(), "s0", identity_of(0), {wg_key_of(0)}), "used already");
  refused(b.core.create_token("s0").status(), "enrolled already");
  // The identity is the site's: another key cannot connect as it.
  refused(b.core.connect(9, "s0", identity_of(5), ""), "not enrolled with this identity");

  auto t1 = b.core.create_token("s1", 10 * kSec);
  ASSERT_TRUE(t1.is_ok());
  b.world.run_until(11 * kSec);
  refused(b.core.enrol(t1.value(), "s1", identity_of(1), {wg_key_of(1)}), "expired");
  // Guessing: after max_bad_tokens wrong tokens in a minute, even a good one waits.
  auto t2 = b.core.create_token("s1");
  ASSERT_TRUE(t2.is_ok());
  for (int i = 0; i < 20; ++i) (void)b.core.enrol("ptk_guess" + std::to_string(i), "s1", {}, {});
  refused(b.core.enrol(t2.value(), "s1", identity_of(1), {wg_key_of(1)}), "too many wrong tokens");
  EXPECT_GE(b.core.counters().tokens_rate_limited, 1u);
  b.world.run_until(b.world.now_ns() + 61 * kSec);
  EXPECT_TRUE(b.core.enrol(t2.value(), "s1", identity_of(1), {wg_key_of(1)}).is_ok());
}

TEST(ControllerCore, AResumedSiteIsSentNothingAndDriftIsBounded) {
  Bench b;
  for (int i = 0; i < 2; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  b.ack_all();
  const std::string hash = b.core.status("s0")->hash;
  const std::size_t sent = b.out.sent.size();
  // Reconnect (a controller restart, a network blip) with the current hash: nothing is resent.
  b.core.disconnect(0);
  EXPECT_FALSE(b.core.status("s0")->connected);
  ASSERT_TRUE(b.core.connect(10, "s0", identity_of(0), hash).is_ok());
  EXPECT_EQ(b.out.sent.size(), sent);
  // With another hash: the full config again.
  ASSERT_TRUE(b.core.connect(11, "s0", identity_of(0), "stale").is_ok());
  ASSERT_EQ(b.out.sent.size(), sent + 1);
  EXPECT_EQ(b.out.sent.back().session, 11u);
  // A site that keeps acknowledging another hash: resent max_resends (3) times, then drift.
  const auto version = b.core.status("s0")->version;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(b.core.acknowledge(11, version, "other").is_ok());
  EXPECT_EQ(b.out.count(11), 1u + 3u);
  EXPECT_TRUE(b.core.status("s0")->drift);
  EXPECT_FALSE(b.core.acknowledge(11, version + 5, hash).is_ok()) << "a version never sent";
  ASSERT_TRUE(b.core.acknowledge(11, version, hash).is_ok());
  EXPECT_FALSE(b.core.status("s0")->drift);
}

TEST(ControllerCore, ABurstIsOneCompileButNeverWaitsLongerThanTheMaximum) {
  Bench b;
  b.join(0);
  b.join(1);
  b.world.run_until(1 * kSec);
  const auto compiles = b.core.counters().compiles;
  // A change every 400 ms for 5 s: each restarts the 500 ms debounce, but the burst is compiled
  // by its 3 s maximum.
  const std::int64_t t0 = b.world.now_ns();
  for (int i = 0; i < 13; ++i) {
    b.world.run_until(t0 + i * 400 * kMs);
    FleetSettings s;
    s.base.mutable_runtime()->set_tick_ms(100 + static_cast<std::uint32_t>(i));
    b.core.set_settings(s);
  }
  b.world.run_until(t0 + 10 * kSec);
  EXPECT_LE(b.core.counters().compiles - compiles, 3u);
  EXPECT_GE(b.core.counters().compiles - compiles, 2u) << "the maximum wait did not cut the burst";
  EXPECT_EQ(b.out.last(0)->message.config().config().runtime().tick_ms(), 112u);
}

}  // namespace
}  // namespace patronus::controller

namespace patronus::controller {
namespace {

// What an operator and a site can get wrong: a site that overlaps another, a hub that is not a
// site, a config the site refuses (reported, not resent, nothing counted as applied).
TEST(ControllerCore, OverlapsUnknownHubsAndRefusedConfigsAreSaidNotRepeated) {
  Bench b;
  for (int i = 0; i < 2; ++i) b.join(i);
  auto same_address = site_spec(5);
  same_address.endpoints[0].address = site_spec(0).endpoints[0].address;
  auto st = b.core.add_site(same_address);
  EXPECT_FALSE(st.is_ok());
  EXPECT_NE(st.message().find("is site 's0' endpoint 'wan0'"), std::string::npos) << st.message();
  auto same_lan = site_spec(6);
  same_lan.subnets = {model::IpPrefix::parse("172.16.0.0/16").value()};
  st = b.core.add_site(same_lan);
  EXPECT_NE(st.message().find("overlaps site 's0'"), std::string::npos) << st.message();

  fleet::Request q;
  q.mutable_set_topology()->set_topology("hub-spoke");
  q.mutable_set_topology()->add_hubs("nosuch");
  auto r = b.core.handle(q);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("'nosuch' is not a site"), std::string::npos);

  b.world.run_until(1 * kSec);
  const auto& pushed = b.out.last(0)->message.config();
  const std::size_t sent = b.out.sent.size();
  ASSERT_TRUE(
      b.core.acknowledge(0, pushed.version(), "", "runtime.classes: no scorer 'x'").is_ok());
  b.world.run_until(3 * kSec);
  EXPECT_EQ(b.out.sent.size(), sent) << "a refused config is not sent again";
  const auto s0 = b.core.status("s0");
  EXPECT_EQ(s0->applied_version, 0u) << "a refused version is not applied";
  EXPECT_TRUE(s0->drift);
  EXPECT_EQ(s0->last_error, "runtime.classes: no scorer 'x'");
}

// A controller restarted on its store compiles the same configs: same versions, same path ids,
// nothing sent to a site that resumes with the hash it runs.
TEST(ControllerCore, ARestartOnTheStoreSendsNothingAndKeepsPathIds) {
  const std::string dir = ::testing::TempDir() + "/fleet-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/fleet.db";
  std::filesystem::remove(db);
  std::map<std::string, std::string> hashes;
  std::map<std::string, std::uint64_t> versions;
  {
    auto store = open_sqlite_fleet_store(db);
    ASSERT_TRUE(store.is_ok()) << store.status().to_string();
    env::VirtualWorld world(3);
    env::Env& env = world.add_node("controller", {});
    Recorder out(env);
    Core core(env, out, {}, store.value().get());
    ASSERT_TRUE(core.load().is_ok());
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(core.add_site(site_spec(i)).is_ok());
      auto t = core.create_token("s" + std::to_string(i));
      ASSERT_TRUE(
          core.enrol(t.value(), "s" + std::to_string(i), identity_of(i), {wg_key_of(i)}).is_ok());
    }
    world.run_until(1 * kSec);
    for (const auto& s : core.statuses()) {
      hashes[s.name] = s.hash;
      versions[s.name] = s.version;
    }
    EXPECT_EQ(versions["s0"], 1u);
  }
  auto store = open_sqlite_fleet_store(db);
  ASSERT_TRUE(store.is_ok());
  env::VirtualWorld world(4);
  env::Env& env = world.add_node("controller", {});
  Recorder out(env);
  Core core(env, out, {}, store.value().get());
  ASSERT_TRUE(core.load().is_ok());
  for (const auto& s : core.statuses()) {
    EXPECT_EQ(s.hash, hashes[s.name]) << s.name << ": another config after the restart";
    EXPECT_EQ(s.version, versions[s.name]) << s.name;
    EXPECT_TRUE(s.enrolled);
  }
  ASSERT_TRUE(core.connect(1, "s1", identity_of(1), hashes["s1"], versions["s1"]).is_ok());
  ASSERT_FALSE(core.connect(2, "s2", identity_of(0), hashes["s2"]).is_ok()) << "another identity";
  world.run_until(2 * kSec);
  EXPECT_EQ(out.sent.size(), 0u) << "a current site is sent nothing";
  EXPECT_EQ(core.status("s1")->applied_version, versions["s1"]);
  std::filesystem::remove_all(dir);
}

// A key rotation driven by the controller (ADR 0013): stage at the site, the next key on
// standby at every peer, commit only once every peer has acknowledged it, then the new key is the
// key everywhere.
TEST(ControllerCore, AKeyRotationCommitsOnlyOnceEveryPeerHasTheNextKey) {
  Bench b;
  for (int i = 0; i < 3; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  b.ack_all();
  EXPECT_FALSE(b.core.rotate_key("s0", "nosuch").is_ok());
  ASSERT_TRUE(b.core.rotate_key("s0", "wan0").is_ok());
  EXPECT_FALSE(b.core.rotate_key("s0", "wan0").is_ok()) << "one rotation at a time";
  ASSERT_EQ(b.out.rotations.size(), 1u);
  EXPECT_FALSE(b.out.rotations[0].message.rotate().commit());
  EXPECT_EQ(b.out.rotations[0].session, 0u);

  const std::string next = wg_key_of(50);
  const v1::Keys staged = keys_of("wan0", wg_key_of(0), next);
  ASSERT_TRUE(b.core.report_keys(0, staged).is_ok());
  b.world.run_until(2 * kSec);
  // The peers' configs carry the next key on their path to s0; no commit before they run it.
  for (SessionId peer : {1u, 2u}) {
    const auto& plan = b.out.last(peer)->message.config().config().plan();
    bool standby = false;
    for (const auto& p : plan.paths()) {
      if (p.remote_site() == "s0") {
        standby = p.remote_next_public_key() == raw_key(next);
      }
    }
    EXPECT_TRUE(standby) << "peer " << peer;
  }
  EXPECT_EQ(b.out.rotations.size(), 1u) << "committed before the peers ran the next key";
  EXPECT_NE(b.core.site_views().sites(0).rotation(), "");
  b.ack_all();
  ASSERT_EQ(b.out.rotations.size(), 2u);
  EXPECT_TRUE(b.out.rotations[1].message.rotate().commit());

  const v1::Keys committed = keys_of("wan0", next);
  ASSERT_TRUE(b.core.report_keys(0, committed).is_ok());
  b.world.run_until(3 * kSec);
  EXPECT_EQ(b.core.site_views().sites(0).rotation(), "");
  const auto& plan = b.out.last(1)->message.config().config().plan();
  for (const auto& p : plan.paths()) {
    if (p.remote_site() != "s0") continue;
    EXPECT_EQ(p.remote_public_key(), raw_key(next));
    EXPECT_TRUE(p.remote_next_public_key().empty());
  }
}

// A rotation whose site goes away halfway is driven on when it comes back (the stage or the
// commit again), and a next key the site had staged before (an unfinished earlier rotation, a
// restarted controller) still ends in a commit.
TEST(ControllerCore, AnInterruptedRotationGoesOnWhenTheSiteComesBack) {
  Bench b;
  for (int i = 0; i < 3; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  b.ack_all();
  const std::string next = wg_key_of(60);
  const v1::Keys staged = keys_of("wan0", wg_key_of(0), next);
  // The next key is known before the rotation starts (its earlier run did not finish).
  ASSERT_TRUE(b.core.report_keys(0, staged).is_ok());
  b.world.run_until(2 * kSec);
  b.ack_all();

  ASSERT_TRUE(b.core.rotate_key("s0", "wan0").is_ok());
  b.core.disconnect(0);  // the site stops before it answers the stage
  ASSERT_TRUE(b.core.connect(10, "s0", identity_of(0), "").is_ok());
  ASSERT_EQ(b.out.rotations.size(), 2u);
  EXPECT_EQ(b.out.rotations[1].session, 10u);
  EXPECT_FALSE(b.out.rotations[1].message.rotate().commit()) << "the stage again";
  ASSERT_TRUE(b.core.report_keys(10, staged).is_ok());  // the same next key
  b.world.run_until(3 * kSec);
  b.ack_all();
  ASSERT_EQ(b.out.rotations.size(), 3u) << "no commit: the rotation waits for nothing";
  EXPECT_TRUE(b.out.rotations[2].message.rotate().commit());

  b.core.disconnect(10);  // gone again before it commits
  ASSERT_TRUE(b.core.connect(11, "s0", identity_of(0), "").is_ok());
  ASSERT_EQ(b.out.rotations.size(), 4u);
  EXPECT_TRUE(b.out.rotations[3].message.rotate().commit()) << "the commit again";
  const v1::Keys committed = keys_of("wan0", next);
  ASSERT_TRUE(b.core.report_keys(11, committed).is_ok());
  EXPECT_EQ(b.core.site_views().sites(0).rotation(), "");
  ASSERT_TRUE(b.core.rotate_key("s0", "wan0").is_ok()) << "the next rotation may start";
}

// `sites add` is all or none even when two sites of one request overlap each other; a report of
// a path the site no longer has (sent before it applied its new config) is dropped, not the
// session.
TEST(ControllerCore, AddingIsAllOrNoneAndStaleReportsKeepTheSession) {
  Bench b;
  fleet::Request q;
  for (int i : {7, 8}) {
    auto* s = q.mutable_add_sites()->add_sites();
    s->set_name("n" + std::to_string(i));
    auto* e = s->add_endpoints();
    e->set_name("wan0");
    e->set_address("10.9.9." + std::to_string(i) + ":51820");
    s->add_subnets("172.30.0.0/16");  // the same LAN twice
  }
  auto r = b.core.handle(q);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("sites[1]: subnet 172.30.0.0/16 overlaps site 'n7'"),
            std::string::npos)
      << r.error().message();
  EXPECT_TRUE(b.core.statuses().empty()) << "the first site of a refused request was added";

  for (int i = 0; i < 2; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  v1::FromSite m;
  auto* own = m.mutable_report()->add_paths();
  own->set_id(b.out.last(0)->message.config().config().plan().paths(0).id());
  own->set_state("up");
  auto* stale = m.mutable_report()->add_paths();
  stale->set_id(9999);
  stale->set_state("down");
  ASSERT_TRUE(b.core.receive(0, identity_of(0), m).is_ok());
  EXPECT_TRUE(b.core.session_site(0).has_value()) << "the session was closed";
  EXPECT_EQ(b.core.counters().report_paths_dropped, 1u);
  EXPECT_EQ(b.core.path_views().paths_size(), 1);
  EXPECT_EQ(b.core.site_views().sites(0).paths_up(), 1u);
  EXPECT_EQ(b.core.site_views().sites(0).paths_down(), 0u);
}

// An explicit topology: only the linked pairs have paths; links are checked against the fleet
// and refused with anything but `explicit`.
TEST(ControllerCore, AnExplicitTopologyHasPathsOnlyWhereItsLinksSay) {
  Bench b;
  for (int i = 0; i < 3; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  b.ack_all();
  auto link = [](fleet::Settings& t, const std::string& a, const std::string& bb) {
    auto* l = t.add_links();
    l->set_a_site(a);
    l->set_b_site(bb);
  };
  fleet::Request q;
  q.mutable_set_topology()->set_topology("explicit");
  auto r = b.core.handle(q);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("an explicit topology needs links"), std::string::npos)
      << r.error().message();
  link(*q.mutable_set_topology(), "s0", "ghost");
  r = b.core.handle(q);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("'ghost' is not a site of the fleet"), std::string::npos);
  q.mutable_set_topology()->clear_links();
  link(*q.mutable_set_topology(), "s0", "s1");
  link(*q.mutable_set_topology(), "s1", "s2");
  r = b.core.handle(q);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  const std::int64_t t = b.world.now_ns();
  b.world.run_until(t + 1 * kSec);
  auto remotes = [&](SessionId s) {
    std::set<std::string> out;
    for (const auto& p : b.out.last(s)->message.config().config().plan().paths()) {
      out.insert(p.remote_site());
    }
    return out;
  };
  EXPECT_EQ(remotes(0), (std::set<std::string>{"s1"}));
  EXPECT_EQ(remotes(1), (std::set<std::string>{"s0", "s2"}));
  EXPECT_EQ(remotes(2), (std::set<std::string>{"s1"}));
  // Links belong to explicit only.
  fleet::Request full;
  full.mutable_set_topology()->set_topology("full-mesh");
  link(*full.mutable_set_topology(), "s0", "s1");
  r = b.core.handle(full);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("only an explicit topology has links"), std::string::npos);
}

// The fleet's NetworkPolicies: applied (validated as the sites will load them), carried in every
// site's config, replaced by name, removed, listed; a bad one changes nothing.
TEST(ControllerCore, TheFleetsPoliciesReachEverySiteAndABadOneChangesNothing) {
  Bench b;
  for (int i = 0; i < 2; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  b.ack_all();
  fleet::Request q;
  auto* p = q.mutable_set_policies()->add_apply();
  p->set_ns("prod");
  p->set_name("deny-all");
  p->set_spec_json(R"({"podSelector":{},"policyTypes":["Ingress"]})");
  p->set_enabled(true);
  q.mutable_set_policies()->set_inventory(
      "apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: prod}\n"
      "status: {podIP: 10.1.0.5}\n");
  q.mutable_set_policies()->set_inventory_given(true);
  auto r = b.core.handle(q);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  const std::int64_t t = b.world.now_ns();
  b.world.run_until(t + 1 * kSec);
  for (SessionId s = 0; s < 2; ++s) {
    const auto& c = b.out.last(s)->message.config().config();
    EXPECT_NE(c.fleet_policies().find("deny-all"), std::string::npos) << s;
    EXPECT_NE(c.fleet_policies().find("10.1.0.5"), std::string::npos) << s;
  }
  b.ack_all();
  const std::size_t sent = b.out.sent.size();

  // A spec the sites could not load: refused with the policy's name, nothing pushed.
  fleet::Request bad;
  auto* x = bad.mutable_set_policies()->add_apply();
  x->set_ns("prod");
  x->set_name("broken");
  x->set_spec_json(R"({"podSelector":{},"policyTypes":["Sideways"]})");
  r = b.core.handle(bad);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("prod/broken"), std::string::npos) << r.error().message();
  fleet::Request unknown;
  unknown.mutable_set_policies()->add_remove("prod/ghost");
  r = b.core.handle(unknown);
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("delete: the fleet has no policy prod/ghost"),
            std::string::npos);
  b.world.run_until(b.world.now_ns() + 1 * kSec);
  EXPECT_EQ(b.out.sent.size(), sent);

  fleet::Request list;
  list.mutable_list_policies();
  r = b.core.handle(list);
  ASSERT_EQ(r.policies().policies_size(), 1);
  EXPECT_EQ(r.policies().pods(), 1u);

  // A new topology keeps the fleet's policies and inventory (it used to drop them).
  fleet::Request topo;
  topo.mutable_set_topology()->set_topology("full-mesh");
  r = b.core.handle(topo);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  r = b.core.handle(list);
  ASSERT_EQ(r.policies().policies_size(), 1);
  EXPECT_EQ(r.policies().pods(), 1u);

  // Removed: the sites get configs without it.
  fleet::Request rm;
  rm.mutable_set_policies()->add_remove("prod/deny-all");
  r = b.core.handle(rm);
  ASSERT_FALSE(r.has_error()) << r.error().message();
  b.world.run_until(b.world.now_ns() + 1 * kSec);
  EXPECT_EQ(b.out.last(0)->message.config().config().fleet_policies().find("deny-all"),
            std::string::npos);
}

// Plugin settings: the fleet's for every site, a site's own over it; each site applies them to
// the instances of its own file (an instance it does not run is an error naming it).
TEST(ControllerCore, PluginSettingsReachEverySiteAndASitesOwnOverridesTheFleets) {
  Bench b;
  for (int i = 0; i < 2; ++i) b.join(i);
  b.world.run_until(1 * kSec);
  b.ack_all();
  auto set = [&](const std::string& site, const std::string& config) {
    fleet::Request q;
    auto* sp = q.mutable_set_plugin()->mutable_setting();
    sp->set_instance("probe");
    sp->set_plugin("probes");
    sp->set_config(config);
    sp->set_site(site);
    return b.core.handle(q);
  };
  ASSERT_FALSE(set("", "fleet").has_error());
  ASSERT_FALSE(set("s1", "s1-own").has_error());
  auto r = set("ghost", "x");
  ASSERT_TRUE(r.has_error());
  EXPECT_NE(r.error().message().find("'ghost' is not a site"), std::string::npos);
  b.world.run_until(b.world.now_ns() + 1 * kSec);
  auto probe_config = [&](SessionId s) {
    const auto& c = b.out.last(s)->message.config().config();
    EXPECT_EQ(c.plugins_size(), 1) << s;
    return c.plugins_size() == 1 ? c.plugins(0).config() : std::string();
  };
  EXPECT_EQ(probe_config(0), "fleet");
  EXPECT_EQ(probe_config(1), "s1-own");

  // A site applies them to its own instances.
  site::SiteConfig local;
  auto* mine = local.add_plugins();
  mine->set_plugin("probes");
  mine->set_instance("probe");
  mine->set_config("file");
  const auto& pushed = b.out.last(1)->message.config().config();
  auto merged = site::with_pushed(local, pushed, 3);
  ASSERT_TRUE(merged.is_ok()) << merged.status().to_string();
  EXPECT_EQ(merged.value().plugins(0).config(), "s1-own");
  EXPECT_EQ(merged.value().generation(), 3u);
  mine->set_instance("other");
  merged = site::with_pushed(local, pushed, 3);
  ASSERT_FALSE(merged.is_ok());
  EXPECT_NE(merged.status().message().find("'probe', which this site's file does not run"),
            std::string::npos)
      << merged.status().message();

  // Unset: s1 gets the fleet's again.
  fleet::Request unset;
  unset.mutable_set_plugin()->mutable_setting()->set_instance("probe");
  unset.mutable_set_plugin()->mutable_setting()->set_site("s1");
  unset.mutable_set_plugin()->set_remove(true);
  ASSERT_FALSE(b.core.handle(unset).has_error());
  b.world.run_until(b.world.now_ns() + 1 * kSec);
  EXPECT_EQ(probe_config(1), "fleet");
  fleet::Request list;
  list.mutable_list_plugins();
  EXPECT_EQ(b.core.handle(list).plugins().plugins_size(), 1);
}

// What a site's policy plugins load: its own objects, then the fleet's without those the site
// defines itself (its copy applies, the fleet's are named) instead of a refused duplicate.
TEST(ControllerCore, ASitesOwnPolicyShadowsTheFleetsCopy) {
  const std::string own = R"(---
{"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":"db-deny","namespace":"shop"},"spec":{"podSelector":{}}}
---
apiVersion: v1
kind: Pod
metadata: {name: web}
)";
  const std::string fleet = R"(---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-allow, namespace: shop}
spec: {podSelector: {}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
---
apiVersion: v1
kind: List
items: [{apiVersion: v1, kind: Namespace, metadata: {name: shop}}]
)";
  std::vector<std::string> shadowed;
  const std::string merged = site::merge_policy_documents(own, fleet, &shadowed);
  EXPECT_EQ(shadowed, (std::vector<std::string>{"NetworkPolicy/shop/db-deny", "Pod/default/web"}));
  EXPECT_EQ(merged.rfind(own, 0), 0u) << "the site's own come first, unchanged";
  EXPECT_NE(merged.find("web-allow"), std::string::npos);
  EXPECT_NE(merged.find("Namespace"), std::string::npos);
  EXPECT_EQ(merged.find("app: db"), std::string::npos) << "the fleet's db-deny was kept";
  EXPECT_EQ(site::merge_policy_documents(own, "", &shadowed), own);
}

}  // namespace
}  // namespace patronus::controller
