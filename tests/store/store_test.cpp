// The state database: migrations from empty and from an older schema, refusal of a newer one,
// validation before writes, the batch bound, and a SIGKILL crash test.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <SQLiteCpp/SQLiteCpp.h>

#include <random>
#include <set>
#include <thread>

#include "patronus/store/store.hpp"
#include "test_support.hpp"

namespace {

using namespace patronus;

model::Site site_with_endpoint(const std::string& name) {
  model::Site s;
  s.name = name;
  model::Endpoint e;
  e.name = "wan1";
  e.address = model::SocketAddress::parse("203.0.113.7:51820").value();
  e.cost_per_gb = 0.05;
  e.bandwidth_mbps = 100;
  s.endpoints.push_back(e);
  return s;
}

TEST(Store, CreatesTheLatestSchemaFromEmpty) {
  test::TempDir dir;
  auto s = store::Store::open(dir.file("s.db"));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s.value()->schema_version(), store::latest_schema_version());
  for (const char* t : {"sites", "endpoints", "paths", "policies", "flows", "path_metrics",
                        "path_samples", "decision_events"}) {
    auto n = s.value()->count_rows(t);
    ASSERT_TRUE(n.is_ok()) << t << ": " << n.status().to_string();
    EXPECT_EQ(n.value(), 0);
  }
  SQLite::Database raw(dir.file("s.db"));
  EXPECT_EQ(raw.execAndGet("PRAGMA journal_mode").getString(), "wal");
}

TEST(Store, MigratesAnOlderSchemaKeepingData) {
  test::TempDir dir;
  {
    auto v1 = store::Store::open(dir.file("s.db"), {5000, 1});
    ASSERT_TRUE(v1.is_ok());
    EXPECT_EQ(v1.value()->schema_version(), 1);
    EXPECT_FALSE(v1.value()->count_rows("path_samples").is_ok());
  }
  {
    // Data written by a version-1 build.
    SQLite::Database raw(dir.file("s.db"), SQLite::OPEN_READWRITE);
    raw.exec(
        "INSERT INTO sites (site_name, created_at, last_seen, status) VALUES "
        "('hq', 1, 1, 'active')");
    raw.exec(
        "INSERT INTO endpoints (site_id, name, address, interface_type, cost_per_gb) VALUES "
        "(1, 'wan1', '198.51.100.1:51820', 'wan', 0.1)");
  }
  auto s = store::Store::open(dir.file("s.db"));
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s.value()->schema_version(), store::latest_schema_version());
  auto sites = s.value()->list_sites();
  ASSERT_TRUE(sites.is_ok());
  ASSERT_EQ(sites.value().size(), 1u);
  EXPECT_EQ(sites.value()[0].name, "hq");
  ASSERT_EQ(sites.value()[0].endpoints.size(), 1u);
  EXPECT_FALSE(sites.value()[0].endpoints[0].bandwidth_mbps.has_value());
  EXPECT_TRUE(s.value()->write_batch({{1, "p", 0, 1, false, 5}}, {}).is_ok());
}

TEST(Store, RefusesANewerSchemaAndLeavesItUnchanged) {
  test::TempDir dir;
  {
    SQLite::Database raw(dir.file("s.db"), SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    raw.exec("PRAGMA user_version=99");
  }
  const auto before = test::read_file(dir.file("s.db"));
  auto s = store::Store::open(dir.file("s.db"));
  ASSERT_FALSE(s.is_ok());
  EXPECT_NE(s.status().message().find("schema version 99, newer than this build's " +
                                      std::to_string(store::latest_schema_version())),
            std::string::npos)
      << s.status().message();
  EXPECT_EQ(test::read_file(dir.file("s.db")), before);
}

// A daemon and a CLI (or a test) open the same new file at once: every connection migrates,
// ensures its site and writes batches without a "database is locked" (write transactions take the
// lock when they begin, under the busy timeout, and migrations apply once). CI once saw the daemon
// fail its first write here.
TEST(Store, ConnectionsOpeningAndWritingANewFileAtOnceAllSucceed) {
  test::TempDir dir;
  const std::string path = dir.file("shared.db");
  constexpr int kConnections = 6;
  std::vector<std::string> errors(kConnections);
  std::vector<std::thread> threads;
  for (int i = 0; i < kConnections; ++i) {
    threads.emplace_back([&, i] {
      auto st = store::Store::open(path);
      if (!st.is_ok()) {
        errors[i] = st.status().to_string();
        return;
      }
      auto& s = *st.value();
      for (int round = 0; round < 20; ++round) {
        // Everyone ensures the same site and one of its own.
        for (const std::string& site : {std::string("common"), "site-" + std::to_string(i)}) {
          auto id = s.ensure_site(site, round);
          if (!id.is_ok()) {
            errors[i] = id.status().to_string();
            return;
          }
        }
        std::vector<store::EventRow> ev(5, store::EventRow{round, "common", "t", "k", "", "{}"});
        if (auto w = s.write_batch({}, ev); !w.is_ok()) {
          errors[i] = w.to_string();
          return;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kConnections; ++i) EXPECT_EQ(errors[i], "") << "connection " << i;
  auto st = store::Store::open(path);
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st.value()->list_sites().value().size(), kConnections + 1u);
  EXPECT_EQ(st.value()->count_rows("decision_events").value(), kConnections * 20 * 5);
}

TEST(Store, SitesValidateBeforeWriting) {
  test::TempDir dir;
  auto s = std::move(store::Store::open(dir.file("s.db")).value());
  ASSERT_TRUE(s->add_site(site_with_endpoint("hq"), 100).is_ok());
  EXPECT_EQ(s->add_site(site_with_endpoint("hq"), 100).status().code(), Code::kFailedPrecondition);
  auto bad = site_with_endpoint("branch");
  bad.endpoints.push_back(bad.endpoints[0]);  // duplicate endpoint name
  const auto r = s->add_site(bad, 100);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().message(), "endpoints[1].name: duplicate endpoint name 'wan1'");
  EXPECT_EQ(s->count_rows("sites").value(), 1);
  EXPECT_EQ(s->count_rows("endpoints").value(), 1);
  EXPECT_EQ(s->remove_site("nope").code(), Code::kNotFound);
  EXPECT_TRUE(s->remove_site("hq").is_ok());
  EXPECT_EQ(s->count_rows("endpoints").value(), 0) << "endpoints go with their site";
}

TEST(Store, BatchWriterFlushesAtItsBound) {
  test::TempDir dir;
  auto s = std::move(store::Store::open(dir.file("s.db")).value());
  store::BatchWriter w(*s, 3);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(w.add(store::SampleRow{i, "p", 0, 1, false, 1}).is_ok());
  EXPECT_EQ(w.flushes(), 2u);
  EXPECT_EQ(w.pending(), 1u);
  EXPECT_EQ(s->count_rows("path_samples").value(), 6);
  ASSERT_TRUE(w.flush().is_ok());
  EXPECT_EQ(s->count_rows("path_samples").value(), 7);
}

// A child writes batches of kRows events (one transaction each) and reports each committed batch
// number on a pipe; the parent kills it with SIGKILL at a random moment. On reopen the database
// must pass integrity_check, hold every reported batch, and hold no batch partially.
TEST(Store, SurvivesSigkillMidBatch) {
  constexpr int kRows = 50;
  constexpr int kKills = 40;
  test::TempDir dir;
  const std::string db = dir.file("crash.db");
  ASSERT_TRUE(store::Store::open(db).is_ok());
  std::mt19937_64 rng(20261121);  // fixed: the kill points are reproducible across runs
  int next_batch = 0;
  std::set<int> committed;
  for (int round = 0; round < kKills; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    const int first = next_batch;
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      auto st = store::Store::open(db);
      if (!st.is_ok()) _exit(3);
      for (int b = first;; ++b) {
        std::vector<store::EventRow> rows;
        for (int r = 0; r < kRows; ++r) {
          rows.push_back({b, "site", "crash-test", "batch", "batch-" + std::to_string(b),
                          "{\"row\":" + std::to_string(r) + "}"});
        }
        if (!st.value()->write_batch({}, rows).is_ok()) _exit(4);
        if (write(fds[1], &b, sizeof b) != sizeof b) _exit(5);
      }
    }
    close(fds[1]);
    // Let it commit a random number of batches (1..40), then kill it wherever it is.
    const int wait_for = 1 + static_cast<int>(rng() % 40);
    int b = -1;
    for (int i = 0; i < wait_for; ++i) {
      if (read(fds[0], &b, sizeof b) != sizeof b) break;
      committed.insert(b);
    }
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer died on its own, status " << status;
    while (read(fds[0], &b, sizeof b) == sizeof b) committed.insert(b);
    close(fds[0]);
    next_batch = (committed.empty() ? first : *committed.rbegin()) + 1000;

    auto st = store::Store::open(db);
    ASSERT_TRUE(st.is_ok()) << st.status().to_string();
    EXPECT_EQ(st.value()->integrity_check().value(), "ok");
    SQLite::Database raw(db, SQLite::OPEN_READONLY);
    SQLite::Statement q(raw, "SELECT subject, COUNT(*) FROM decision_events GROUP BY subject");
    std::set<int> present;
    while (q.executeStep()) {
      const std::string subject = q.getColumn(0).getString();
      EXPECT_EQ(q.getColumn(1).getInt(), kRows) << subject << " is half-applied";
      present.insert(std::stoi(subject.substr(6)));
    }
    for (int c : committed) EXPECT_TRUE(present.count(c)) << "committed batch " << c << " lost";
  }
  EXPECT_GE(committed.size(), static_cast<std::size_t>(kKills));
}

}  // namespace

namespace patronus {
namespace {

store::PathRow path_row(const std::string& a, const std::string& b) {
  store::PathRow r;
  r.src_site = a;
  r.src_endpoint = "wan1";
  r.dst_site = b;
  r.dst_endpoint = "wan1";
  r.wg_interface = "wg-wan1";
  return r;
}

TEST(StoreMesh, SaveKeepsPathIdsAndOverlaysAcrossReplans) {
  test::TempDir dir;
  auto s = std::move(store::Store::open(dir.file("s.db")).value());
  std::vector<store::MeshSite> sites;
  for (const char* n : {"a", "b", "c"}) sites.push_back({site_with_endpoint(n), 48.0, 11.0});
  sites[1].site.endpoints[0].address = model::SocketAddress::parse("198.51.100.2:51820").value();
  sites[2].site.endpoints[0].address = model::SocketAddress::parse("198.51.100.3:51820").value();
  const std::vector<store::MeshEndpointRow> eps = {{"a", "wan1", "KEYA", "10.200.0.1", "fd00::1"},
                                                   {"b", "wan1", "KEYB", "10.200.0.2", ""},
                                                   {"c", "wan1", "", "10.200.0.3", ""}};
  auto first = s->save_mesh(sites, eps, {path_row("a", "b"), path_row("a", "c")}, 100);
  ASSERT_TRUE(first.is_ok()) << first.status().to_string();
  ASSERT_EQ(first.value().size(), 2u);
  // Re-plan: a-c goes, b-c arrives; a-b keeps its id.
  auto second = s->save_mesh(sites, eps, {path_row("b", "c"), path_row("a", "b")}, 200);
  ASSERT_TRUE(second.is_ok());
  EXPECT_EQ(second.value()[1], first.value()[0]);
  EXPECT_NE(second.value()[0], first.value()[1]);
  auto paths = s->list_paths().value();
  ASSERT_EQ(paths.size(), 2u);
  EXPECT_EQ(paths[0].src_site, "a");
  EXPECT_EQ(paths[0].dst_site, "b");
  EXPECT_EQ(paths[0].status, model::PathStatus::kDown);
  auto rows = s->mesh_endpoints().value();
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].public_key, "KEYA");
  EXPECT_EQ(rows[0].overlay_ipv6, "fd00::1");
  EXPECT_EQ(rows[1].overlay_ipv6, "");
  EXPECT_EQ(rows[2].public_key, "");
  // A path naming a site outside the saved set: refused, nothing changes.
  auto bad = s->save_mesh(sites, eps, {path_row("a", "zz")}, 300);
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(s->list_paths().value().size(), 2u);
  EXPECT_EQ(s->integrity_check().value(), "ok");
}

TEST(StoreRuntime, PathStatesFlowsAndDecisionsRoundTrip) {
  test::TempDir dir;
  auto s = std::move(store::Store::open(dir.file("s.db")).value());
  std::vector<store::MeshSite> sites;
  for (const char* n : {"a", "b"})
    sites.push_back({site_with_endpoint(n), std::nullopt, std::nullopt});
  sites[1].site.endpoints[0].address = model::SocketAddress::parse("198.51.100.2:51820").value();
  auto ids = s->save_mesh(sites, {}, {path_row("a", "b")}, 1).value();
  ASSERT_EQ(ids.size(), 1u);
  store::PathStateRow st;
  st.path_id = ids[0];
  st.timestamp_ns = 5;
  st.status = model::PathStatus::kDegraded;
  st.live = st.scored = true;
  st.score = 61.5;
  st.latency_ms = 42;
  st.jitter_ms = 3;
  st.loss_pct = 1.5;
  st.samples = 200;
  st.lost = 3;
  store::PathStateRow unknown = st;
  unknown.path_id = model::PathId(999);  // not a path of this database: ignored, no FK failure
  store::FlowRow f;
  f.key.src = model::IpAddress::parse("10.0.0.1").value();
  f.key.dst = model::IpAddress::parse("10.0.0.2").value();
  f.key.src_port = 1000;
  f.key.dst_port = 443;
  f.cls = "voice";
  f.priority = model::Priority::kCritical;
  f.path_id = ids[0];
  f.bytes = 1234;
  f.packets = 7;
  store::EventRow dec{7, "a", "runtime", "decision.failover-path-down", "voice->b", "{}"};
  store::EventRow other{8, "a", "probe", "probe.counters", "", "{}"};
  ASSERT_TRUE(s->write_batch({}, {dec, other}, {st, unknown}, {f}).is_ok());
  f.bytes = 2000;  // the same flow again: updated, not duplicated
  ASSERT_TRUE(s->write_batch({}, {}, {}, {f}).is_ok());
  auto p = s->list_paths().value();
  ASSERT_EQ(p.size(), 1u);
  EXPECT_EQ(p[0].path_id, ids[0]);
  EXPECT_EQ(p[0].status, model::PathStatus::kDegraded);
  EXPECT_DOUBLE_EQ(*p[0].score, 61.5);
  EXPECT_DOUBLE_EQ(*p[0].loss_pct, 1.5);
  EXPECT_EQ(*p[0].samples, 200);
  EXPECT_EQ(s->count_rows("path_windows").value(), 1);
  EXPECT_EQ(s->count_rows("flows").value(), 1);
  auto d = s->decisions(10).value();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].kind, "decision.failover-path-down");
  EXPECT_EQ(s->events(10).value().size(), 2u);
  // Unmeasured: the latest columns are NULL, not zero.
  st.scored = false;
  st.samples = 0;
  ASSERT_TRUE(s->write_batch({}, {}, {st}, {}).is_ok());
  p = s->list_paths().value();
  EXPECT_FALSE(p[0].score.has_value());
  EXPECT_FALSE(p[0].loss_pct.has_value());
  EXPECT_EQ(s->integrity_check().value(), "ok");
}

TEST(StoreRuntime, DroppingBatchWriterNeverTouchesTheDatabaseWhenFull) {
  test::TempDir dir;
  auto s = std::move(store::Store::open(dir.file("s.db")).value());
  store::BatchWriter w(*s, 3, store::BatchWriter::WhenFull::kDrop);
  for (int i = 0; i < 5; ++i) {
    (void)w.add(store::EventRow{i, "a", "x", "k", "", "{}"});
  }
  EXPECT_EQ(w.pending(), 3u);
  EXPECT_EQ(w.dropped(), 2u);
  EXPECT_EQ(s->count_rows("decision_events").value(), 0);
  ASSERT_TRUE(w.flush().is_ok());
  EXPECT_EQ(s->count_rows("decision_events").value(), 3);
}

}  // namespace
}  // namespace patronus
