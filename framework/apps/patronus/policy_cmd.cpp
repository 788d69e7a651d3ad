#include "policy_cmd.hpp"

#include <algorithm>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli_common.hpp"
#include "patronus/policy/bpf_datapath.hpp"
#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/policy/reconcile.hpp"
#include "patronus/policy/reference.hpp"
#include "patronus/store/store.hpp"

namespace patronus::cli {

using nlohmann::json;
namespace pol = patronus::policy;

void register_policy_commands(CLI::App& app, PolicyCommands& p) {
  auto* policy = app.add_subcommand("policy", "Kubernetes NetworkPolicy: validate, matrix, check");
  policy->require_subcommand(1);
  p.validate = policy->add_subcommand("validate", "validate NetworkPolicy manifests");
  p.validate->add_option("files", p.files, "YAML files (multi-document, kind: List)")->required();
  p.validate->add_flag("--json", p.json, "JSON output");

  for (auto* cmd :
       {p.matrix = policy->add_subcommand("matrix", "reachability between every pod pair"),
       p.check = policy->add_subcommand("check", "explain one connection's verdict"),
       p.enforce = policy->add_subcommand(
           "enforce",
           "enforce policies on interfaces with the eBPF datapath (root), following "
           "changes to the inputs until interrupted")}) {
    cmd->add_option("--policies", p.policies, "NetworkPolicy YAML files");
    cmd->add_option("--db", p.db, "also use the policies stored in this state database");
    cmd->add_option("--inventory", p.inventory, "Namespace and Pod YAML files")->required();
    if (cmd != p.enforce) cmd->add_flag("--json", p.json, "JSON output");
  }
  p.matrix->add_option("--probe", p.probes, "protocol/port or protocol/port-name, e.g. tcp/80")
      ->required();
  p.matrix
      ->add_option("--datapath", p.datapath,
                   "userspace (the compiled classifier) or bpf (each probe packet through the "
                   "loaded eBPF programs, BPF_PROG_TEST_RUN; root)")
      ->check(CLI::IsMember({"userspace", "bpf"}))
      ->capture_default_str();
  p.enforce->add_option("--interface", p.interfaces, "interface to enforce on (tc ingress)")
      ->required();
  p.enforce->add_option("--name", p.enforcer, "this enforcer's name (for policy counters)")
      ->capture_default_str();
  p.enforce->add_option("--poll-ms", p.poll_ms, "how often the inputs are checked for changes")
      ->check(CLI::Range(50, 60000))
      ->capture_default_str();
  p.counters = policy->add_subcommand("counters", "what a running enforcer has counted");
  p.counters->add_option("--name", p.enforcer, "the enforcer's name")->capture_default_str();
  p.counters->add_flag("--json", p.json, "JSON output");
  p.check->add_option("--from", p.from, "NS/POD or an IP address")->required();
  p.check->add_option("--to", p.to, "NS/POD or an IP address")->required();
  p.check->add_option("--protocol", p.protocol, "TCP, UDP or SCTP")->capture_default_str();
  p.check->add_option("--port", p.port, "destination port")
      ->required()
      ->check(CLI::Range(1, 65535));

  p.apply = policy->add_subcommand("apply", "validate and store policies (all or nothing)");
  p.apply->add_option("--db", p.db, "state database")->required();
  p.apply->add_option("files", p.files, "NetworkPolicy YAML files")->required();
  p.list = policy->add_subcommand("list", "list stored policies");
  p.list->add_option("--db", p.db, "state database")->required();
  p.list->add_flag("--json", p.json, "JSON output");
  p.remove = policy->add_subcommand("delete", "delete one stored policy");
  p.remove->add_option("--db", p.db, "state database")->required();
  p.remove->add_option("name", p.name, "NAMESPACE/NAME")->required();
}

namespace {

Result<std::vector<pol::NetworkPolicy>> stored_policies(const std::string& db_path) {
  std::error_code ec;
  if (!std::filesystem::exists(db_path, ec)) return not_found("no state database at " + db_path);
  auto db = store::Store::open(db_path);
  if (!db.is_ok()) return db.status();
  auto rows = db.value()->list_policies();
  if (!rows.is_ok()) return rows.status();
  std::vector<pol::NetworkPolicy> out;
  for (const auto& r : rows.value()) {
    auto p = pol::policy_from_spec_json(r.name, r.namespace_, r.spec_json, r.enabled, r.priority);
    if (!p.is_ok()) return p.status();
    out.push_back(std::move(p).value());
  }
  return out;
}

struct Loaded {
  std::vector<pol::NetworkPolicy> policies;
  pol::Inventory inventory;
};

Result<Loaded> load_inputs(const PolicyCommands& p) {
  if (p.policies.empty() && p.db.empty()) {
    return invalid_argument("give --policies FILE... and/or --db FILE");
  }
  Loaded l;
  auto pm = pol::load_manifests(p.policies, pol::Accept::kPolicies);
  if (!pm.is_ok()) return pm.status();
  l.policies = std::move(pm.value().policies);
  if (!p.db.empty()) {
    auto stored = stored_policies(p.db);
    if (!stored.is_ok()) return stored.status();
    for (auto& s : stored.value()) {
      for (const auto& f : l.policies) {
        if (f.key() == s.key()) {
          return invalid_argument("NetworkPolicy " + s.key() +
                                  " is both in --policies and in the database");
        }
      }
      l.policies.push_back(std::move(s));
    }
  }
  auto inv = pol::load_manifests(p.inventory, pol::Accept::kInventory);
  if (!inv.is_ok()) return inv.status();
  l.inventory = pol::make_inventory(std::move(inv).value());
  return l;
}

Result<pol::Endpoint> parse_end(const pol::Inventory& inv, const std::string& s,
                                const char* option) {
  const auto slash = s.find('/');
  if (slash != std::string::npos) {
    const int pod = inv.find_pod(s.substr(0, slash), s.substr(slash + 1));
    if (pod < 0)
      return not_found(std::string(option) + " '" + s + "': no such pod in the inventory");
    return pol::Endpoint::for_pod(inv, pod);
  }
  auto ip = model::IpAddress::parse(s);
  if (!ip.is_ok()) {
    return invalid_argument(std::string(option) + " '" + s + "': expected NS/POD or an IP address");
  }
  return pol::Endpoint::for_ip(inv, ip.value());
}

std::string end_name(const pol::Inventory& inv, const pol::Endpoint& e) {
  if (e.pod >= 0) return inv.pods[static_cast<std::size_t>(e.pod)].key();
  return e.ip ? e.ip->to_string() : "?";
}

int run_validate(PolicyCommands& p) {
  auto m = pol::load_manifests(p.files, pol::Accept::kAny);
  if (!m.is_ok()) {
    if (p.json) {
      std::cout << json{{"valid", false}, {"error", m.status().message()}}.dump(2) << std::endl;
    }
    return fail(kExitUsage, m.status().message());
  }
  const auto& v = m.value();
  if (p.json) {
    json names = json::array();
    for (const auto& np : v.policies) names.push_back(np.key());
    std::cout << json{{"valid", true},
                      {"policies", names},
                      {"namespaces", v.namespaces.size()},
                      {"pods", v.pods.size()}}
                     .dump(2)
              << std::endl;
  } else {
    std::cout << "valid: " << v.policies.size() << " NetworkPolicy, " << v.namespaces.size()
              << " Namespace, " << v.pods.size() << " Pod" << std::endl;
  }
  return 0;
}

// One probe packet from `src` to `dst` (the destination's first address, a source address of the
// same family) through the loaded programs.
Result<bool> bpf_verdict(pol::bpf::Datapath& dp, const pol::Pod& src, const pol::Pod& dst,
                         pol::Protocol protocol, int port) {
  const model::IpAddress& to = dst.ips.front();
  const auto from = std::find_if(src.ips.begin(), src.ips.end(), [&](const model::IpAddress& a) {
    return a.is_v4() == to.is_v4();
  });
  if (from == src.ips.end()) {
    return invalid_argument("pod " + src.key() + " has no address of " + dst.key() +
                            "'s family: no packet can go between them");
  }
  pol::bpf::Packet pkt;
  pkt.src = *from;
  pkt.dst = to;
  pkt.protocol = static_cast<std::uint8_t>(protocol);
  pkt.dport = static_cast<std::uint16_t>(port);
  return dp.test_run(pkt.frame());
}

int run_matrix(PolicyCommands& p) {
  std::vector<pol::Probe> probes;
  for (const auto& s : p.probes) {
    auto pr = pol::parse_probe(s);
    if (!pr.is_ok()) return fail(kExitUsage, "--" + pr.status().message());
    probes.push_back(pr.value());
  }
  auto in = load_inputs(p);
  if (!in.is_ok()) return fail(kExitUsage, in.status().message());
  const pol::Inventory& inv = in.value().inventory;
  pol::Classifier cls(in.value().policies, inv);
  // --datapath bpf: every cell is a packet through the loaded programs (stateless).
  std::unique_ptr<pol::bpf::Datapath> dp;
  if (p.datapath == "bpf") {
    for (const auto& pod : inv.pods) {
      if (pod.ips.empty()) {
        return fail(kExitUsage, "pod " + pod.key() +
                                    " has no IP address (status.podIP): the bpf datapath judges "
                                    "packets, which need addresses");
      }
    }
    pol::bpf::Options o;
    o.conntrack = false;
    auto opened = pol::bpf::Datapath::open(o);
    if (!opened.is_ok()) return fail(kExitFailure, opened.status().message());
    dp = std::move(opened).value();
    if (auto s = dp->reload(cls); !s.is_ok()) return fail(kExitFailure, s.message());
  }
  json out = {{"probes", json::object()}};
  for (const auto& pr : probes) {
    pol::Reachability m = pol::reachability(cls, inv, pr);
    const std::vector<int>& order = m.pods;
    if (dp) {  // the same cells, judged by the kernel's programs
      for (std::size_t r = 0; r < order.size(); ++r) {
        for (std::size_t c = 0; c < order.size(); ++c) {
          const pol::Pod& dst = inv.pods[static_cast<std::size_t>(order[c])];
          const int port = pol::probe_port(pr, dst);
          bool ok = false;
          if (port > 0) {
            auto verdict = bpf_verdict(*dp, inv.pods[static_cast<std::size_t>(order[r])], dst,
                                       pr.protocol, port);
            if (!verdict.is_ok()) return fail(kExitFailure, verdict.status().message());
            ok = verdict.value();
          }
          m.allowed[r][c] = ok;
        }
      }
    }
    json grid = json::object();
    for (std::size_t r = 0; r < order.size(); ++r) {
      json row = json::object();
      for (std::size_t c = 0; c < order.size(); ++c) {
        row[inv.pods[static_cast<std::size_t>(order[c])].key()] =
            static_cast<bool>(m.allowed[r][c]);
      }
      grid[inv.pods[static_cast<std::size_t>(order[r])].key()] = row;
    }
    const auto& cells = m.allowed;
    out["probes"][pr.text] = grid;
    if (!p.json) {
      std::size_t w = 4;
      for (int i : order) w = std::max(w, inv.pods[static_cast<std::size_t>(i)].key().size() + 1);
      std::cout << pr.text << " (rows: from, columns: to; . allowed, X denied)\n";
      std::cout << std::setw(static_cast<int>(w)) << "";
      for (int d : order) {
        std::cout << std::setw(static_cast<int>(w)) << inv.pods[static_cast<std::size_t>(d)].key();
      }
      std::cout << "\n";
      for (std::size_t r = 0; r < order.size(); ++r) {
        std::cout << std::left << std::setw(static_cast<int>(w))
                  << inv.pods[static_cast<std::size_t>(order[r])].key() << std::right;
        for (bool ok : cells[r]) std::cout << std::setw(static_cast<int>(w)) << (ok ? "." : "X");
        std::cout << "\n";
      }
    }
  }
  if (p.json) std::cout << out.dump(2) << std::endl;
  return 0;
}

json direction_json(const pol::DirectionResult& d, const std::vector<pol::NetworkPolicy>& ps,
                    const char* dir) {
  json pols = json::array(), by = json::array();
  for (int i : d.policies) pols.push_back(ps[static_cast<std::size_t>(i)].key());
  for (const auto& r : d.allowed_by) {
    by.push_back({{"policy", ps[static_cast<std::size_t>(r.policy)].key()},
                  {"rule", std::string(dir) + "[" + std::to_string(r.rule) + "]"}});
  }
  return {{"checked", d.checked},
          {"isolated", d.isolated},
          {"allowed", d.allowed},
          {"policies", pols},
          {"allowed_by", by}};
}

std::string direction_text(const pol::DirectionResult& d, const std::vector<pol::NetworkPolicy>& ps,
                           const char* dir, const std::string& self, const std::string& other) {
  const std::string head =
      std::string(dir == std::string("egress") ? "egress of " : "ingress of ") + self + ": ";
  if (!d.checked) return head + "not a pod in the inventory: no policy applies";
  if (!d.isolated) {
    return head + "allowed: not isolated (no enabled policy in its namespace selects it for " +
           dir + ")";
  }
  std::string isolating;
  for (int i : d.policies) {
    isolating += (isolating.empty() ? "" : ", ") + ps[static_cast<std::size_t>(i)].key();
  }
  if (!d.allowed) {
    return head + "DENIED: isolated by " + isolating + "; no " + dir +
           " rule of those policies matches " + other + " on this protocol and port";
  }
  std::string by;
  for (const auto& r : d.allowed_by) {
    by += (by.empty() ? "" : ", ") + ps[static_cast<std::size_t>(r.policy)].key() + " " + dir +
          "[" + std::to_string(r.rule) + "]";
  }
  return head + "allowed by " + by + " (isolated by " + isolating + ")";
}

int run_check(PolicyCommands& p) {
  std::string proto = p.protocol;
  std::transform(proto.begin(), proto.end(), proto.begin(), ::toupper);
  const auto protocol = pol::parse_protocol(proto);
  if (!protocol) return fail(kExitUsage, "--protocol '" + p.protocol + "': TCP, UDP or SCTP");
  auto in = load_inputs(p);
  if (!in.is_ok()) return fail(kExitUsage, in.status().message());
  const auto& inv = in.value().inventory;
  auto src = parse_end(inv, p.from, "--from");
  if (!src.is_ok()) return fail(kExitUsage, src.status().message());
  auto dst = parse_end(inv, p.to, "--to");
  if (!dst.is_ok()) return fail(kExitUsage, dst.status().message());
  const auto& ps = in.value().policies;
  pol::ReferenceEvaluator ref(ps, inv);
  const pol::Verdict v = ref.evaluate(src.value(), dst.value(), *protocol, p.port);
  // The daemon's classifier must agree with the explanation; say so if it ever does not.
  pol::Classifier cls(ps, inv);
  const bool compiled = cls.allowed(src.value(), dst.value(), *protocol, p.port);
  if (compiled != v.allowed) {
    return fail(kExitFailure,
                "internal error: the compiled classifier disagrees with the "
                "reference evaluator for this connection; please report it");
  }
  const std::string from = end_name(inv, src.value()), to = end_name(inv, dst.value());
  if (p.json) {
    std::cout << json{{"allowed", v.allowed},
                      {"from", from},
                      {"to", to},
                      {"protocol", pol::to_string(*protocol)},
                      {"port", p.port},
                      {"egress", direction_json(v.egress, ps, "egress")},
                      {"ingress", direction_json(v.ingress, ps, "ingress")}}
                     .dump(2)
              << std::endl;
  } else {
    std::cout << (v.allowed ? "ALLOWED" : "DENIED") << ": " << from << " -> " << to << " "
              << pol::to_string(*protocol) << "/" << p.port << "\n"
              << "  " << direction_text(v.egress, ps, "egress", from, to) << "\n"
              << "  " << direction_text(v.ingress, ps, "ingress", to, from) << std::endl;
  }
  return 0;
}

int run_store(PolicyCommands& p) {
  if (p.apply->parsed()) {
    auto m = pol::load_manifests(p.files, pol::Accept::kPolicies);
    if (!m.is_ok()) return fail(kExitUsage, m.status().message());
    std::vector<model::NetworkPolicyRecord> rows;
    for (const auto& np : m.value().policies) {
      model::NetworkPolicyRecord r;
      r.name = np.name;
      r.namespace_ = np.namespace_;
      r.spec_json = np.spec_json;
      r.enabled = np.enabled;
      r.priority = np.priority;
      rows.push_back(std::move(r));
    }
    auto db = store::Store::open(p.db);
    if (!db.is_ok()) return fail(kExitFailure, db.status().message());
    if (auto s = db.value()->save_policies(rows); !s.is_ok())
      return fail(kExitFailure, s.message());
    std::cout << "stored " << rows.size() << " polic" << (rows.size() == 1 ? "y" : "ies") << " in "
              << p.db << std::endl;
    return 0;
  }
  std::error_code ec;
  if (!std::filesystem::exists(p.db, ec)) return fail(kExitFailure, "no state database at " + p.db);
  auto db = store::Store::open(p.db);
  if (!db.is_ok()) return fail(kExitFailure, db.status().message());
  if (p.remove->parsed()) {
    const auto slash = p.name.find('/');
    if (slash == std::string::npos) return fail(kExitUsage, "expected NAMESPACE/NAME");
    if (auto s = db.value()->delete_policy(p.name.substr(0, slash), p.name.substr(slash + 1));
        !s.is_ok()) {
      return fail(kExitFailure, s.message());
    }
    std::cout << "deleted " << p.name << std::endl;
    return 0;
  }
  auto rows = db.value()->list_policies();
  if (!rows.is_ok()) return fail(kExitFailure, rows.status().message());
  if (p.json) {
    json out = json::array();
    for (const auto& r : rows.value()) {
      out.push_back({{"namespace", r.namespace_},
                     {"name", r.name},
                     {"enabled", r.enabled},
                     {"priority", r.priority},
                     {"spec", json::parse(r.spec_json)}});
    }
    std::cout << json{{"policies", out}}.dump(2) << std::endl;
  } else {
    for (const auto& r : rows.value()) {
      std::cout << r.namespace_ << "/" << r.name << (r.enabled ? "" : " (disabled)") << " priority "
                << r.priority << "\n";
    }
  }
  return 0;
}

// The inputs' modification times (a change re-reads them).
std::vector<std::int64_t> input_stamps(const PolicyCommands& p) {
  std::vector<std::int64_t> out;
  std::vector<std::string> files = p.policies;
  files.insert(files.end(), p.inventory.begin(), p.inventory.end());
  if (!p.db.empty()) {
    files.push_back(p.db);
    files.push_back(p.db + "-wal");
  }
  for (const auto& f : files) {
    std::error_code ec;
    const auto t = std::filesystem::last_write_time(f, ec);
    out.push_back(ec ? -1 : static_cast<std::int64_t>(t.time_since_epoch().count()));
  }
  return out;
}

std::string sync_text(const pol::bpf::SyncReport& r) {
  if (r.full) {
    return "full reload (" + r.why + "): " + std::to_string(r.written) + " map entries written";
  }
  return "incremental: " + std::to_string(r.written) + " map entries written, " +
         std::to_string(r.removed) + " removed";
}

int run_enforce(PolicyCommands& p) {
  if (p.enforcer.empty() || p.enforcer.find('/') != std::string::npos || p.enforcer[0] == '.') {
    return fail(kExitUsage, "--name '" + p.enforcer + "': expected a plain name");
  }
  auto in = load_inputs(p);
  if (!in.is_ok()) return fail(kExitUsage, in.status().message());
  // Signals are taken synchronously: the loop ends, the datapath detaches and unpins.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  pol::bpf::Options o;
  o.pin_name = p.enforcer;
  o.log = [](const std::string& line) { std::cerr << "policy enforce: " << line << std::endl; };
  auto opened = pol::bpf::Datapath::open(o);
  if (!opened.is_ok()) return fail(kExitFailure, opened.status().message());
  auto dp = std::move(opened).value();
  auto cls = std::make_unique<pol::Classifier>(std::move(in.value().policies),
                                               std::move(in.value().inventory));
  if (auto s = dp->sync(*cls); !s.is_ok()) return fail(kExitFailure, s.message());
  for (const auto& itf : p.interfaces) {
    if (auto s = dp->attach(itf); !s.is_ok()) return fail(kExitFailure, s.message());
  }
  std::size_t live = 0;
  for (const auto& np : cls->policies()) live += np.enabled;
  std::cout << "enforcing " << live << " NetworkPolicy over " << cls->inventory().pods.size()
            << " pods on";
  for (const auto& itf : p.interfaces) std::cout << " " << itf;
  std::cout << " (" << sync_text(dp->last_sync()) << "); counters: patronus policy counters --name "
            << p.enforcer << std::endl;
  auto stamps = input_stamps(p);
  while (true) {
    timespec wait{p.poll_ms / 1000, static_cast<long>(p.poll_ms % 1000) * 1000000L};
    const int sig = sigtimedwait(&stop, nullptr, &wait);
    if (sig == SIGINT || sig == SIGTERM) {
      std::cout << "stopping (" << (sig == SIGINT ? "SIGINT" : "SIGTERM")
                << "): detaching from every interface" << std::endl;
      return 0;
    }
    auto now = input_stamps(p);
    if (now == stamps) continue;
    stamps = std::move(now);
    auto next = load_inputs(p);
    if (!next.is_ok()) {
      std::cout << "input error, still enforcing the previous policies: " << next.status().message()
                << std::endl;
      continue;
    }
    const auto r =
        pol::reconcile(cls, std::move(next.value().policies), std::move(next.value().inventory));
    if (!r.changed()) continue;
    if (auto s = dp->sync(*cls); !s.is_ok()) {
      std::cout << "update failed, the previous tables stay: " << s.message() << std::endl;
      continue;
    }
    std::cout << "update: " << r.policies_upserted << " policies added or changed, "
              << r.policies_removed << " removed, " << r.pods_upserted << " pods added or changed, "
              << r.pods_removed << " removed" << (r.rebuilt ? " (namespace labels changed)" : "")
              << "; " << sync_text(dp->last_sync()) << std::endl;
  }
}

int run_counters(PolicyCommands& p) {
  auto c = pol::bpf::read_pinned(p.enforcer);
  if (!c.is_ok()) {
    return fail(c.status().code() == Code::kInvalidArgument ? kExitUsage : kExitFailure,
                c.status().message());
  }
  const auto& v = c.value().verdicts;
  const std::pair<const char*, std::uint64_t> rows[] = {{"allowed", v.allowed},
                                                        {"denied", v.denied},
                                                        {"reply", v.reply},
                                                        {"not_ip", v.not_ip},
                                                        {"malformed", v.malformed},
                                                        {"fragment_passed", v.fragment_passed},
                                                        {"fragment_dropped", v.fragment_dropped},
                                                        {"no_tables", v.no_tables}};
  if (p.json) {
    json verdicts = json::object();
    for (const auto& [k, n] : rows) verdicts[k] = n;
    json pols = json::array();
    for (const auto& pc : c.value().policies) {
      pols.push_back({{"policy", pc.policy},
                      {"direction", pc.direction},
                      {"allowed", pc.allowed},
                      {"denied", pc.denied}});
    }
    std::cout << json{{"enforcer", p.enforcer}, {"verdicts", verdicts}, {"policies", pols}}.dump(2)
              << std::endl;
    return 0;
  }
  std::cout << "verdicts (packets):\n";
  for (const auto& [k, n] : rows) std::cout << "  " << std::left << std::setw(18) << k << n << "\n";
  std::cout << "per policy (packets checked where it isolates a pod):\n";
  for (const auto& pc : c.value().policies) {
    std::cout << "  " << std::left << std::setw(40) << pc.policy << std::setw(8) << pc.direction
              << " allowed " << pc.allowed << ", denied " << pc.denied << "\n";
  }
  std::cout << std::flush;
  return 0;
}

}  // namespace

int run_policy_commands(PolicyCommands& p) {
  if (p.validate->parsed()) return run_validate(p);
  if (p.enforce->parsed()) return run_enforce(p);
  if (p.counters->parsed()) return run_counters(p);
  if (p.matrix->parsed()) return run_matrix(p);
  if (p.check->parsed()) return run_check(p);
  if (p.apply->parsed() || p.list->parsed() || p.remove->parsed()) return run_store(p);
  return -1;
}

}  // namespace patronus::cli
