// The controller over its real protocol: one patronus controller core with its SQLite fleet store
// and its WebSocket/TLS server in this process; N lightweight sites in a forked child process, each
// a real channel client with its own Ed25519 identity that enrols with a token, reports its key
// and acknowledges every config it is sent (it does not run a site: the protocol is what is
// measured). Times are taken on the controller's side: from the change to the acknowledgement of
// the last site whose config changed.
//
//   controller_protocol_bench [--sites 1000] [--mesh 200] [--adds 20]
//
// Phases, each with its baseline in the same run:
//  1. enrolment storm: N sites of a hub-spoke fleet (2 hubs, a spoke summary) enrol at once;
//     controller memory per site (the parent's RSS, the sites being in the child);
//  2. a spoke joins (--adds times): latency p50/p99 and the sites compiled and pushed; baseline:
//     the same joins with every site recompiled (a settings change forced with each);
//  3. a change of every site's config (the fleet's classes): full recompute and push to N;
//  4. a site joins a --mesh full mesh (every config changes), --adds/2 times.
// Targets (the controller issue, 2-core machine): p99 <= 2 s, full recompute <= 1 s. The debounce
// (500 ms) is part of every latency.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "../controller/fleet_fixtures.hpp"
#include "channel.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/env/asio_env.hpp"
#include "patronus/site/site_config.hpp"

namespace {

using namespace patronus;
namespace ctl = controller::v1;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

// ---- the sites (child process) --------------------------------------------------------------

struct LightSite {
  std::string name;
  std::string key;  // WireGuard public key, base64
  std::unique_ptr<channel::Client> client;
  std::uint64_t acked = 0;
};

// Reads "name token\n" lines from `in`; each is a site that connects, enrols and acknowledges.
int run_sites(int in, std::uint16_t port, channel::PublicKey pin) {
  boost::asio::io_context io;
  boost::asio::posix::stream_descriptor commands(io, in);
  boost::asio::streambuf buf;
  std::map<std::string, std::unique_ptr<LightSite>> sites;
  std::function<void()> next;
  next = [&] {
    boost::asio::async_read_until(
        commands, buf, '\n', [&](const boost::system::error_code& ec, std::size_t) {
          if (ec) {
            io.stop();
            return;
          }
          std::istream is(&buf);
          std::string name, token;
          int index = 0;
          is >> name >> token >> index;
          is.ignore(1);
          auto s = std::make_unique<LightSite>();
          s->name = name;
          s->key = controller::test::fleet_site(index).public_keys[0];
          LightSite* raw = s.get();
          channel::Client::Handlers h;
          h.connected = [raw, token] {
            ctl::FromSite m;
            m.mutable_enrol()->set_token(token);
            m.mutable_enrol()->set_site(raw->name);
            raw->client->send(m.SerializeAsString());
          };
          h.message = [raw](std::string_view bytes) {
            ctl::ToSite m;
            if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
            ctl::FromSite r;
            if (m.has_welcome()) {
              auto* k = r.mutable_keys()->add_keys();
              k->set_endpoint("wan0");
              k->set_public_key(raw->key);
            } else if (m.has_config()) {
              // What a site checks before it applies: the hash of what it was sent.
              const bool ok = site::content_hash(m.config().config()) == m.config().hash();
              r.mutable_ack()->set_version(m.config().version());
              r.mutable_ack()->set_hash(m.config().hash());
              if (!ok) r.mutable_ack()->set_error("hash mismatch");
              raw->acked = m.config().version();
            } else {
              return;
            }
            raw->client->send(r.SerializeAsString());
          };
          h.disconnected = [raw](const std::string& why, std::int64_t) {
            std::fprintf(stderr, "site %s: %s\n", raw->name.c_str(), why.c_str());
          };
          auto id = channel::make_identity(name);
          if (!id.is_ok()) std::abort();
          channel::ClientOptions o;
          o.seed = static_cast<std::uint64_t>(index) + 1;
          o.min_backoff_ms = 200;
          s->client = std::make_unique<channel::Client>(
              io, "127.0.0.1:" + std::to_string(port), pin, std::move(id).value(), std::move(h), o);
          s->client->start();
          sites[name] = std::move(s);
          next();
        });
  };
  next();
  io.run();
  return 0;
}

// ---- the controller (this process) ------------------------------------------------------------

// The fleet store as the controller uses it, counted: how many batches, records and bytes it
// writes (what a replicated store must carry: ADR 0027).
struct CountingStore final : controller::FleetStore {
  explicit CountingStore(std::unique_ptr<controller::FleetStore> s) : inner(std::move(s)) {}
  Result<controller::FleetSnapshot> load() override { return inner->load(); }
  Status write(const controller::FleetBatch& b) override {
    ++batches;
    const std::uint64_t before = bytes;
    auto add = [this](const auto& msgs) {
      for (const auto& m : msgs) {
        ++records;
        bytes += m.ByteSizeLong();
      }
    };
    add(b.put_sites);
    add(b.put_tokens);
    add(b.put_users);
    add(b.put_api_keys);
    add(b.put_sessions);
    add(b.audit);
    records += b.delete_sites.size() + b.delete_tokens.size() + b.delete_users.size() +
               b.delete_api_keys.size() + b.delete_sessions.size();
    if (b.settings) {
      ++records;
      bytes += b.settings->ByteSizeLong();
    }
    if (b.compiler) {
      ++records;
      bytes += b.compiler->ByteSizeLong();
    }
    largest = std::max(largest, bytes - before);
    return inner->write(b);
  }
  Result<std::vector<controller::fleet::AuditEntry>> read_audit(
      const controller::AuditQuery& q) override {
    return inner->read_audit(q);
  }
  struct Mark {
    std::uint64_t batches, records, bytes;
  };
  Mark mark() const { return {batches, records, bytes}; }
  std::string since(const Mark& m, double ms) const {
    char buf[200];
    std::snprintf(buf, sizeof buf, "store: %llu batches, %llu records, %.0f KB in %.0f ms",
                  static_cast<unsigned long long>(batches - m.batches),
                  static_cast<unsigned long long>(records - m.records),
                  static_cast<double>(bytes - m.bytes) / 1024, ms);
    return buf;
  }
  std::unique_ptr<controller::FleetStore> inner;
  std::uint64_t batches = 0, records = 0, bytes = 0, largest = 0;
};

struct Bench {
  boost::asio::io_context io;
  env::AsioEnv env{io, 1};
  struct Out : controller::Outbox {
    void send(controller::SessionId s, const ctl::ToSite& m) override {
      if (server) server->send(s, m.SerializeAsString());
      if (m.has_config()) ++pushes;
    }
    void close(controller::SessionId s) override {
      if (server) server->close(s);
    }
    channel::Server* server = nullptr;
    std::uint64_t pushes = 0;
  } out;
  std::string dir;
  std::unique_ptr<CountingStore> store;
  std::unique_ptr<controller::Core> core;
  std::unique_ptr<channel::Server> server;
  std::map<channel::SessionId, channel::PublicKey> peers;
  std::map<std::string, std::uint64_t> acked;  // site -> version acknowledged
  std::string watch_keys_of;                   // the site whose keys start the clock
  Clock::time_point changed_at;
  bool changed = false;
  pid_t child = -1;
  int to_child = -1;

  explicit Bench(const std::string& name) {
    dir = std::filesystem::temp_directory_path() /
          ("patronus-ctlbench-" + name + "-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    store = std::make_unique<CountingStore>(
        controller::open_sqlite_fleet_store(dir + "/fleet.db").value());
    core = std::make_unique<controller::Core>(env, out, controller::CoreOptions{}, store.get());
    auto id = channel::make_identity("bench-controller").value();
    channel::Server::Handlers h;
    h.opened = [this](channel::SessionId s, const channel::PublicKey& k) { peers[s] = k; };
    h.message = [this](channel::SessionId s, std::string_view bytes) {
      ctl::FromSite m;
      if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) return;
      if (m.has_keys() && !watch_keys_of.empty() && core->session_site(s) == watch_keys_of) {
        changed_at = Clock::now();  // the fleet changes now: the new site is ready
        changed = true;
      }
      (void)core->receive(s, peers[s], m);
      if (m.has_ack()) {
        if (auto site = core->session_site(s)) acked[*site] = m.ack().version();
      }
    };
    h.closed = [this](channel::SessionId s) {
      core->disconnect(s);
      peers.erase(s);
    };
    server = channel::Server::listen(io, "127.0.0.1:0", id, h).value();
    out.server = server.get();
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    const std::uint16_t port = server->port();
    const channel::PublicKey pin = id.public_key;
    child = ::fork();
    if (child == 0) {
      ::close(fds[1]);
      _exit(run_sites(fds[0], port, pin));
    }
    ::close(fds[0]);
    to_child = fds[1];
  }
  ~Bench() {
    ::close(to_child);
    ::kill(child, SIGTERM);
    ::waitpid(child, nullptr, 0);
    out.server = nullptr;
    server.reset();
    core.reset();
    store.reset();
    std::filesystem::remove_all(dir);
  }

  void enrol(int index) {
    const std::string name = "s" + std::to_string(index);
    auto spec = controller::test::fleet_site(index, false);
    if (auto s = core->add_site(spec); !s.is_ok()) {
      std::cerr << s.message() << "\n";
      std::abort();
    }
    const std::string line =
        name + " " + core->create_token(name).value() + " " + std::to_string(index) + "\n";
    if (::write(to_child, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      std::abort();
    }
  }

  // Runs until every site in the mesh has acknowledged its current version (or `limit_s`).
  bool settle(double limit_s) {
    const auto end = Clock::now() + std::chrono::milliseconds(static_cast<int>(limit_s * 1000));
    while (Clock::now() < end) {
      io.run_for(std::chrono::milliseconds(5));
      bool all = true;
      for (const auto& s : core->statuses()) {
        if (!s.in_mesh || s.version == 0 || acked[s.name] < s.version) {
          all = false;
          break;
        }
      }
      if (all && !core->statuses().empty()) return true;
    }
    return false;
  }
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

struct Joins {
  std::vector<double> ms;
  double compiled = 0, pushed = 0;
};

// `count` sites join one after the other; each is timed from its keys reaching the controller to
// the last acknowledgement of a site whose config changed.
Joins join(Bench& b, int first, int count, bool force_all) {
  Joins j;
  for (int i = first; i < first + count; ++i) {
    const std::uint64_t compiles = b.core->counters().configs_compiled;
    const std::uint64_t pushes = b.out.pushes;
    b.watch_keys_of = "s" + std::to_string(i);
    b.changed = false;
    b.enrol(i);
    while (!b.changed) b.io.run_for(std::chrono::milliseconds(1));
    if (force_all) b.core->recompile_all();  // the baseline: every site recompiled
    if (!b.settle(30)) {
      std::cerr << "join of s" << i << " did not settle\n";
      std::abort();
    }
    j.ms.push_back(ms_since(b.changed_at));
    j.compiled += static_cast<double>(b.core->counters().configs_compiled - compiles);
    j.pushed += static_cast<double>(b.out.pushes - pushes);
  }
  j.compiled /= count;
  j.pushed /= count;
  return j;
}

void print_joins(const char* what, const Joins& j) {
  std::printf("%-52s p50 %7.1f ms  p99 %7.1f ms  max %7.1f ms  compiled %6.1f  pushed %6.1f\n",
              what, percentile(j.ms, 0.5), percentile(j.ms, 0.99),
              *std::max_element(j.ms.begin(), j.ms.end()), j.compiled, j.pushed);
}

}  // namespace

int main(int argc, char** argv) {
  int sites = 1000, mesh = 200, adds = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    const int v = std::atoi(argv[i + 1]);
    if (a == "--sites")
      sites = v;
    else if (a == "--mesh")
      mesh = v;
    else if (a == "--adds")
      adds = v;
  }
  ::signal(SIGPIPE, SIG_IGN);
  bool ok = true;
  {
    Bench b("hub-spoke");
    controller::FleetSettings hs;
    hs.topology.kind = mesh::TopologyKind::kHubSpoke;
    hs.topology.hubs = {"s0", "s1"};
    hs.topology.spoke_summary = {model::IpPrefix::parse("172.16.0.0/12").value()};
    b.core->set_settings(hs);
    b.io.run_for(std::chrono::milliseconds(10));
    const long rss0 = rss_kib();
    const auto m0 = b.store->mark();
    const auto t0 = Clock::now();
    for (int i = 0; i < sites; ++i) b.enrol(i);
    if (!b.settle(120)) {
      std::cerr << "the enrolment storm did not settle\n";
      return 1;
    }
    const double storm = ms_since(t0);
    std::printf("enrolment storm %s; largest batch %.0f KB\n", b.store->since(m0, storm).c_str(),
                static_cast<double>(b.store->largest) / 1024);
    const long rss1 = rss_kib();
    std::printf(
        "hub-spoke, %d sites: enrolment storm (all enrolled, compiled, pushed, acked) "
        "%.0f ms; controller RSS +%ld KiB = %.1f KiB per site\n",
        sites, storm, rss1 - rss0, static_cast<double>(rss1 - rss0) / sites);
    const auto m1 = b.store->mark();
    const auto tj = Clock::now();
    const Joins inc = join(b, sites, adds, false);
    std::printf("%d spoke joins: %s\n", adds, b.store->since(m1, ms_since(tj)).c_str());
    const Joins all = join(b, sites + adds, std::max(2, adds / 2), true);
    print_joins("a spoke joins (incremental)", inc);
    print_joins("a spoke joins, every site recompiled (baseline)", all);
    // Every site's config changes: the fleet's classes.
    controller::FleetSettings with_classes = hs;
    auto* c = with_classes.base.mutable_runtime()->mutable_classes();
    auto* cls = c->add_classes();
    cls->set_name("default");
    cls->set_priority(site::v1::PRIORITY_NORMAL);
    c->set_default_class("default");
    const std::uint64_t compiles = b.core->counters().configs_compiled;
    const auto m2 = b.store->mark();
    const auto t1 = Clock::now();
    b.core->set_settings(with_classes);
    b.core->flush();  // no debounce: the recompute itself
    const double compile_ms = ms_since(t1);
    if (!b.settle(60)) return 1;
    const double full_ms = ms_since(t1);
    std::printf("every site's config changes: %s\n", b.store->since(m2, full_ms).c_str());
    std::printf(
        "every site's config changes: %llu compiled in %.0f ms; last ack %.0f ms after "
        "the change\n",
        static_cast<unsigned long long>(b.core->counters().configs_compiled - compiles), compile_ms,
        full_ms);
    const double p99 = percentile(inc.ms, 0.99);
    std::printf(
        "targets: spoke join p99 %.0f ms (<= 2000): %s; full recompute %.0f ms (<= 1000): "
        "%s; work per change %.1f vs %.1f compiled (baseline)\n",
        p99, p99 <= 2000 ? "met" : "MISSED", compile_ms, compile_ms <= 1000 ? "met" : "MISSED",
        inc.compiled, all.compiled);
    ok = ok && p99 <= 2000 && compile_ms <= 1000 && inc.compiled < all.compiled;
  }
  {
    Bench b("full-mesh");
    for (int i = 0; i < mesh; ++i) b.enrol(i);
    if (!b.settle(120)) {
      std::cerr << "the full mesh did not settle\n";
      return 1;
    }
    const Joins j = join(b, mesh, std::max(2, adds / 2), false);
    char what[80];
    std::snprintf(what, sizeof what, "a site joins a %d-site full mesh", mesh);
    print_joins(what, j);
    const double p99 = percentile(j.ms, 0.99);
    std::printf("target: full-mesh join p99 %.0f ms (<= 2000): %s\n", p99,
                p99 <= 2000 ? "met" : "MISSED");
    ok = ok && p99 <= 2000;
  }
  return ok ? 0 : 1;
}
