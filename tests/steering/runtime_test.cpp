// The site runtime in virtual time, with the real probes and scorer plugins through the ABI:
// failover bound on a cut, no false failovers under random loss, brownout and failback, flapping,
// hostile probes. Times are read from the simulator; nothing here sleeps or reads a wall clock.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "patronus/core/plugin_host.hpp"
#include "probe_packet.hpp"
#include "wan_harness.hpp"

namespace {

using namespace patronus;
using test::flow;
using test::kMs;
using test::kSec;

// Sends one packet of each flow every `period` until `until` (traffic keeps paths active). The
// caller keeps the returned handle alive while the world runs.
using Pump = std::shared_ptr<std::function<void()>>;
[[nodiscard]] Pump pump(env::Env& env, steering::SiteRuntime& rt,
                        std::vector<std::pair<model::FlowKey, int>> f, std::int64_t period,
                        std::int64_t until) {
  auto tick = std::make_shared<std::function<void()>>();
  std::weak_ptr<std::function<void()>> weak = tick;
  *tick = [&env, &rt, f, period, until, weak] {
    for (const auto& [k, dscp] : f) rt.on_packet(k, static_cast<std::uint8_t>(dscp), 200);
    if (env.now_ns() + period <= until) {
      env.schedule(period, [weak] {
        if (auto t = weak.lock()) (*t)();
      });
    }
  };
  env.schedule(0, [weak] {
    if (auto t = weak.lock()) (*t)();
  });
  return tick;
}

// A copy: the recorder's vector grows (and moves) while the world runs on.
std::optional<steering::Decision> find_decision(const std::vector<steering::Decision>& ds,
                                                const std::string& cls, steering::Reason r,
                                                std::int64_t after = 0,
                                                const std::string& dst_site = "") {
  for (const auto& d : ds) {
    if (d.cls == cls && d.reason == r && d.mono_ns >= after &&
        (dst_site.empty() || d.dst_site == dst_site)) {
      return d;
    }
  }
  return std::nullopt;
}

std::string two_path_probe(int multiplier) {
  return "interval_ms: 50\nidle_interval_ms: 1000\ndetect_multiplier: " +
         std::to_string(multiplier) + "\n";
}

// Decisions from `from` on are only a balanced class's set completing (its second path's
// eligibility hold), never a move.
void expect_nothing_moved(const test::Recorder& r, std::size_t from) {
  for (std::size_t i = from; i < r.decisions.size(); ++i) {
    EXPECT_EQ(r.decisions[i].reason, steering::Reason::kRebalance) << r.decisions[i].why;
  }
}

// hq has two WAN endpoints, b one: two paths, 25 ms each way (50 ms RTT).
void two_paths(test::Wan& w, env::LinkParams link = {25 * kMs, 0, 0.0, true}) {
  w.add_site({"hq", {{"wan0", "10.0.0.1"}, {"wan1", "10.0.1.1"}}, "192.168.1.0/24"});
  w.add_site({"b", {{"wan0", "10.0.0.2"}}, "192.168.2.0/24"});
  w.add_path({"hq", "wan0", "b", "wan0", link});
  w.add_path({"hq", "wan1", "b", "wan0", link});
}

TEST(SiteRuntime, CutIsDetectedWithinTheBoundAndFlowsMoveInTheSameTick) {
  test::Wan w(11);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);  // RTP: voice
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 20 * kSec);
  w.world().run_until(5 * kSec);
  const model::PathId before = hq.class_path("b", "voice");
  ASSERT_TRUE(before.valid());
  // Start-up reports each path once it is measured: up, never a "down" before anything was heard.
  std::map<std::uint64_t, model::PathStatus> first;
  for (const auto& [id, status] : w.node("hq").recorder.states) first.emplace(id.value(), status);
  ASSERT_EQ(first.size(), 2u);
  for (const auto& [id, status] : first) {
    EXPECT_EQ(status, model::PathStatus::kUp)
        << "path " << id << " was first reported " << model::to_string(status);
  }
  EXPECT_EQ(hq.path(before)->rate, PATRONUS_PROBE_RATE_ACTIVE);
  EXPECT_EQ(hq.on_packet(voice, 46, 100), before);
  const std::int64_t cut = w.world().now_ns();
  w.set_up(before.value(), false);
  w.world().run_until(8 * kSec);

  const auto d =
      find_decision(w.node("hq").recorder.decisions, "voice", steering::Reason::kPathDown, cut);
  ASSERT_TRUE(d.has_value()) << "no failover decision";
  EXPECT_EQ(d->from, before);
  ASSERT_TRUE(d->to.valid());
  EXPECT_NE(d->to, before);
  // M x interval + one-way delay + one interval of transmit jitter.
  const std::int64_t bound = 4 * 50 * kMs + 25 * kMs + 50 * kMs;
  const std::int64_t took = d->mono_ns - cut;
  EXPECT_LE(took, bound) << "detected after " << took / 1e6 << " ms";
  EXPECT_GT(took, 100 * kMs) << "detected implausibly early: " << took / 1e6 << " ms";
  std::cout << "[measured] cut to failover decision: " << took / 1e6 << " ms (bound " << bound / 1e6
            << " ms)\n";
  // Replies already in flight at the cut still arrive: the last good evidence is at least one
  // detection time old when the path is declared down.
  EXPECT_GE(d->fault_age_ns, 4 * 50 * kMs);
  EXPECT_EQ(d->flows_moved, 1u);
  // The forwarding change happened in the same tick as the decision.
  bool changed = false;
  for (const auto& c : w.node("hq").dataplane->changes()) {
    if (!c.is_flow && c.cls == "voice" && c.path == d->to && c.at_ns == d->mono_ns) changed = true;
  }
  EXPECT_TRUE(changed);
  EXPECT_EQ(hq.on_packet(voice, 46, 100), d->to);
  EXPECT_EQ(hq.path(before)->status, model::PathStatus::kDown);
  // The JSON record says why.
  EXPECT_NE(d->to_json().find("\"reason\":\"failover-path-down\""), std::string::npos);
  EXPECT_NE(d->why.find("is down"), std::string::npos) << d->why;
  w.stop();
}

// With a transport, a path whose tunnel the transport reports down is not used although its probes
// still answer (the virtual link stays up): the class moves off it at once, the decision says
// why, and the path is usable again once its tunnel is up.
TEST(SiteRuntime, APathWhoseTunnelIsReportedDownIsNotUsed) {
  core::PluginRegistry reg;  // outlives the routers holding its library
  auto transport = reg.load_file(test::test_plugin_dir() + "/libpatronus-test-transport.so");
  ASSERT_TRUE(transport.is_ok()) << transport.status().to_string();
  test::Wan w(12);
  w.use_transport(transport.value());
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 30 * kSec);
  w.world().run_until(5 * kSec);
  const model::PathId before = hq.class_path("b", "voice");
  ASSERT_TRUE(before.valid());
  ASSERT_TRUE(hq.path(before)->tunnel.has_value()) << "the transport's reports reach the runtime";
  EXPECT_TRUE(hq.path(before)->tunnel->up);

  patronus_path_desc down{};
  down.path_id = before.value();
  down.interface_name = "wg-wan0";
  down.keepalive_s = 0;  // the double's "no handshake"
  ASSERT_TRUE(w.node("hq").router->path_up("tunnel", down).is_ok());
  const std::int64_t t0 = w.world().now_ns();
  w.world().run_until(t0 + kSec);

  const auto d =
      find_decision(w.node("hq").recorder.decisions, "voice", steering::Reason::kPathDown, t0);
  ASSERT_TRUE(d.has_value()) << "the class stayed on a path whose tunnel is down";
  EXPECT_EQ(d->from, before);
  EXPECT_NE(d->to, before);
  EXPECT_LE(d->mono_ns - t0, 1 * kMs) << "moved when the report arrived, not at a later probe";
  bool said_why = false;
  for (const auto& c : d->candidates) {
    if (c.path == before) {
      said_why = c.why_not == "tunnel down (no handshake within the reject window)";
    }
  }
  EXPECT_TRUE(said_why) << d->to_json();
  EXPECT_TRUE(hq.path(before)->live) << "its probes still answer";
  EXPECT_EQ(hq.path(before)->status, model::PathStatus::kDown);
  EXPECT_EQ(hq.on_packet(voice, 46, 100), d->to);

  down.keepalive_s = 25;  // the tunnel is back
  ASSERT_TRUE(w.node("hq").router->path_up("tunnel", down).is_ok());
  w.world().run_until(t0 + 2 * kSec);
  EXPECT_TRUE(hq.path(before)->tunnel->up);
  EXPECT_NE(hq.path(before)->status, model::PathStatus::kDown);
  EXPECT_EQ(hq.counters().tunnel_changes, 4u) << "both paths up, then this one down and up";
  w.stop();
}

// A peer that is not a Patronus site (a partner's IKEv2 gateway) answers no probes: its path is
// never probed, has no score, and is usable exactly while its transport reports the tunnel up. The
// class to the peer follows the tunnel; nothing is invented in place of measurements.
TEST(SiteRuntime, APathToAPeerThatIsNotOursFollowsItsTunnelAndIsNeverProbed) {
  core::PluginRegistry reg;
  auto transport = reg.load_file(test::test_plugin_dir() + "/libpatronus-test-transport.so");
  ASSERT_TRUE(transport.is_ok()) << transport.status().to_string();
  test::Wan w(21);
  w.use_transport(transport.value(), {"ike"});
  w.add_site({"hq", {{"wan0", "10.0.0.1"}, {"corp", "10.0.1.1"}}, "192.168.1.0/24"});
  w.add_site({"b", {{"wan0", "10.0.0.2"}}, "192.168.2.0/24"});
  w.add_site({"partner", {{"gw", "10.0.9.9"}}, "172.16.0.0/24", /*external=*/true});
  w.add_path({"hq", "wan0", "b", "wan0", {25 * kMs, 0, 0.0, true}});
  test::Wan::PathDef peer{"hq", "corp", "partner", "gw", {25 * kMs, 0, 0.0, true}};
  peer.transport = "ipsec";
  const auto peer_id = model::PathId(w.add_path(peer));
  w.start(two_path_probe(4), [](steering::RuntimeConfig& rc) {
    rc.transports = {{"wireguard", "tunnel"}, {"ipsec", "ike"}};
  });
  auto& hq = w.rt("hq");
  const auto to_peer = flow("192.168.1.10", "172.16.0.20", 20000, 443);
  const Pump traffic = pump(*w.node("hq").env, hq, {{to_peer, 0}}, 20 * kMs, 10 * kSec);
  w.world().run_until(3 * kSec);
  const auto v = hq.path(peer_id);
  ASSERT_TRUE(v.has_value());
  EXPECT_FALSE(v->probed);
  EXPECT_EQ(v->stats.samples, 0u) << "nothing is sent to or measured from a peer without probes";
  EXPECT_FALSE(v->scored);
  ASSERT_TRUE(v->tunnel.has_value()) << "the ipsec instance reports the peer's tunnel";
  EXPECT_EQ(v->status, model::PathStatus::kUp);
  EXPECT_EQ(hq.class_path("partner", "default"), peer_id);
  EXPECT_EQ(hq.on_packet(to_peer, 0, 100), peer_id);
  const auto first = find_decision(w.node("hq").recorder.decisions, "default",
                                   steering::Reason::kInitial, 0, "partner");
  ASSERT_TRUE(first.has_value());
  EXPECT_NE(first->why.find("not probed (the peer is not a Patronus site)"), std::string::npos)
      << first->why;
  // The other site's path is probed and scored as ever, through its own transport instance.
  EXPECT_TRUE(hq.path(model::PathId(1))->scored);

  // The tunnel goes down (reported by the instance that built it, "ike"): nothing is left to
  // the peer, and the decision says why.
  patronus_path_desc down{};
  down.path_id = peer_id.value();
  down.interface_name = "ipsec0";
  down.keepalive_s = 0;
  ASSERT_TRUE(w.node("hq").router->path_up("ike", down).is_ok());
  const std::int64_t t0 = w.world().now_ns();
  w.world().run_until(t0 + kSec);
  const auto gone = find_decision(w.node("hq").recorder.decisions, "default",
                                  steering::Reason::kNoPath, t0, "partner");
  ASSERT_TRUE(gone.has_value()) << "the class stayed on a peer path whose tunnel is down";
  ASSERT_EQ(gone->candidates.size(), 1u);
  EXPECT_EQ(gone->candidates[0].why_not, "tunnel down (no handshake within the reject window)");
  EXPECT_EQ(hq.path(peer_id)->status, model::PathStatus::kDown);
  // The WireGuard instance reporting this path up changes nothing: it does not build it.
  patronus_path_desc stray = down;
  stray.keepalive_s = 25;
  const auto changes = hq.counters().tunnel_changes;
  ASSERT_TRUE(w.node("hq").router->path_up("tunnel", stray).is_ok());
  w.world().run_until(t0 + 2 * kSec);
  EXPECT_EQ(hq.counters().tunnel_changes, changes) << "a report of the wrong instance was taken";
  EXPECT_FALSE(hq.class_path("partner", "default").valid());
  EXPECT_EQ(hq.path(peer_id)->status, model::PathStatus::kDown);
  EXPECT_FALSE(hq.path(peer_id)->tunnel->up);
  ASSERT_TRUE(w.node("hq").router->path_down("tunnel", peer_id.value()).is_ok());

  down.keepalive_s = 25;
  ASSERT_TRUE(w.node("hq").router->path_up("ike", down).is_ok());
  w.world().run_until(t0 + 3 * kSec);
  EXPECT_EQ(hq.class_path("partner", "default"), peer_id);
  EXPECT_EQ(hq.path(peer_id)->stats.samples, 0u);
  w.stop();
}

TEST(SiteRuntime, BatchedPacketsAreSteeredAndCountedLikeSinglePackets) {
  test::Wan w(16);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  w.world().run_until(3 * kSec);
  std::vector<steering::SiteRuntime::Packet> batch;
  for (int i = 0; i < 70; ++i) {
    // Mixed classes, and every 10th packet to a destination no site announces.
    const std::string dst = i % 10 == 9 ? "203.0.113.7" : "192.168.2.20";
    batch.push_back(
        {flow("192.168.1.10", dst, static_cast<std::uint16_t>(20000 + i), i % 2 ? 20002 : 443),
         static_cast<std::uint8_t>(i % 3 ? 0 : 46), 100});
  }
  std::vector<model::PathId> out(batch.size());
  hq.on_packets(batch.data(), batch.size(), out.data());  // all new
  hq.on_packets(batch.data(), batch.size(), out.data());  // all tracked (or unrouted)
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const auto single = hq.on_packet(batch[i].key, batch[i].dscp, batch[i].bytes);
    EXPECT_EQ(out[i], single) << i;
    EXPECT_EQ(out[i].valid(), i % 10 != 9) << i;
  }
  ASSERT_EQ(hq.flows().size(), 63u);  // 70 minus the 7 unrouted
  for (std::uint32_t i = 0; i < hq.flows().size(); ++i) {
    EXPECT_EQ(hq.flows().at(i).packets, 3u);
    EXPECT_EQ(hq.flows().at(i).bytes, 300u);
  }
  EXPECT_EQ(hq.counters().flows_unrouted, 21u);
  w.stop();
}

TEST(SiteRuntime, DownPathsKeepBeingProbedAndRecover) {
  test::Wan w(12);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  w.world().run_until(3 * kSec);
  ASSERT_TRUE(hq.path(model::PathId(1))->live);
  w.set_up(1, false);
  w.world().run_until(10 * kSec);
  EXPECT_FALSE(hq.path(model::PathId(1))->live);
  w.set_up(1, true);
  w.world().run_until(13 * kSec);
  EXPECT_TRUE(hq.path(model::PathId(1))->live);
  // Live again at once; its status follows the window, which still holds the outage's losses
  // until they age out (10 s).
  EXPECT_GT(hq.path(model::PathId(1))->stats.loss_pct, 30.0);
  w.world().run_until(25 * kSec);
  EXPECT_EQ(hq.path(model::PathId(1))->stats.loss_pct, 0.0);
  EXPECT_EQ(hq.path(model::PathId(1))->status, model::PathStatus::kUp);
  w.stop();
}

// 90 paths, 1 % random loss in each direction (about 2 % of round trips), one simulated hour,
// default probe settings (50 ms active, detect multiplier 5): no path is declared down, no flow
// moves. The class tolerates the loss (its thresholds are not what is tested here: liveness is).
TEST(SiteRuntime, NinetyLossyPathsForAnHourCauseNoFalseFailover) {
  test::Wan w(2026);
  std::vector<test::HarnessEndpoint> hq_eps = {{"wan0", "10.0.0.1"}, {"wan1", "10.0.1.1"}};
  w.add_site({"hq", hq_eps, "192.168.0.0/24"});
  const env::LinkParams lossy{10 * kMs, 2 * kMs, 0.01, true};
  std::vector<std::pair<model::FlowKey, int>> flows;
  for (int i = 0; i < 45; ++i) {
    const std::string name = "s" + std::to_string(i);
    const std::string net = "10.100." + std::to_string(i) + ".0/24";
    w.add_site({name, {{"wan0", "10.1." + std::to_string(i) + ".1"}}, net});
    w.add_path({"hq", "wan0", name, "wan0", lossy});
    w.add_path({"hq", "wan1", name, "wan0", lossy});
    for (int f = 0; f < 4; ++f) {
      flows.push_back({flow("192.168.0.5", "10.100." + std::to_string(i) + ".9",
                            static_cast<std::uint16_t>(30000 + f), 443, model::IpProtocol::kTcp),
                       0});
    }
  }
  w.start("stats_interval_ms: 0\n", [](steering::RuntimeConfig& rc) {
    steering::ClassSpec data;
    data.name = "data";
    data.priority = model::Priority::kNormal;
    data.balance = true;
    data.max_loss_pct = 10;
    rc.classes.classes = {data};
    rc.classes.rules.clear();
    rc.classes.default_class = "data";
  });
  auto& hq = w.rt("hq");
  const Pump traffic = pump(*w.node("hq").env, hq, flows, 1 * kSec, 3600 * kSec);
  w.world().run_until(3600 * kSec);
  const auto& c = hq.counters();
  EXPECT_EQ(c.failovers, 0u);
  for (const auto& d : w.node("hq").recorder.decisions) {
    if (d.reason == steering::Reason::kThreshold || d.reason == steering::Reason::kPathDown ||
        d.reason == steering::Reason::kNoPath) {
      ADD_FAILURE() << d.to_json();
    }
  }
  EXPECT_EQ(c.liveness_changes, 90u) << "every path came up once and never went down";
  std::uint64_t probes = 0, lost = 0;
  for (const auto& p : hq.paths()) {
    EXPECT_TRUE(p.live) << p.name;
    EXPECT_EQ(p.rate, PATRONUS_PROBE_RATE_ACTIVE) << p.name;  // balanced: both carry flows
    probes += p.stats.samples;
    lost += p.stats.lost;
  }
  // The links really lose about 2 % of round trips.
  EXPECT_GT(lost * 1000, probes * 10);
  EXPECT_LT(lost * 1000, probes * 35);
  std::size_t moves = 0;
  for (const auto& d : w.node("hq").recorder.decisions) {
    if (d.reason != steering::Reason::kInitial && d.mono_ns > 30 * kSec) {
      moves += d.flows_moved;
      ADD_FAILURE() << d.to_json();
    }
  }
  EXPECT_EQ(moves, 0u);
  EXPECT_GT(c.samples, 90u * 3600u * 19u) << "probes ran at the active rate all hour";
  std::cout << "[measured] 90 paths, 1 h: " << c.samples << " samples, window loss "
            << 100.0 * static_cast<double>(lost) / static_cast<double>(probes) << " %, failovers "
            << c.failovers << ", liveness changes " << c.liveness_changes << "\n";
  w.stop();
}

TEST(SiteRuntime, BrownoutMovesCriticalFlowsLeavesBestEffortAndFailsBackAfterHoldDown) {
  test::Wan w(13);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const auto web = flow("192.168.1.10", "192.168.2.20", 40000, 8080, model::IpProtocol::kTcp);
  ASSERT_EQ(hq.classify(voice, 46), "voice");
  ASSERT_EQ(hq.classify(web, 0), "default");
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}, {web, 0}}, 20 * kMs, 120 * kSec);
  w.world().run_until(12 * kSec);
  const model::PathId a = hq.class_path("b", "voice");
  ASSERT_EQ(hq.class_path("b", "default"), a);
  // Brownout: 5 % loss on the path carrying both.
  const std::int64_t brown = w.world().now_ns();
  w.set_link(a.value(), {25 * kMs, 0, 0.025, true});
  w.world().run_until(40 * kSec);
  const auto& ds = w.node("hq").recorder.decisions;
  const auto moved = find_decision(ds, "voice", steering::Reason::kThreshold, brown);
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->from, a);
  EXPECT_NE(moved->why.find("loss"), std::string::npos) << moved->why;
  EXPECT_NE(hq.class_path("b", "voice"), a);
  EXPECT_EQ(hq.class_path("b", "default"), a) << "best-effort has no thresholds: it stays";
  EXPECT_FALSE(find_decision(ds, "default", steering::Reason::kThreshold, brown).has_value());
  // Recovery: the old path must stay good for the class's hold-down before voice fails back.
  const std::int64_t recovered = w.world().now_ns();
  w.set_link(a.value(), {25 * kMs, 0, 0.0, true});
  w.world().run_until(80 * kSec);
  const auto back = find_decision(ds, "voice", steering::Reason::kFailback, recovered);
  ASSERT_TRUE(back.has_value()) << "voice never failed back";
  EXPECT_EQ(back->to, a);
  const auto hold = steering::default_classes("").classes[0].hold_down_ns;
  EXPECT_GE(back->mono_ns - recovered, hold);
  EXPECT_NE(back->why.find("hold-down"), std::string::npos) << back->why;
  EXPECT_EQ(hq.class_path("b", "voice"), a);
  std::cout << "[measured] brownout to voice failover: " << (moved->mono_ns - brown) / 1e6
            << " ms; recovery to failback: " << (back->mono_ns - recovered) / 1e6 << " ms\n";
  w.stop();
}

// An idle path is probed once a second: two lost probes in its 10-probe window read as 20 % loss.
// That is not enough to take it from a class; the path is probed at the active rate until the
// verdict rests on confirm_samples probes. A real brownout is confirmed and moves the class.
TEST(SiteRuntime, FewLostProbesOnAnIdlePathAreConfirmedBeforeTheyMoveAClass) {
  test::Wan w(16);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  w.world().run_until(30 * kSec);
  const model::PathId a = hq.class_path("b", "voice");
  ASSERT_TRUE(a.valid());
  auto rate_of = [&](model::PathId id) { return hq.path(id)->rate; };
  ASSERT_EQ(rate_of(a), PATRONUS_PROBE_RATE_IDLE) << "no traffic: idle probing";
  // 1.5 s without delivery: one or two probes lost, far from the 4 s idle detection time.
  const std::int64_t blip = w.world().now_ns();
  w.set_up(a.value(), false);
  w.world().run_until(blip + 1500 * kMs);
  w.set_up(a.value(), true);
  bool confirmed_fast = false;
  for (int i = 0; i < 40; ++i) {
    w.world().run_until(w.world().now_ns() + 250 * kMs);
    confirmed_fast = confirmed_fast || rate_of(a) == PATRONUS_PROBE_RATE_ACTIVE;
  }
  EXPECT_TRUE(confirmed_fast) << "the verdict was not confirmed at the active rate";
  const auto& ds = w.node("hq").recorder.decisions;
  for (const auto& d : ds) {
    if (d.mono_ns >= blip) ADD_FAILURE() << "moved on two lost probes: " << d.to_json();
  }
  EXPECT_EQ(hq.class_path("b", "voice"), a);
  EXPECT_EQ(hq.counters().liveness_changes, 2u) << "the blip was not a liveness event";
  w.world().run_until(w.world().now_ns() + 15 * kSec);
  EXPECT_EQ(rate_of(a), PATRONUS_PROBE_RATE_IDLE) << "back to idle once confirmed";
  // And really idle: one probe a path every 0.9 to 1 s (the confirmation switched the rate twice;
  // ProbePlugin.ARateChangeMadeInsideItsOwnReportLeavesOneTransmitChain guards the plugin side).
  const auto samples = hq.counters().samples;
  w.world().run_until(w.world().now_ns() + 30 * kSec);
  EXPECT_GE(hq.counters().samples - samples, 2u * 29u);
  EXPECT_LE(hq.counters().samples - samples, 2u * 34u);
  // A real brownout on the idle path: confirmed, and the class moves.
  const std::int64_t brown = w.world().now_ns();
  // (An idle window holds 10 probes: the doubt needs two of them lost, so it can take a while.)
  w.set_link(a.value(), {25 * kMs, 0, 0.08, true});
  w.world().run_until(brown + 60 * kSec);
  const auto moved = find_decision(ds, "voice", steering::Reason::kThreshold, brown);
  ASSERT_TRUE(moved.has_value()) << "a 15 % round-trip loss brownout did not move voice";
  EXPECT_EQ(moved->from, a);
  std::cout << "[measured] idle-path brownout to move (confirmed at the active rate): "
            << (moved->mono_ns - brown) / 1e6 << " ms\n";
  w.stop();
}

// The probe plugin on its own, with a host that calls back into it from inside its reports (the
// runtime defers its rate changes; another host may not): each lost probe's report switches the
// path's rate. The plugin must keep one transmit chain: once left idle, it sends one probe a
// second (it once kept a second chain running for every such switch).
// A reflector's claimed residence (t3 - t2) is subtracted from the round trip up to 5 ms only: one
// that claims to have held the probe for the whole round trip cannot make its path look free.
TEST(ProbePacket, AReflectorsResidenceIsCapped) {
  bool capped = true;
  EXPECT_EQ(probes::round_trip_ns(0, 30'000'000, 100, 400, &capped), 30'000'000 - 300);
  EXPECT_FALSE(capped);
  EXPECT_EQ(probes::round_trip_ns(0, 30'000'000, 0, 30'000'000, &capped), 25'000'000);
  EXPECT_TRUE(capped);
  EXPECT_EQ(probes::round_trip_ns(0, 3'000'000, 0, 30'000'000), 0);       // never negative
  EXPECT_EQ(probes::round_trip_ns(0, 30'000'000, 500, 100), 30'000'000);  // t3 < t2: ignored
}

TEST(ProbePlugin, ARateChangeMadeInsideItsOwnReportLeavesOneTransmitChain) {
  core::PluginRegistry reg;
  auto lib = reg.load_file(test::plugin_dir() + "/libpatronus-probes.so");
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  env::VirtualWorld world(31);
  const auto ia = model::IpAddress::parse("10.0.0.1").value();
  const auto ib = model::IpAddress::parse("10.0.0.2").value();
  auto& ea = world.add_node("a", {ia});
  auto& eb = world.add_node("b", {ib});
  const env::LinkParams link{10 * kMs, 0, 0.0, true};
  world.set_link(ia, ib, link);
  world.set_link(ib, ia, link);
  core::RouterInstance a(ea, "a"), b(eb, "b");
  auto config = lib.value()->schema()->text_to_bytes(
      "interval_ms: 50\nidle_interval_ms: 1000\ndetect_multiplier: 4\n", "probe");
  ASSERT_TRUE(config.is_ok()) << config.status().message();
  ASSERT_TRUE(a.add_plugin(lib.value(), "probe", config.value()).is_ok());
  ASSERT_TRUE(b.add_plugin(lib.value(), "probe", config.value()).is_ok());
  struct Reentrant : core::RouterObserver {
    core::RouterInstance* router = nullptr;
    std::uint64_t samples = 0, switches = 0;
    bool active = false, toggle = true;
    void on_sample(const std::string&, const patronus_path_sample& s) override {
      ++samples;
      if (!s.lost || !toggle) return;
      active = !active;  // inside the plugin's own report
      if (router
              ->set_path_rate("probe", s.path_id,
                              active ? PATRONUS_PROBE_RATE_ACTIVE : PATRONUS_PROBE_RATE_IDLE)
              .is_ok()) {
        ++switches;
      }
    }
  } obs;
  obs.router = &a;
  a.set_observer(&obs);
  ASSERT_TRUE(a.start().is_ok());
  ASSERT_TRUE(b.start().is_ok());
  auto desc = [](const model::IpAddress& l, const model::IpAddress& r) {
    patronus_path_desc d{};
    d.struct_size = sizeof d;
    d.path_id = 1;
    d.local = model::SocketAddress(l, 7410).to_abi();
    d.remote = model::SocketAddress(r, 7410).to_abi();
    d.session_id = 77;
    d.rate = PATRONUS_PROBE_RATE_IDLE;
    d.key_len = 32;
    std::memset(d.key, 0x5a, 32);
    return d;
  };
  ASSERT_TRUE(a.watch_path("probe", desc(ia, ib)).is_ok());
  ASSERT_TRUE(b.watch_path("probe", desc(ib, ia)).is_ok());
  // Lost probes, each switching the rate inside its report.
  for (int i = 0; i < 8; ++i) {
    world.run_until(world.now_ns() + 3 * kSec);
    world.set_link_up(ia, ib, i % 2 == 1);
  }
  world.set_link_up(ia, ib, true);
  ASSERT_GE(obs.switches, 4u) << "the test did not exercise the re-entrant path";
  // Settle idle (the last switch may have left it active), then count.
  obs.toggle = false;
  ASSERT_TRUE(a.set_path_rate("probe", 1, PATRONUS_PROBE_RATE_IDLE).is_ok());
  world.run_until(world.now_ns() + 5 * kSec);
  const auto before = obs.samples;
  world.run_until(world.now_ns() + 30 * kSec);
  EXPECT_GE(obs.samples - before, 29u);
  EXPECT_LE(obs.samples - before, 34u) << "more than one transmit chain";
  a.stop();
  b.stop();
}

TEST(SiteRuntime, AFlappingPathCausesABoundedNumberOfMoves) {
  test::Wan w(14);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 100 * kSec);
  w.world().run_until(10 * kSec);
  const model::PathId a = hq.class_path("b", "voice");
  // Down and up every second for 30 s.
  for (int i = 0; i < 30; ++i) {
    w.set_up(a.value(), i % 2 == 1);
    w.world().run_until(w.world().now_ns() + kSec);
  }
  w.set_up(a.value(), true);
  w.world().run_until(100 * kSec);
  std::size_t moves = 0;
  for (const auto& d : w.node("hq").recorder.decisions) {
    if (d.cls == "voice" && d.mono_ns > 10 * kSec) ++moves;
  }
  // One failover when the flapping starts, one failback after it stopped and the hold-down.
  EXPECT_EQ(moves, 2u);
  EXPECT_EQ(hq.class_path("b", "voice"), a);
  w.stop();
}

TEST(SiteRuntime, ForgedReplayedTruncatedAndUnknownProbesAreDroppedAndCounted) {
  test::Wan w(15);
  two_paths(w);
  w.add_site({"mallory", {{"m", "10.9.9.9"}}, "192.168.99.0/24"});
  // Answering the source (the NAT option): mallory's requests reach the replay checks.
  w.start(two_path_probe(4) + "reply_to_source: true\n");
  w.world().set_link(model::IpAddress::parse("10.9.9.9").value(),
                     model::IpAddress::parse("10.0.0.1").value(), {1 * kMs, 0, 0, true});
  w.world().run_until(2 * kSec);
  // Mallory's socket.
  env::Env& m = *w.node("mallory").env;
  env::EndpointId ep = 0;
  model::SocketAddress bound;
  ASSERT_TRUE(m.open_udp(
                   model::SocketAddress::parse("10.9.9.9:7410").value(),
                   [](const model::SocketAddress&, const std::uint8_t*, std::size_t) {}, &ep,
                   &bound)
                  .is_ok());
  const auto to = model::SocketAddress::parse("10.0.0.1:7410").value();
  const auto spec = w.spec(1, /*from_a=*/false);  // b's view of path 1: b knows the key
  probes::PathKey key;
  std::copy(spec.probe_key.begin(), spec.probe_key.end(), key.begin());
  auto send = [&](const std::vector<std::uint8_t>& bytes) {
    ASSERT_TRUE(m.send_udp(ep, to, bytes.data(), bytes.size()).is_ok());
  };
  std::vector<std::uint8_t> pkt(64);
  probes::Packet p;
  p.type = probes::Type::kRequest;
  p.session = spec.session_id;
  p.nonce = ~std::uint64_t{0} - 1;  // above the real sender's epochs (an older one: old_epoch)
  p.sequence = 100;
  p.t1 = 1;
  probes::encode(p, key, pkt.data());
  send({pkt.begin(), pkt.begin() + 10});  // truncated
  send(pkt);                              // valid: reflected
  send(pkt);                              // the same again: replayed
  p.sequence = 20;
  probes::encode(p, key, pkt.data());
  send(pkt);  // far below the window: stale
  auto forged = pkt;
  forged[20] ^= 1;  // tampered sequence, tag no longer matches
  send(forged);
  p.session ^= 0x5a5a5a5a;
  probes::encode(p, key, pkt.data());
  send(pkt);  // unknown session
  probes::PathKey wrong{};
  p.session = spec.session_id;
  p.type = probes::Type::kReply;
  p.sequence = 1;
  probes::encode(p, wrong, pkt.data());
  send(pkt);  // a reply under the wrong key: forged
  w.world().run_until(3 * kSec);
  w.stop();  // the probe publishes its counters when stopped
  const std::string c = w.node("hq").recorder.last_event("probe.counters");
  ASSERT_FALSE(c.empty());
  EXPECT_NE(c.find("\"malformed\":1,"), std::string::npos) << c;
  EXPECT_NE(c.find("\"unknown_session\":1,"), std::string::npos) << c;
  EXPECT_NE(c.find("\"bad_tag\":2,"), std::string::npos) << c;
  EXPECT_NE(c.find("\"replayed\":1,"), std::string::npos) << c;
  EXPECT_NE(c.find("\"stale\":1,"), std::string::npos) << c;
  // Nothing of it was scored: every sample the runtime took is one of hq's own probes, answered
  // in time or lost (the probe's accounting), and the one valid request was only reflected.
  const auto counters = nlohmann::json::parse(c);
  const auto& cnt = w.rt("hq").counters();
  EXPECT_EQ(cnt.samples,
            counters["replies"].get<std::uint64_t>() + counters["lost"].get<std::uint64_t>());
  EXPECT_GT(counters["reflected"].get<std::uint64_t>(), 0u);
}

// The reflector cannot be aimed or amplify: it answers a path's probes only at the path's remote
// endpoint (a request from any other source, even authentic, gets nothing), never with more bytes
// than the request, and never again for an epoch older than the newest once its window is gone.
TEST(SiteRuntime, TheReflectorAnswersOnlyItsPeerNeverLongerAndNoEvictedEpoch) {
  for (const bool nat : {false, true}) {
    test::Wan w(16);
    two_paths(w);
    w.add_site({"mallory", {{"m", "10.9.9.9"}}, "192.168.99.0/24"});
    w.start(two_path_probe(4) + "payload_size: 1400\n" + (nat ? "reply_to_source: true\n" : ""));
    const auto mal = model::IpAddress::parse("10.9.9.9").value();
    const auto hq = model::IpAddress::parse("10.0.0.1").value();
    w.world().set_link(mal, hq, {1 * kMs, 0, 0, true});
    w.world().set_link(hq, mal, {1 * kMs, 0, 0, true});  // where an answer would go
    w.world().run_until(2 * kSec);
    env::Env& m = *w.node("mallory").env;
    env::EndpointId ep = 0;
    model::SocketAddress bound;
    std::vector<std::size_t> answers;  // sizes of what reached mallory
    ASSERT_TRUE(m.open_udp(
                     model::SocketAddress::parse("10.9.9.9:7410").value(),
                     [&](const model::SocketAddress&, const std::uint8_t*, std::size_t n) {
                       answers.push_back(n);
                     },
                     &ep, &bound)
                    .is_ok());
    const auto to = model::SocketAddress::parse("10.0.0.1:7410").value();
    const auto spec = w.spec(1, /*from_a=*/false);
    probes::PathKey key;
    std::copy(spec.probe_key.begin(), spec.probe_key.end(), key.begin());
    auto request = [&](std::uint64_t nonce, std::uint64_t seq) {
      std::vector<std::uint8_t> pkt(64);
      probes::Packet p;
      p.type = probes::Type::kRequest;
      p.session = spec.session_id;
      p.nonce = nonce;
      p.sequence = seq;
      p.t1 = 1;
      probes::encode(p, key, pkt.data());
      ASSERT_TRUE(m.send_udp(ep, to, pkt.data(), pkt.size()).is_ok());
      w.world().run_until(w.world().now_ns() + 10 * kMs);
    };
    const std::uint64_t base = ~std::uint64_t{0} - 100;  // above every real sender epoch
    request(base, 1);                                    // authentic, from another address
    if (!nat) {
      EXPECT_TRUE(answers.empty()) << "a spoofed source got an answer";
      w.stop();
      const auto c = nlohmann::json::parse(w.node("hq").recorder.last_event("probe.counters"));
      EXPECT_EQ(c["wrong_source"].get<int>(), 1);
      continue;
    }
    ASSERT_EQ(answers.size(), 1u) << w.node("hq").recorder.last_event("probe.counters");
    EXPECT_EQ(answers[0], 64u) << "a 64-byte request got a longer answer";
    for (std::uint64_t e = 1; e <= 4; ++e) request(base + e, 1);  // four newer epochs
    ASSERT_EQ(answers.size(), 5u);
    request(base, 2);  // the first epoch's window is gone: a replay of captured requests
    EXPECT_EQ(answers.size(), 5u) << "an evicted epoch was answered again";
    w.stop();
    const auto c = nlohmann::json::parse(w.node("hq").recorder.last_event("probe.counters"));
    EXPECT_EQ(c["old_epoch"].get<int>(), 1);
  }
}

TEST(SiteRuntime, DecisionTimestampsComeFromTheEnvAndRunsAreDeterministic) {
  auto run = [](std::uint64_t seed) {
    test::Wan w(seed);
    two_paths(w, {25 * kMs, 3 * kMs, 0.01, true});
    w.world().set_wall_epoch_ns(1'700'000'000LL * kSec);
    w.start(two_path_probe(4), [](steering::RuntimeConfig& rc) { rc.decision_log = 4; });
    const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
    const Pump traffic = pump(*w.node("hq").env, w.rt("hq"), {{voice, 46}}, 20 * kMs, 20 * kSec);
    w.world().run_until(5 * kSec);
    w.set_up(1, false);
    w.set_up(2, false);
    w.world().run_until(20 * kSec);
    std::string out;
    for (const auto& d : w.node("hq").recorder.decisions) {
      EXPECT_EQ(d.wall_ns, 1'700'000'000LL * kSec + d.mono_ns);
      out += std::to_string(d.wall_ns) + " " + d.to_json() + "\n";
    }
    // The in-memory log is a bounded ring holding the newest decisions; the rest were evicted
    // (and reached the observers, e.g. the store sink, before).
    const auto& all = w.node("hq").recorder.decisions;
    const auto& ring = w.rt("hq").decisions();
    EXPECT_GT(all.size(), 4u);
    EXPECT_EQ(ring.size(), 4u);
    EXPECT_EQ(w.rt("hq").counters().decisions_evicted, all.size() - 4);
    EXPECT_EQ(ring.back().to_json(), all.back().to_json());
    EXPECT_EQ(ring.front().to_json(), all[all.size() - 4].to_json());
    w.stop();
    return out;
  };
  const std::string a = run(77), b = run(77);
  EXPECT_FALSE(a.empty());
  EXPECT_EQ(a, b);
}

}  // namespace

namespace {

// Key rotation (ADR 0013): an endpoint's key changes and each end re-plans at its own time. The
// probes keep working on the previous key through the grace period, so a path whose ends both
// switch within it never goes down; a path whose far end never switches does, once the grace is
// over (the old key is not accepted for ever). Only keys may change on a running path.
TEST(SiteRuntime, KeyRotationKeepsAPathUpWhenBothEndsSwitchWithinTheGrace) {
  test::Wan w(23);
  two_paths(w);
  w.start(two_path_probe(4) + "key_grace_ms: 2000\n");
  auto& hq = w.rt("hq");
  auto& b = w.rt("b");
  w.world().run_until(5 * kSec);
  ASSERT_TRUE(hq.path(model::PathId(1))->live);
  ASSERT_TRUE(hq.path(model::PathId(2))->live);
  const std::int64_t t0 = w.world().now_ns();
  // hq rotates both its endpoints; b re-plans one second later and learns only wan0's new key.
  w.node("hq").keys["wan0"] = mesh::generate_keypair().value();
  w.node("hq").keys["wan1"] = mesh::generate_keypair().value();
  for (std::size_t id : {1, 2}) {
    auto changed = hq.update_path(w.spec(id, true));
    ASSERT_TRUE(changed.is_ok() && changed.value()) << id;
  }
  w.world().run_until(t0 + 1 * kSec);
  ASSERT_TRUE(b.update_path(w.spec(1, false)).is_ok());
  EXPECT_TRUE(hq.path(model::PathId(1))->live);
  EXPECT_TRUE(hq.path(model::PathId(2))->live) << "within the grace the old key still works";
  w.world().run_until(t0 + 15 * kSec);
  // Path 1: both ends switched within the grace: never down, no decision moved anything.
  EXPECT_TRUE(hq.path(model::PathId(1))->live);
  EXPECT_TRUE(b.path(model::PathId(1))->live);
  for (const auto& d : w.node("hq").recorder.decisions) {
    if (d.mono_ns >= t0 && (d.from == model::PathId(1) || d.to == model::PathId(1))) {
      ADD_FAILURE() << "path 1 was involved in a decision: " << d.to_json();
    }
  }
  // Path 2: b still derives its key from hq's old wan1 key: down once the grace is over.
  EXPECT_FALSE(hq.path(model::PathId(2))->live);
  const auto down =
      find_decision(w.node("hq").recorder.decisions, "voice", steering::Reason::kPathDown, t0);
  if (down) {
    EXPECT_GE(down->mono_ns - t0, 2 * kSec) << "the previous key was dropped before the grace";
  }
  // Once b learns the key, path 2 comes back.
  ASSERT_TRUE(b.update_path(w.spec(2, false)).is_ok());
  w.world().run_until(t0 + 25 * kSec);
  EXPECT_TRUE(hq.path(model::PathId(2))->live);
  EXPECT_TRUE(b.path(model::PathId(2))->live);

  // Only keys may change on a running path; an unknown path is not one of ours.
  auto moved = w.spec(1, true);
  moved.remote_underlay = model::SocketAddress::parse("10.9.9.9:51820").value();
  auto s = hq.update_path(moved).status();
  EXPECT_EQ(s.code(), Code::kFailedPrecondition);
  EXPECT_NE(s.message().find("only its keys may change"), std::string::npos) << s.message();
  auto unknown = w.spec(1, true);
  unknown.id = model::PathId(99);
  EXPECT_EQ(hq.update_path(unknown).status().code(), Code::kNotFound);
  // The same keys again change nothing; new ones did.
  auto same = hq.update_path(w.spec(1, true));
  ASSERT_TRUE(same.is_ok());
  EXPECT_FALSE(same.value());
  w.stop();
}

// The switch of a rotation may lose a probe or two (one handshake and the far end's standby poll
// on a WireGuard path; here the path is dropped for 120 ms right after it). Those losses are the
// rotation, not the path: they stay out of its window, so its score does not fall (a single loss
// in a 100-probe window costs the default scorer 30 points and could move a settling class).
// A gap that outlasts the rotation's window counts as any other loss would.
TEST(SiteRuntime, AKeyRotationsOwnGapIsNotHeldAgainstThePath) {
  test::Wan w(29);
  two_paths(w, {5 * kMs, 0, 0.0, true});
  w.start(two_path_probe(5) + "key_grace_ms: 2000\n");
  auto& hq = w.rt("hq");
  // Traffic keeps the probes at their active rate (50 ms).
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 40 * kSec);
  w.world().run_until(5 * kSec);
  // The path voice takes is probed at the active rate; it is the one rotated and cut.
  const model::PathId id = hq.class_path("b", "voice");
  ASSERT_TRUE(id.valid());
  const std::size_t n = id.value();
  const std::string ep = n == 1 ? "wan0" : "wan1";
  ASSERT_TRUE(hq.path(id)->live);
  const double score_before = hq.path(id)->score;
  const std::size_t decisions = w.node("hq").recorder.decisions.size();
  w.node("hq").keys[ep] = mesh::generate_keypair().value();
  ASSERT_TRUE(hq.update_path(w.spec(n, true)).value());
  ASSERT_TRUE(w.rt("b").update_path(w.spec(n, false)).value());
  w.set_up(n, false);
  w.world().run_until(w.world().now_ns() + 120 * kMs);
  w.set_up(n, true);
  w.world().run_until(w.world().now_ns() + 2 * kSec);
  const auto p = hq.path(id);
  EXPECT_TRUE(p->live);
  EXPECT_EQ(p->stats.lost, 0u) << "the rotation's losses entered the window";
  EXPECT_GE(hq.counters().samples_during_rekey, 2u);
  EXPECT_GE(p->score, score_before - 1);
  expect_nothing_moved(w.node("hq").recorder, decisions);

  // Without a rotation the same gap is a loss of the path.
  const auto lost_before = hq.counters().samples_during_rekey;
  w.set_up(n, false);
  w.world().run_until(w.world().now_ns() + 120 * kMs);
  w.set_up(n, true);
  w.world().run_until(w.world().now_ns() + 1 * kSec);
  EXPECT_GE(hq.path(id)->stats.lost, 2u);
  EXPECT_EQ(hq.counters().samples_during_rekey, lost_before);

  // A rotation whose gap outlasts its window (1 s): the losses past it count, and the probe's own
  // detection takes the path down as for any fault.
  w.world().run_until(w.world().now_ns() + 10 * kSec);  // the window forgets the gap above
  const auto excused_before = hq.counters().samples_during_rekey;
  w.node("hq").keys[ep] = mesh::generate_keypair().value();
  ASSERT_TRUE(hq.update_path(w.spec(n, true)).value());
  ASSERT_TRUE(w.rt("b").update_path(w.spec(n, false)).value());
  w.set_up(n, false);
  w.world().run_until(w.world().now_ns() + 3 * kSec);
  EXPECT_FALSE(hq.path(id)->live);
  // At most the window's worth of sends (1 s at 50 ms) was excused.
  EXPECT_LE(hq.counters().samples_during_rekey - excused_before, 21u);
  EXPECT_GT(hq.counters().samples_during_rekey - excused_before, 0u);
  w.stop();
}

}  // namespace

namespace {

// A vendor's voice scorer that breaks mid-run (answers NaN on every path from 20 s on) used to
// leave voice with no path at all (a scenario lost 4150 of 4150 voice packets). Now the last good
// scores hold for scorer_hold_ns, then the default scorer's scores stand in, and each step is
// said; the class never goes without a path.
TEST(SiteRuntime, AFailingScorerKeepsItsClassOnAPath) {
  core::PluginRegistry reg;
  auto flaky = reg.load_file(test::test_plugin_dir() + "/libpatronus-test-flaky-scorer.so");
  ASSERT_TRUE(flaky.is_ok()) << flaky.status().to_string();
  test::Wan w(5);
  two_paths(w);
  w.use_scorer(flaky.value(), "flaky");
  w.start(two_path_probe(4), [](steering::RuntimeConfig& rc) {
    for (auto& c : rc.classes.classes) {
      if (c.name == "voice") c.scorer = "flaky";
    }
  });
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 45 * kSec);
  auto standing_in = [&](const std::string& what) {
    for (const auto& [type, json] : w.node("hq").recorder.events) {
      if (type == "runtime.scorer_error" && json.find(what) != std::string::npos) return true;
    }
    return false;
  };
  w.world().run_until(15 * kSec);
  const model::PathId before = hq.class_path("b", "voice");
  ASSERT_TRUE(before.valid());
  EXPECT_EQ(hq.counters().scorer_errors, 0u);

  w.world().run_until(25 * kSec);  // broken for 5 s: the last good scores hold
  EXPECT_GT(hq.counters().scorer_errors, 0u);
  EXPECT_TRUE(standing_in("\"standing_in\":\"last good score\"")) << "no scorer_error event";
  EXPECT_FALSE(standing_in("\"standing_in\":\"default scorer\""));
  EXPECT_EQ(hq.class_path("b", "voice"), before);

  w.world().run_until(40 * kSec);  // past the 10 s hold: the default scorer stands in
  EXPECT_TRUE(standing_in("\"standing_in\":\"default scorer\""));
  EXPECT_FALSE(standing_in("nothing: the path has no score"));
  EXPECT_TRUE(hq.class_path("b", "voice").valid());
  EXPECT_EQ(hq.on_packet(voice, 46, 100), hq.class_path("b", "voice"));
  for (const auto& d : w.node("hq").recorder.decisions) {
    if (d.cls == "voice" && d.mono_ns > 5 * kSec) {
      EXPECT_TRUE(d.to.valid()) << "voice lost its path at " << d.mono_ns << ": " << d.why;
    }
  }
  // Each step is said once per path, not at every window.
  std::size_t said = 0;
  for (const auto& e : w.node("hq").recorder.events) said += e.first == "runtime.scorer_error";
  EXPECT_LE(said, 4u);
  EXPECT_GT(hq.counters().scorer_errors, said);
}

}  // namespace

namespace {

// A running site takes a new site and its paths without disturbing what it has (a re-plan with a
// third site added used to be refused: "a new path needs a restart"), and lets a path the plan
// no longer has go, moving only the classes on it.
TEST(SiteRuntime, ANewSiteJoinsRunningSitesWithoutDisturbingTheirPaths) {
  test::Wan w(21);
  two_paths(w);  // hq (wan0, wan1) - b (wan0): paths 1 and 2
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto to_b = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump b_traffic = pump(*w.node("hq").env, hq, {{to_b, 46}}, 20 * kMs, 40 * kSec);
  w.world().run_until(10 * kSec);
  const model::PathId b_path = hq.class_path("b", "voice");
  ASSERT_TRUE(b_path.valid());
  const std::size_t hq_events = w.node("hq").recorder.events.size();
  const std::size_t b_events = w.node("b").recorder.events.size();
  const std::size_t hq_decisions = w.node("hq").recorder.decisions.size();

  const env::LinkParams link{25 * kMs, 0, 0.0, true};
  w.add_site({"c", {{"wan0", "10.0.0.3"}}, "192.168.3.0/24"});
  const auto p3 = w.add_path({"hq", "wan0", "c", "wan0", link});
  const auto p4 = w.add_path({"hq", "wan1", "c", "wan0", link});
  w.add_path({"b", "wan0", "c", "wan0", link});
  w.grow();
  const auto to_c = flow("192.168.1.10", "192.168.3.30", 20000, 20002);
  const Pump c_traffic = pump(*w.node("hq").env, hq, {{to_c, 46}}, 20 * kMs, 40 * kSec);
  w.world().run_until(20 * kSec);

  // c is reached over its own paths...
  const model::PathId c_path = hq.class_path("c", "voice");
  ASSERT_TRUE(c_path.value() == p3 || c_path.value() == p4) << c_path.value();
  EXPECT_EQ(hq.on_packet(to_c, 46, 100), c_path);
  EXPECT_TRUE(w.rt("b").class_path("c", "default").valid());
  EXPECT_TRUE(w.rt("c").class_path("hq", "voice").valid());
  // ...and nothing the sites had was touched: no path went down, no class to b moved.
  for (const auto* rec : {&w.node("hq").recorder, &w.node("b").recorder}) {
    const std::size_t from = rec == &w.node("hq").recorder ? hq_events : b_events;
    for (std::size_t i = from; i < rec->events.size(); ++i) {
      EXPECT_NE(rec->events[i].first, "path.down") << rec->events[i].second;
    }
  }
  for (std::size_t i = hq_decisions; i < w.node("hq").recorder.decisions.size(); ++i) {
    const auto& d = w.node("hq").recorder.decisions[i];
    // A balanced class's set settling as its paths' windows fill is not a move.
    if (d.reason == steering::Reason::kRebalance) continue;
    EXPECT_NE(d.dst_site, "b") << d.why;
  }
  EXPECT_EQ(hq.class_path("b", "voice"), b_path);
  EXPECT_NE(w.node("hq").recorder.last_event("runtime.path_added"), "");
  EXPECT_NE(w.node("hq").recorder.last_event("runtime.site_added"), "");

  // The plan drops the path voice to c is on: voice moves to the other path in that evaluation,
  // saying why; b is untouched.
  const std::int64_t t_remove = w.world().now_ns();
  for (const char* site : {"hq", "c"}) {
    auto r = w.rt(site).remove_path(c_path);
    ASSERT_TRUE(r.is_ok());
    EXPECT_TRUE(r.value());
  }
  const auto moved = find_decision(w.node("hq").recorder.decisions, "voice",
                                   steering::Reason::kPathDown, t_remove, "c");
  if (!moved) {
    for (const auto& d : w.node("hq").recorder.decisions) {
      if (d.mono_ns >= t_remove)
        ADD_FAILURE() << d.cls << " " << d.dst_site << " " << steering::to_string(d.reason) << ": "
                      << d.why;
    }
  }
  if (!moved) {
    for (const auto& d : w.node("hq").recorder.decisions) {
      if (d.mono_ns >= t_remove)
        ADD_FAILURE() << d.cls << " " << d.dst_site << " " << steering::to_string(d.reason) << ": "
                      << d.why;
    }
  }
  ASSERT_TRUE(moved.has_value());
  EXPECT_EQ(moved->mono_ns, t_remove) << "moved in the same evaluation";
  EXPECT_NE(moved->why.find("was removed from the plan"), std::string::npos) << moved->why;
  EXPECT_FALSE(hq.path(c_path).has_value());
  for (const auto& v : hq.paths()) EXPECT_NE(v.id, c_path);
  w.world().run_until(25 * kSec);
  const model::PathId now = hq.class_path("c", "voice");
  EXPECT_TRUE(now.valid());
  EXPECT_NE(now, c_path);
  EXPECT_EQ(hq.class_path("b", "voice"), b_path);
  EXPECT_FALSE(hq.remove_path(c_path).value()) << "removed once";
}

}  // namespace

namespace {

// A path's first probes fail to send while its interface has no address yet (a tunnel coming
// up). Those are not losses: once the path answers, its window holds no loss from its own
// start-up, so it does not come up, drop to "down score 0", then crawl back through "degraded"
// while the phantom loss ages out of the window (the flap the three-site lab showed).
TEST(SiteRuntime, SendsThatFailBeforeAPathFirstAnswersAreNotLosses) {
  test::Wan w(8);
  two_paths(w);
  const auto wan1 = model::IpAddress::parse("10.0.1.1").value();
  w.world().set_send_failing(wan1, true);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  w.world().run_until(1 * kSec);
  EXPECT_FALSE(hq.path(model::PathId(2))->live);
  w.world().set_send_failing(wan1, false);
  w.world().run_until(4 * kSec);  // the window (10 s) still spans the failed sends
  const auto p2 = hq.path(model::PathId(2));
  ASSERT_TRUE(p2.has_value());
  EXPECT_TRUE(p2->live);
  EXPECT_GT(p2->stats.samples, 0u);
  EXPECT_EQ(p2->stats.lost, 0u) << "a failed send before the first reply was counted as lost";
  EXPECT_EQ(p2->status, model::PathStatus::kUp);

  // Once the path has answered, a send that fails is the path failing: counted lost, and the
  // path goes down within the detection time (an idle path's: 4 x 1 s here).
  w.world().run_until(12 * kSec);
  w.world().set_send_failing(wan1, true);
  w.world().run_until(18 * kSec);
  EXPECT_FALSE(hq.path(model::PathId(2))->live);
  EXPECT_GT(hq.path(model::PathId(2))->stats.lost, 0u);
  bool said = false;
  for (const auto& [type, json] : w.node("hq").recorder.events) {
    if (type == "probe.counters" && json.find("\"unready_sends\":0") == std::string::npos &&
        json.find("\"unready_sends\"") != std::string::npos) {
      said = true;
    }
  }
  EXPECT_TRUE(said) << "the probe's counters do not show the unready sends";
}

// A peer that is not there yet (it has not started, or has not applied the config that names
// the path: both ends of a new path apply it at about the same time, not at the same instant)
// leaves the first probes unanswered. Their timeouts, reported after the first answer, are not
// losses of the path: it comes up and stays up, where it used to go up, "down score 0" and crawl
// back through "degraded" (the controller's end-to-end test showed it).
TEST(SiteRuntime, ProbesUnansweredBeforeAPathFirstAnswersAreNotLosses) {
  test::Wan w(9);
  two_paths(w);
  w.set_up(2, false);  // nothing answers on path 2 yet
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  w.world().run_until(300 * kMs);
  w.set_up(2, true);
  w.world().run_until(6 * kSec);
  const auto p2 = hq.path(model::PathId(2));
  ASSERT_TRUE(p2.has_value());
  EXPECT_EQ(p2->status, model::PathStatus::kUp);
  EXPECT_EQ(p2->stats.lost, 0u) << "probes sent before the first answer counted as lost";
  EXPECT_GT(hq.counters().samples_before_first_answer, 0u);
  for (const auto& [type, json] : w.node("hq").recorder.events) {
    EXPECT_NE(type, "path.down") << json;  // path 1 never failed; path 2 only came up
  }
  // Once it has answered, losses count: the path cut again goes down.
  w.set_up(2, false);
  w.world().run_until(12 * kSec);
  EXPECT_GT(hq.path(model::PathId(2))->stats.lost, 0u);
  EXPECT_FALSE(hq.path(model::PathId(2))->live);
}

// apply() takes what a running site can take and refuses the rest, naming it, without changing
// anything: the same config is "unchanged", a plugin config the plugin refuses, an added
// instance, a runtime setting, another site,
// another schema and a malformed plan are refused, and the site keeps running as it was.
TEST(SiteHost, ApplyRefusesWhatARunningSiteCannotTakeAndChangesNothing) {
  test::Wan w(31);
  two_paths(w);
  w.start(two_path_probe(4));
  w.world().run_until(5 * kSec);
  site::SiteHost& hq = *w.node("hq").host;
  const std::string hash = hq.config_hash();
  const std::size_t decisions = w.node("hq").recorder.decisions.size();
  const auto voice = w.rt("hq").class_path("b", "voice");
  ASSERT_TRUE(voice.valid());

  site::SiteConfig same = w.config("hq");
  same.set_generation(7);
  EXPECT_EQ(site::content_hash(same), hash) << "the generation is not content";
  auto r = hq.apply(same);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r.value().unchanged);

  auto refused = [&](site::SiteConfig c, const std::string& says) {
    const auto a = hq.apply(c);
    ASSERT_FALSE(a.is_ok()) << says;
    EXPECT_NE(a.status().message().find(says), std::string::npos) << a.status().message();
    EXPECT_EQ(hq.config_hash(), hash);
  };
  site::SiteConfig probe = w.config("hq");
  probe.mutable_plugins(0)->set_config(std::string("\x10\x01", 2));  // interval_ms: 1
  refused(probe, "plugins[0] ('probe') config: {");
  refused(probe, "-> {\"interval_ms\":1}: probe (probes): configure failed: ");
  site::SiteConfig added = w.config("hq");
  *added.add_plugins() = added.plugins(1);
  added.mutable_plugins(added.plugins_size() - 1)->set_instance("scoring2");
  refused(added, "('scoring2'): plugin instances are added, removed or renamed with a restart");
  site::SiteConfig tick = w.config("hq");
  tick.mutable_runtime()->set_tick_ms(200);
  refused(tick, "runtime: modified: tick_ms: 100 -> 200");
  site::SiteConfig other = w.config("hq");
  other.set_site("b");
  refused(other, "the config is for 'b', this is 'hq'");
  site::SiteConfig schema = w.config("hq");
  schema.set_schema(9);
  refused(schema, "schema: version 9");
  site::SiteConfig bad_plan = w.config("hq");
  bad_plan.mutable_plan()->mutable_paths(1)->set_remote_underlay("10.0.0.2");
  refused(bad_plan, "plan.paths[1].remote_underlay");
  site::SiteConfig bad_class = w.config("hq");
  bad_class.mutable_runtime()->mutable_classes()->mutable_classes(0)->set_scorer("nobody");
  refused(bad_class, "runtime.classes.voice.scorer: no plugin instance 'nobody'");

  w.world().run_until(10 * kSec);
  EXPECT_EQ(w.rt("hq").paths().size(), 2u);
  EXPECT_EQ(w.rt("hq").class_path("b", "voice"), voice);
  expect_nothing_moved(w.node("hq").recorder, decisions);
}

// New classes through apply(): a tightened threshold moves voice off its path in the apply's own
// evaluation, an added class gets its first path then, no path goes down, and flows are kept
// while the rules classify as before and forgotten (to be classified anew) when they change.
TEST(SiteHost, ApplyReplacesClassesInOneEvaluation) {
  test::Wan w(33);
  two_paths(w);
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 60 * kSec);
  w.world().run_until(5 * kSec);
  const model::PathId on = hq.class_path("b", "voice");
  ASSERT_TRUE(on.valid());
  const model::PathId other(on.value() == 1 ? 2 : 1);
  // voice's path gets slower, within voice's thresholds: it stays.
  w.set_link(on.value(), {60 * kMs, 0, 0.0, true});
  w.world().run_until(20 * kSec);
  ASSERT_EQ(hq.class_path("b", "voice"), on);
  const double slow = hq.path(on)->stats.latency_ms, fast = hq.path(other)->stats.latency_ms;
  ASSERT_GT(slow, fast + 20) << "the slower path does not measure slower";
  EXPECT_EQ(hq.flows().size(), 1u);

  site::SiteHost& host = *w.node("hq").host;
  const std::string hash = host.config_hash();
  site::SiteConfig next = w.config("hq");
  auto* classes = next.mutable_runtime()->mutable_classes();
  for (auto& c : *classes->mutable_classes()) {
    if (c.name() == "voice") c.set_max_latency_ms((slow + fast) / 2);
  }
  auto* gaming = classes->add_classes();
  gaming->set_name("gaming");
  gaming->set_hysteresis(10);
  gaming->set_hold_down_ms(10000);
  site::v1::ClassRule rule;
  rule.set_class_name("gaming");
  rule.set_protocol(17);
  rule.mutable_dst_ports()->set_first(27015);
  rule.mutable_dst_ports()->set_last(27015);
  classes->mutable_rules()->Add(std::move(rule));
  std::rotate(classes->mutable_rules()->rbegin(), classes->mutable_rules()->rbegin() + 1,
              classes->mutable_rules()->rend());  // first: before the rules that would take it
  const std::size_t events = w.node("hq").recorder.typed.size();
  const std::size_t changes = w.node("hq").dataplane->changes().size();
  const std::int64_t t_apply = w.world().now_ns();
  auto r = host.apply(next);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r.value().classes_replaced);
  EXPECT_EQ(r.value().classes_added, std::vector<std::string>{"gaming"});
  EXPECT_TRUE(r.value().classes_removed.empty());
  EXPECT_TRUE(r.value().paths_added.empty() && r.value().paths_removed.empty());
  EXPECT_NE(host.config_hash(), hash);

  const auto moved = find_decision(w.node("hq").recorder.decisions, "voice",
                                   steering::Reason::kThreshold, t_apply);
  ASSERT_TRUE(moved.has_value()) << "voice did not move off the path its new threshold excludes";
  EXPECT_EQ(moved->mono_ns, t_apply) << "moved in the apply's own evaluation";
  EXPECT_EQ(moved->to, other);
  const auto first =
      find_decision(w.node("hq").recorder.decisions, "gaming", steering::Reason::kInitial, t_apply);
  ASSERT_TRUE(first.has_value()) << "the new class got no path";
  EXPECT_EQ(first->mono_ns, t_apply);
  bool installed = false;
  const auto& dp = w.node("hq").dataplane->changes();
  for (std::size_t i = changes; i < dp.size(); ++i) {
    installed =
        installed || (dp[i].cls == "gaming" && dp[i].path.valid() && dp[i].at_ns == t_apply);
  }
  EXPECT_TRUE(installed) << "the new class's path never reached the dataplane";
  const steering::Event* changed = nullptr;
  for (std::size_t i = events; i < w.node("hq").recorder.typed.size(); ++i) {
    const auto& e = w.node("hq").recorder.typed[i];
    EXPECT_FALSE(e.has_path() && !e.path().up()) << "a path went down: " << steering::event_json(e);
    if (e.has_classes_changed()) changed = &e;
  }
  ASSERT_NE(changed, nullptr);
  EXPECT_EQ(changed->classes_changed().added_size(), 1);
  EXPECT_EQ(changed->classes_changed().added(0), "gaming");
  ASSERT_EQ(changed->classes_changed().changed_size(), 1);
  EXPECT_EQ(changed->classes_changed().changed(0), "voice");
  EXPECT_TRUE(changed->classes_changed().rules_changed());
  EXPECT_EQ(changed->classes_changed().flows_forgotten(), 1u) << "the rules changed";

  // The flow comes back with its next packet, classified by the new rules, on voice's new path;
  // a gaming flow is gaming.
  w.world().run_until(w.world().now_ns() + kSec);
  EXPECT_EQ(hq.on_packet(voice, 46, 100), other);
  const auto game = flow("192.168.1.10", "192.168.2.20", 40000, 27015);
  EXPECT_EQ(hq.classify(game, 0), "gaming");
  EXPECT_EQ(hq.on_packet(game, 0, 100), hq.class_path("b", "gaming"));

  // Thresholds alone: the flows stay, nothing moves.
  const std::size_t flows = hq.flows().size();
  const std::size_t decided = w.node("hq").recorder.decisions.size();
  site::SiteConfig calmer = next;
  calmer.mutable_runtime()->mutable_classes()->mutable_classes(0)->set_hysteresis(15);
  r = host.apply(calmer);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r.value().classes_replaced);
  EXPECT_EQ(hq.flows().size(), flows);
  EXPECT_EQ(w.node("hq").recorder.typed.back().classes_changed().flows_forgotten(), 0u);
  expect_nothing_moved(w.node("hq").recorder, decided);
}

// A probe config changed through apply(): the probe instance alone restarts with it, the paths
// it watched are watched again (samples keep coming, nothing goes down or moves), and the new
// detect multiplier is what a cut is then detected with.
TEST(SiteHost, ApplyRestartsAPluginWhoseConfigChangedAlone) {
  test::Wan w(35);
  two_paths(w);
  w.start(two_path_probe(8));
  auto& hq = w.rt("hq");
  const auto voice = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{voice, 46}}, 20 * kMs, 40 * kSec);
  w.world().run_until(5 * kSec);
  const model::PathId on = hq.class_path("b", "voice");
  ASSERT_TRUE(on.valid());
  const std::size_t decisions = w.node("hq").recorder.decisions.size();
  const std::size_t events = w.node("hq").recorder.typed.size();

  site::SiteHost& host = *w.node("hq").host;
  site::SiteConfig next = w.config("hq");
  // interval_ms 50, idle_interval_ms 1000, detect_multiplier 3 (fields 2, 3, 4): the restarted
  // instance detects a cut in 3 intervals, not 8.
  next.mutable_plugins(0)->set_config(std::string("\x10\x32\x18\xe8\x07\x20\x03", 7));
  auto r = host.apply(next);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  ASSERT_EQ(r.value().plugins_restarted, std::vector<std::string>{"probe"});
  EXPECT_FALSE(r.value().classes_replaced);
  EXPECT_GT(w.node("hq").router->live_timers("probe"), 0u) << "the new probe sends nothing";
  w.world().run_until(10 * kSec);
  EXPECT_EQ(hq.class_path("b", "voice"), on);
  EXPECT_TRUE(hq.path(on)->live);
  EXPECT_TRUE(hq.path(model::PathId(on.value() == 1 ? 2 : 1))->live);
  for (std::size_t i = events; i < w.node("hq").recorder.typed.size(); ++i) {
    const auto& e = w.node("hq").recorder.typed[i];
    EXPECT_FALSE(e.has_path() && !e.path().up()) << "a path went down: " << steering::event_json(e);
  }
  expect_nothing_moved(w.node("hq").recorder, decisions);

  const std::int64_t cut = w.world().now_ns();
  w.set_up(on.value(), false);
  w.world().run_until(cut + 2 * kSec);
  const auto d =
      find_decision(w.node("hq").recorder.decisions, "voice", steering::Reason::kPathDown, cut);
  ASSERT_TRUE(d.has_value()) << "no failover after the restart";
  const std::int64_t took = d->mono_ns - cut;
  EXPECT_LE(took, 3 * 50 * kMs + 25 * kMs + 50 * kMs)
      << "detected after " << took / 1e6 << " ms: the old multiplier (8) still applies";
}

// A controller pushes a probe setting to every site: both ends of each path restart their probe
// instance at about the same time. Probes lost in that gap are the restart's, not the path's: no
// path goes down and nothing moves.
TEST(SiteHost, BothEndsRestartingTheirProbeTogetherLoseNoPath) {
  test::Wan w(38);
  two_paths(w);
  w.start("interval_ms: 50\nidle_interval_ms: 100\ndetect_multiplier: 3\n");
  w.world().run_until(5 * kSec);
  const std::size_t decisions = w.node("hq").recorder.decisions.size();
  const std::size_t events_hq = w.node("hq").recorder.typed.size();
  const std::size_t events_b = w.node("b").recorder.typed.size();
  // interval_ms 50, idle_interval_ms 100, detect_multiplier 4 (fields 2, 3, 4).
  const std::string bytes("\x10\x32\x18\x64\x20\x04", 6);
  for (const char* site : {"hq", "b"}) {
    site::SiteConfig next = w.config(site);
    next.mutable_plugins(0)->set_config(bytes);
    auto r = w.node(site).host->apply(next);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(r.value().plugins_restarted, std::vector<std::string>{"probe"});
    w.world().run_until(w.world().now_ns() + 3 * kMs);
  }
  w.world().run_until(w.world().now_ns() + 5 * kSec);
  for (const auto& [site, from] : {std::pair<std::string, std::size_t>("hq", events_hq),
                                   std::pair<std::string, std::size_t>("b", events_b)}) {
    for (std::size_t i = from; i < w.node(site).recorder.typed.size(); ++i) {
      const auto& e = w.node(site).recorder.typed[i];
      EXPECT_FALSE(e.has_path() && !e.path().up()) << site << ": " << steering::event_json(e);
    }
    for (const auto& v : w.rt(site).paths()) {
      EXPECT_EQ(v.status, model::PathStatus::kUp) << site << " path " << v.id.value();
    }
  }
  expect_nothing_moved(w.node("hq").recorder, decisions);
}

// The fleet's policies pushed by a controller: apply reloads the policy instance with them (no
// path or flow disturbed); a document the plugin refuses changes nothing.
TEST(SiteHost, ApplyReloadsThePoliciesWhenTheFleetsChange) {
  test::Wan w(36);
  auto lib = w.registry().load_file(test::plugin_dir() + "/libpatronus-netpolicy.so");
  ASSERT_TRUE(lib.is_ok()) << lib.status().to_string();
  w.use_policy(lib.value(), "k8s");
  two_paths(w);
  w.start(two_path_probe(4));
  w.world().run_until(3 * kSec);
  auto verdict = [&] {
    patronus_flow_tuple t{};
    t.protocol = 6;
    t.src = model::SocketAddress::parse("10.9.0.10:40000").value().to_abi();
    t.dst = model::SocketAddress::parse("10.9.0.20:5432").value().to_abi();
    return w.node("hq").router->evaluate_policy("k8s", t);
  };
  ASSERT_TRUE(verdict().is_ok()) << verdict().status().to_string();
  EXPECT_TRUE(verdict().value()) << "no policy: allowed";
  const std::size_t decisions = w.node("hq").recorder.decisions.size();
  const std::size_t events = w.node("hq").recorder.typed.size();

  site::SiteHost& host = *w.node("hq").host;
  site::SiteConfig next = w.config("hq");
  next.set_fleet_policies(R"(apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.9.0.10}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: shop, labels: {app: db}}
status: {podIP: 10.9.0.20}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-deny, namespace: shop}
spec: {podSelector: {matchLabels: {app: db}}, policyTypes: [Ingress]}
)");
  auto r = host.apply(next);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_TRUE(r.value().policies_reloaded);
  EXPECT_TRUE(r.value().plugins_restarted.empty());
  EXPECT_FALSE(verdict().value()) << "the fleet's policy isolates db";

  site::SiteConfig fleet_only = next;
  fleet_only.set_fleet_policies(next.fleet_policies() + R"(---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: shop, labels: {app: web}}
status: {podIP: 10.9.0.10}
)");
  auto dup = host.apply(fleet_only);
  ASSERT_FALSE(dup.is_ok()) << "the fleet's own document defines web twice";

  site::SiteConfig bad = next;
  bad.set_fleet_policies(
      "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
      "metadata: {name: x, namespace: shop}\nspec: {policyTypes: [Up]}\n");
  auto refused = host.apply(bad);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("fleet_policies: 'k8s'"), std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(verdict().value()) << "the refused document changed nothing";
  EXPECT_EQ(host.config().fleet_policies(), next.fleet_policies());

  w.world().run_until(6 * kSec);
  for (std::size_t i = events; i < w.node("hq").recorder.typed.size(); ++i) {
    const auto& e = w.node("hq").recorder.typed[i];
    EXPECT_FALSE(e.has_path() && !e.path().up()) << "a path went down: " << steering::event_json(e);
  }
  expect_nothing_moved(w.node("hq").recorder, decisions);
}

// A site dropped from the plan leaves the running site: its paths go, then the site (its
// prefixes leave the classifier and the dataplane, its flows are forgotten, it is no longer
// counted); b is not touched; the same site planned again comes back in its old place.
TEST(SiteHost, ApplyRemovesASiteThePlanNoLongerHasAndTakesItBack) {
  test::Wan w(37);
  two_paths(w);
  const env::LinkParams link{25 * kMs, 0, 0.0, true};
  w.add_site({"c", {{"wan0", "10.0.0.3"}}, "192.168.3.0/24"});
  w.add_path({"hq", "wan0", "c", "wan0", link});
  w.start(two_path_probe(4));
  auto& hq = w.rt("hq");
  const auto to_b = flow("192.168.1.10", "192.168.2.20", 20000, 20002);
  const auto to_c = flow("192.168.1.10", "192.168.3.30", 20000, 20002);
  const Pump traffic = pump(*w.node("hq").env, hq, {{to_b, 46}, {to_c, 46}}, 20 * kMs, 60 * kSec);
  w.world().run_until(5 * kSec);
  const model::PathId b_path = hq.class_path("b", "voice");
  const model::PathId c_path = hq.class_path("c", "voice");
  ASSERT_TRUE(b_path.valid() && c_path.valid());
  EXPECT_EQ(hq.remote_site_names().size(), 2u);
  EXPECT_EQ(hq.flows().size(), 2u);

  site::SiteHost& host = *w.node("hq").host;
  const site::SiteConfig full = w.config("hq");
  site::SiteConfig without = full;
  auto* plan = without.mutable_plan();
  for (int i = plan->remote_sites_size(); i-- > 0;) {
    if (plan->remote_sites(i).name() == "c") plan->mutable_remote_sites()->DeleteSubrange(i, 1);
  }
  for (int i = plan->paths_size(); i-- > 0;) {
    if (plan->paths(i).remote_site() == "c") plan->mutable_paths()->DeleteSubrange(i, 1);
  }
  const std::size_t events = w.node("hq").recorder.typed.size();
  auto r = host.apply(without);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r.value().sites_removed, std::vector<std::string>{"c"});
  EXPECT_EQ(r.value().paths_removed, std::vector<model::PathId>{c_path});
  EXPECT_TRUE(r.value().errors.empty());
  EXPECT_EQ(hq.remote_site_names(), std::vector<std::string>{"b"});
  EXPECT_FALSE(hq.has_remote_site("c"));
  EXPECT_FALSE(hq.class_path("c", "voice").valid());
  EXPECT_EQ(hq.flows().size(), 1u) << "the flow to c was not forgotten";
  EXPECT_FALSE(hq.on_packet(to_c, 46, 100).valid()) << "c's prefix still classifies";
  EXPECT_EQ(hq.class_path("b", "voice"), b_path);
  bool said = false;
  for (std::size_t i = events; i < w.node("hq").recorder.typed.size(); ++i) {
    const auto& e = w.node("hq").recorder.typed[i];
    said = said || (e.has_site_removed() && e.site_removed().site() == "c" &&
                    e.site_removed().flows_forgotten() == 1);
    EXPECT_FALSE(e.has_path() && !e.path().up() && e.path().path() != c_path.value())
        << "another path went down: " << steering::event_json(e);
  }
  EXPECT_TRUE(said) << "no runtime.site_removed event";
  w.world().run_until(10 * kSec);
  EXPECT_EQ(hq.class_path("b", "voice"), b_path);

  // Planned again: c comes back, its path with it, and its classes get a path.
  r = host.apply(full);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r.value().sites_added, std::vector<std::string>{"c"});
  w.world().run_until(20 * kSec);
  EXPECT_EQ(hq.remote_site_names().size(), 2u);
  EXPECT_EQ(hq.class_path("c", "voice"), c_path);
  EXPECT_EQ(hq.on_packet(to_c, 46, 100), c_path);
}

// The classes survive the trip through the config unchanged (the daemon's YAML classes become
// the proto, the host makes the runtime's classes of it).
TEST(SiteConfig, ClassesRoundTripAndBadFieldsAreNamed) {
  const auto defaults = steering::default_classes("emodel");
  const auto proto = site::classes_to_proto(defaults);
  auto back = site::classes_from_proto(proto);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_EQ(site::classes_to_proto(back.value()).SerializeAsString(), proto.SerializeAsString());
  EXPECT_EQ(back.value().rules.size(), defaults.rules.size());
  auto broken = proto;
  broken.mutable_rules(0)->set_dscp(64);
  EXPECT_NE(site::classes_from_proto(broken).status().message().find("rules[0].dscp"),
            std::string::npos);
  broken = proto;
  broken.mutable_rules(0)->add_dst_prefixes("10.0.0.1/8");
  EXPECT_NE(site::classes_from_proto(broken).status().message().find("rules[0].dst_prefixes[0]"),
            std::string::npos);
}

// Observers read events by field: a cut path's down event names the path, its source and how long
// detection took, and the plugin's own events come in a typed envelope with their JSON intact.
TEST(SiteRuntime, EventsAreTypedAndTheirJsonKeepsNumbersAsNumbers) {
  test::Wan w(41);
  two_paths(w);
  w.start(two_path_probe(4));
  w.world().run_until(5 * kSec);
  const std::size_t before = w.node("hq").recorder.typed.size();
  w.set_up(1, false);
  w.world().run_until(12 * kSec);  // idle paths probe at 1 s: detection within 4 s
  const steering::Event* down = nullptr;
  bool plugin_event = false;
  for (const auto& e : w.node("hq").recorder.typed) {
    if (e.has_plugin()) {
      plugin_event = true;
      EXPECT_NE(e.instance(), "runtime");
      EXPECT_EQ(steering::event_json(e), e.plugin().json());
    }
  }
  for (std::size_t i = before; i < w.node("hq").recorder.typed.size(); ++i) {
    const auto& e = w.node("hq").recorder.typed[i];
    if (e.has_path() && e.path().path() == 1 && !e.path().up()) down = &e;
  }
  ASSERT_NE(down, nullptr) << "no typed path-down event for the cut path";
  EXPECT_EQ(down->instance(), "runtime");
  EXPECT_EQ(down->path().by(), "probe");
  EXPECT_GT(down->path().detect_time_ns(), 0);
  EXPECT_EQ(steering::event_type(*down), "path.down");
  EXPECT_FALSE(steering::is_warning(*down));
  const auto j = nlohmann::json::parse(steering::event_json(*down));
  EXPECT_TRUE(j["path"].is_number()) << j.dump();
  EXPECT_EQ(j["name"], "hq:wan0~b:wan0");
  EXPECT_TRUE(plugin_event) << "the probes plugin reports its counters as events";
}

}  // namespace
