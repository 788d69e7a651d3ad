#include "mesh_cmd.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_common.hpp"
#include "patronus/mesh/analysis.hpp"
#include "patronus/mesh/graph.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/mesh/plan.hpp"
#include "patronus/site/plan_store.hpp"
#include "patronus/store/store.hpp"

namespace patronus::cli {

using nlohmann::json;

void register_mesh_commands(CLI::App& app, MeshCommands& m) {
  auto* keys = app.add_subcommand("keys", "WireGuard keys (like wg genkey / wg pubkey)");
  keys->require_subcommand(1);
  m.keys_generate = keys->add_subcommand("generate", "print a new private key and its public key");
  m.keys_generate->add_flag("--json", m.json, "JSON: {\"private_key\": ..., \"public_key\": ...}");
  m.keys_rotate = keys->add_subcommand(
      "rotate",
      "stage an endpoint's next key (its peers learn and accept it), or --commit: switch to it");
  m.keys_rotate->add_option("site", m.rotate_site, "site")->required();
  m.keys_rotate->add_option("endpoint", m.rotate_endpoint, "endpoint")->required();
  m.keys_rotate->add_option("--keys-dir", m.keys_dir, "private keys, DIR/<site>/<endpoint>.key")
      ->required();
  m.keys_rotate->add_flag("--commit", m.rotate_commit,
                          "make the staged key the endpoint's key (after every peer re-planned)");
  m.keys_rotate->add_flag("--json", m.json, "JSON: {\"public_key\": ..., \"state\": ...}");
  m.keys_public =
      keys->add_subcommand("public", "read a private key on stdin, print its public key");

  auto* mesh = app.add_subcommand("mesh", "site mesh: tunnel plans and topology analysis");
  mesh->require_subcommand(1);
  for (auto* cmd : {mesh->add_subcommand("plan", "plan the tunnels of a site mesh"),
                    mesh->add_subcommand("analyze", "single points of failure, cuts, routes")}) {
    cmd->add_option("--sites", m.sites_file, "sites file (YAML)")->required();
    cmd->add_option("--topology", m.topology, "full-mesh, hub-spoke, partial or explicit")
        ->capture_default_str();
    cmd->add_option("--hubs", m.hubs, "hub sites, comma-separated (overrides the file's hubs)");
    cmd->add_option("--k", m.k, "partial: peers per site before repair")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    cmd->add_flag("--json", m.json, "JSON output");
    if (cmd->get_name() == "plan") {
      m.plan = cmd;
      cmd->add_option("--db", m.db, "state database: keeps overlay addresses, stores the paths");
      cmd->add_option("--keys-dir", m.keys_dir,
                      "private keys, DIR/<site>/<endpoint>.key (0600); missing keys are created");
      cmd->add_option("--wg-config-dir", m.wg_config_dir,
                      "write DIR/<site>/<interface>.conf (wg-quick format) per site interface");
      cmd->add_option("--site", m.only_site, "with --wg-config-dir: only this site's configs");
      cmd->add_option("--key-path-on-site", m.key_path_on_site,
                      "without a private key: PostUp loads it from PATH/<site>/<endpoint>.key")
          ->capture_default_str();
    } else {
      m.analyze = cmd;
      cmd->add_option("--pair", m.pairs, "a,b: disjoint paths and one minimum cut (repeatable)");
      cmd->add_option("--route", m.routes, "a,b: best route over up paths (repeatable)");
      cmd->add_option("--down", m.down,
                      "path id (site:endpoint~site:endpoint) or site~site to treat as down");
    }
  }
}

namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

Result<mesh::MeshGraph> build_graph(const MeshCommands& m) {
  auto topo = mesh::parse_topology(m.topology);
  if (!topo.is_ok()) return invalid_argument("--topology: " + topo.status().message());
  auto file = mesh::load_sites_file(m.sites_file);
  if (!file.is_ok()) return file.status();
  mesh::TopologyOptions opt;
  opt.kind = topo.value();
  opt.hubs = split(m.hubs, ',');
  opt.k = m.k;
  return mesh::MeshGraph::build(std::move(file).value(), opt);
}

Result<std::pair<std::uint32_t, std::uint32_t>> site_pair(const mesh::MeshGraph& g,
                                                          const std::string& spec,
                                                          const char* option) {
  const auto parts = split(spec, ',');
  if (parts.size() != 2) {
    return invalid_argument(std::string(option) + " '" + spec + "': expected two sites, a,b");
  }
  const int a = g.find_site(parts[0]);
  const int b = g.find_site(parts[1]);
  if (a < 0 || b < 0) {
    return invalid_argument(std::string(option) + " '" + spec + "': unknown site '" +
                            (a < 0 ? parts[0] : parts[1]) + "'");
  }
  if (a == b) return invalid_argument(std::string(option) + " '" + spec + "': same site twice");
  return std::make_pair(static_cast<std::uint32_t>(a), static_cast<std::uint32_t>(b));
}

// --down: a path id, or "a~b" for every path between two sites.
Status apply_down(mesh::MeshGraph& g, const std::vector<std::string>& down) {
  for (const auto& d : down) {
    bool matched = false;
    const auto tilde = d.find('~');
    const bool whole_pair = tilde != std::string::npos && d.find(':') == std::string::npos;
    for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
      bool hit = false;
      if (whole_pair) {
        const std::string a = d.substr(0, tilde), b = d.substr(tilde + 1);
        const std::string& s = g.site(g.path_src(id)).site.name;
        const std::string& t = g.site(g.path_dst(id)).site.name;
        hit = (s == a && t == b) || (s == b && t == a);
      } else {
        hit = g.path_key(id) == d;
      }
      if (hit) {
        g.set_path_up(id, false);
        matched = true;
      }
    }
    if (!matched) {
      return invalid_argument("--down '" + d +
                              "': no such path (use an id from 'mesh plan', or site~site)");
    }
  }
  return Status::ok();
}

std::string path_list(const mesh::MeshGraph& g, const std::vector<std::uint32_t>& ids) {
  std::string s;
  for (auto id : ids) s += (s.empty() ? "" : ", ") + g.path_key(id);
  return s.empty() ? "none" : s;
}

// Work estimate for the all-pairs cut tree (n-1 max flows, each at most degree augmentations over
// all paths); above the bound only the requested pairs are computed.
constexpr double kCutTreeBudget = 2e9;

int run_analyze(MeshCommands& m) {
  auto built = build_graph(m);
  if (!built.is_ok()) return fail(kExitUsage, built.status().message());
  mesh::MeshGraph& g = built.value();
  if (auto s = apply_down(g, m.down); !s.is_ok()) return fail(kExitUsage, s.message());
  std::vector<std::pair<std::uint32_t, std::uint32_t>> pairs, routes;
  for (const auto& p : m.pairs) {
    auto sp = site_pair(g, p, "--pair");
    if (!sp.is_ok()) return fail(kExitUsage, sp.status().message());
    pairs.push_back(sp.value());
  }
  for (const auto& r : m.routes) {
    auto sp = site_pair(g, r, "--route");
    if (!sp.is_ok()) return fail(kExitUsage, sp.status().message());
    routes.push_back(sp.value());
  }
  const auto n = static_cast<std::uint32_t>(g.num_sites());
  std::uint32_t up_paths = 0;
  std::vector<std::uint32_t> degree(n);
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    if (!g.path(id).up) continue;
    ++up_paths;
    ++degree[g.path_src(id)];
    ++degree[g.path_dst(id)];
  }
  const mesh::Components comps = mesh::connected_components(g);
  const auto cut_sites = mesh::articulation_sites(g);
  const auto bridges = mesh::bridge_paths(g);
  const auto diameter = mesh::hop_diameter(g);
  const std::uint32_t max_degree = n ? *std::max_element(degree.begin(), degree.end()) : 0;
  const double work = double(n) * double(max_degree) * double(up_paths);
  std::optional<mesh::CutTree> tree;
  if (work <= kCutTreeBudget) tree.emplace(g);

  json out;
  out["topology"] = mesh::to_string(g.topology());
  out["sites"] = n;
  out["paths"] = g.num_paths();
  out["paths_up"] = up_paths;
  out["connected"] = comps.count <= 1;
  out["components"] = comps.count;
  json names = json::array();
  for (auto v : cut_sites) names.push_back(g.site(v).site.name);
  out["articulation_sites"] = names;
  json bridge_ids = json::array();
  for (auto id : bridges) bridge_ids.push_back(g.path_key(id));
  out["bridge_paths"] = bridge_ids;
  out["hop_diameter"] = diameter ? json(*diameter) : json(nullptr);
  if (tree && n >= 2) {
    const auto [a, b] = tree->weakest_pair();
    std::vector<std::uint32_t> cut;
    mesh::disjoint_paths(g, a, b, &cut);
    json cut_ids = json::array();
    for (auto id : cut) cut_ids.push_back(g.path_key(id));
    out["edge_connectivity"] = {{"min_cut", tree->global_min()},
                                {"pair", {g.site(a).site.name, g.site(b).site.name}},
                                {"cut_paths", cut_ids}};
    if (n <= 200) {
      json matrix = json::object();
      for (std::uint32_t x = 0; x < n; ++x) {
        json row = json::object();
        for (std::uint32_t y = 0; y < n; ++y) {
          if (x != y) row[g.site(y).site.name] = tree->min_cut(x, y);
        }
        matrix[g.site(x).site.name] = row;
      }
      out["disjoint_paths"] = matrix;
    }
  } else if (!tree) {
    out["edge_connectivity"] = nullptr;
    out["skipped"] =
        "all-pairs cuts skipped: the mesh is too large for n-1 max flows here; "
        "ask for specific pairs with --pair";
  }
  json pair_out = json::array();
  for (auto [a, b] : pairs) {
    std::vector<std::uint32_t> cut;
    const auto k = mesh::disjoint_paths(g, a, b, &cut);
    json ids = json::array();
    for (auto id : cut) ids.push_back(g.path_key(id));
    pair_out.push_back({{"a", g.site(a).site.name},
                        {"b", g.site(b).site.name},
                        {"disjoint_paths", k},
                        {"min_cut", ids}});
  }
  if (!pairs.empty()) out["pairs"] = pair_out;
  json route_out = json::array();
  for (auto [a, b] : routes) {
    const auto r = mesh::best_route(g, a, b);
    json j = {{"from", g.site(a).site.name}, {"to", g.site(b).site.name}};
    if (!r) {
      j["reachable"] = false;
    } else {
      j["reachable"] = true;
      j["weight"] = r->weight;
      json sites = json::array(), paths = json::array();
      for (auto v : r->sites) sites.push_back(g.site(v).site.name);
      for (auto id : r->paths) paths.push_back(g.path_key(id));
      j["sites"] = sites;
      j["paths"] = paths;
      j["relays"] = r->sites.size() - 2;
    }
    route_out.push_back(j);
  }
  if (!routes.empty()) out["routes"] = route_out;

  if (m.json) {
    std::cout << out.dump(2) << std::endl;
    return 0;
  }
  std::cout << "topology " << out["topology"].get<std::string>() << ": " << n << " sites, "
            << g.num_paths() << " paths (" << up_paths << " up), "
            << (comps.count <= 1 ? "connected" : std::to_string(comps.count) + " components")
            << "\n";
  std::cout << "single points of failure:\n  sites (articulation points): ";
  std::string list;
  for (auto v : cut_sites) list += (list.empty() ? "" : ", ") + g.site(v).site.name;
  std::cout << (list.empty() ? "none" : list) << "\n  paths (bridges): " << path_list(g, bridges)
            << "\n";
  std::cout << "hop diameter: " << (diameter ? std::to_string(*diameter) : "n/a (disconnected)")
            << "\n";
  if (out["edge_connectivity"].is_object()) {
    const auto& ec = out["edge_connectivity"];
    std::cout << "edge connectivity: " << ec["min_cut"] << " (weakest pair "
              << ec["pair"][0].get<std::string>() << " - " << ec["pair"][1].get<std::string>()
              << "); cut: ";
    std::string cl;
    for (const auto& c : ec["cut_paths"]) cl += (cl.empty() ? "" : ", ") + c.get<std::string>();
    std::cout << (cl.empty() ? "none" : cl) << "\n";
  } else if (out.contains("skipped")) {
    std::cout << out["skipped"].get<std::string>() << "\n";
  }
  if (tree && n >= 2 && n <= 30) {
    std::size_t w = 4;
    for (std::uint32_t v = 0; v < n; ++v) w = std::max(w, g.site(v).site.name.size() + 1);
    std::cout << "disjoint paths (= min cut) between sites:\n" << std::setw(int(w)) << "";
    for (std::uint32_t y = 0; y < n; ++y) std::cout << std::setw(int(w)) << g.site(y).site.name;
    std::cout << "\n";
    for (std::uint32_t x = 0; x < n; ++x) {
      std::cout << std::left << std::setw(int(w)) << g.site(x).site.name << std::right;
      for (std::uint32_t y = 0; y < n; ++y) {
        std::cout << std::setw(int(w))
                  << (x == y ? std::string("-") : std::to_string(tree->min_cut(x, y)));
      }
      std::cout << "\n";
    }
  }
  for (const auto& p : pair_out) {
    std::string cl;
    for (const auto& c : p["min_cut"]) cl += (cl.empty() ? "" : ", ") + c.get<std::string>();
    std::cout << "pair " << p["a"].get<std::string>() << " - " << p["b"].get<std::string>() << ": "
              << p["disjoint_paths"] << " disjoint path(s); min cut: " << (cl.empty() ? "none" : cl)
              << "\n";
  }
  for (const auto& r : route_out) {
    std::cout << "route " << r["from"].get<std::string>() << " -> " << r["to"].get<std::string>()
              << ": ";
    if (!r["reachable"].get<bool>()) {
      std::cout << "unreachable\n";
      continue;
    }
    std::string via;
    for (const auto& s : r["sites"]) via += (via.empty() ? "" : " -> ") + s.get<std::string>();
    std::cout << via << " (weight " << r["weight"] << ", " << r["relays"] << " relay(s))\n";
  }
  return 0;
}

int run_plan(MeshCommands& m) {
  auto built = build_graph(m);
  if (!built.is_ok()) return fail(kExitUsage, built.status().message());
  mesh::MeshGraph& g = built.value();
  if (!m.only_site.empty() && g.find_site(m.only_site) < 0) {
    return fail(kExitUsage, "--site '" + m.only_site + "': not a site of the sites file");
  }
  if (!m.only_site.empty() && m.wg_config_dir.empty()) {
    return fail(kExitUsage, "--site selects which configs --wg-config-dir writes; give both");
  }
  // Everything that can refuse the input runs before anything is written: overlay addresses
  // (previous ones read from an existing database), then public keys.
  std::unique_ptr<store::Store> db;
  mesh::OverlayAssignments previous;
  std::error_code ec;
  if (!m.db.empty() && std::filesystem::exists(m.db, ec)) {
    auto st = store::Store::open(m.db);
    if (!st.is_ok()) return fail(kExitFailure, st.status().message());
    db = std::move(st).value();
    auto prev = site::stored_overlay(*db);
    if (!prev.is_ok()) return fail(kExitFailure, prev.status().message());
    previous = std::move(prev).value();
  }
  auto overlay = mesh::assign_overlay(g, previous);
  if (!overlay.is_ok()) return fail(kExitUsage, overlay.status().message());
  std::optional<mesh::KeyDirectory> keys;
  if (!m.keys_dir.empty()) {
    auto kd = mesh::KeyDirectory::open(m.keys_dir);
    if (!kd.is_ok()) return fail(kExitFailure, kd.status().message());
    keys.emplace(std::move(kd).value());
    if (auto s = mesh::fill_public_keys(g, *keys); !s.is_ok()) {
      return fail(kExitFailure, s.message());
    }
  }
  auto plan = mesh::make_plan(g, std::move(overlay).value());
  if (!plan.is_ok()) return fail(kExitUsage, plan.status().message());
  if (!m.db.empty() && !db) {
    auto st = store::Store::open(m.db);
    if (!st.is_ok()) return fail(kExitFailure, st.status().message());
    db = std::move(st).value();
  }

  json out = json::parse(mesh::plan_to_json(g, plan.value()));
  if (db) {
    auto ids = site::save_plan(*db, g, plan.value(), static_cast<std::int64_t>(std::time(nullptr)));
    if (!ids.is_ok()) return fail(kExitFailure, ids.status().message());
    for (std::size_t i = 0; i < ids.value().size(); ++i) {
      out["paths"][i]["path_id"] = ids.value()[i].value();
    }
  }
  std::size_t configs = 0;
  if (!m.wg_config_dir.empty()) {
    auto n = site::write_wg_configs(g, plan.value(), keys, m.wg_config_dir, m.only_site,
                                    m.key_path_on_site);
    if (!n.is_ok()) return fail(kExitFailure, n.status().message());
    configs = n.value();
  }
  if (m.json) {
    std::cout << out.dump(2) << std::endl;
    return 0;
  }
  std::cout << "topology " << out["topology"].get<std::string>() << ": " << g.num_sites()
            << " sites, " << g.num_paths() << " paths";
  if (g.repair_links() > 0) std::cout << " (" << g.repair_links() << " site pairs added by repair)";
  std::cout << "\n";
  for (std::uint32_t s = 0; s < g.num_sites(); ++s) {
    const auto& spec = g.site(s);
    if (spec.external) {
      std::cout << spec.site.name << " (peer, not a Patronus site: IKEv2 at "
                << spec.site.endpoints[0].address.to_string() << ")\n";
      continue;
    }
    std::cout << spec.site.name << (g.is_hub(s) ? " (hub)" : "") << "\n";
    for (const auto& iface : plan.value().sites[s]) {
      std::cout << "  " << iface.name << " " << model::to_string(iface.transport) << " port "
                << iface.listen_port << " " << iface.address.ipv4.to_string()
                << (iface.address.ipv6 ? " " + iface.address.ipv6->to_string() : "") << ", "
                << iface.peers.size() << " peer(s)\n";
    }
  }
  std::cout << "paths\n";
  for (std::uint32_t id = 0; id < g.num_paths(); ++id) {
    const auto& p = g.path(id);
    std::cout << "  " << g.path_key(id) << " "
              << model::to_string(g.site(p.src_site).transport(p.src_endpoint))
              << (g.site(g.path_dst(id)).external ? " (peer: not probed)" : "") << "\n";
  }
  if (configs) std::cout << "wrote " << configs << " config(s) under " << m.wg_config_dir << "\n";
  if (db) std::cout << "saved " << g.num_paths() << " path(s) to " << m.db << "\n";
  return 0;
}

}  // namespace

int run_mesh_commands(MeshCommands& m) {
  if (m.keys_generate->parsed()) {
    // Like `wg genkey`: a private key going into a file others can read is said before it is.
    struct stat out {};
    if (::fstat(STDOUT_FILENO, &out) == 0 && S_ISREG(out.st_mode) && (out.st_mode & 077) != 0) {
      std::cerr << "patronus: warning: writing a private key to a file group or others can "
                   "access (mode "
                << std::oct << (out.st_mode & 0777) << std::dec
                << "); run `umask 077` first, or use `patronus mesh plan --keys-dir`, which "
                   "writes keys 0600"
                << std::endl;
    }
    auto kp = mesh::generate_keypair();
    if (!kp.is_ok()) return fail(kExitFailure, kp.status().message());
    const std::string priv = mesh::key_to_base64(kp.value().private_key);
    const std::string pub = mesh::key_to_base64(kp.value().public_key);
    if (m.json) {
      std::cout << json{{"private_key", priv}, {"public_key", pub}}.dump() << std::endl;
    } else {
      std::cout << priv << "\n" << pub << std::endl;
    }
    return 0;
  }
  if (m.keys_public->parsed()) {
    std::string text;
    char buf[256];
    // A key is 44 characters plus a newline; refuse anything much longer without reading it all.
    while (text.size() < 1024 && std::cin.read(buf, sizeof buf).gcount() > 0) {
      text.append(buf, static_cast<std::size_t>(std::cin.gcount()));
    }
    auto priv = mesh::key_from_base64(text, "private key on stdin");
    if (!priv.is_ok()) return fail(kExitUsage, priv.status().message());
    auto pub = mesh::public_key_of(priv.value());
    if (!pub.is_ok()) return fail(kExitUsage, pub.status().message());
    std::cout << mesh::key_to_base64(pub.value()) << std::endl;
    return 0;
  }
  if (m.keys_rotate->parsed()) {
    auto kd = mesh::KeyDirectory::open(m.keys_dir);
    if (!kd.is_ok()) return fail(kExitUsage, kd.status().message());
    auto kp = m.rotate_commit ? kd.value().commit_next(m.rotate_site, m.rotate_endpoint)
                              : kd.value().stage_next(m.rotate_site, m.rotate_endpoint);
    if (!kp.is_ok()) return fail(kExitFailure, kp.status().message());
    const std::string pub = mesh::key_to_base64(kp.value().public_key);
    const char* state = m.rotate_commit ? "committed" : "staged";
    if (m.json) {
      std::cout << json{{"site", m.rotate_site},
                        {"endpoint", m.rotate_endpoint},
                        {"public_key", pub},
                        {"state", state}}
                       .dump()
                << std::endl;
    } else {
      std::cout << pub << " (" << state << ")\n"
                << (m.rotate_commit
                        ? "re-plan every site now (SIGHUP their patronusd): this endpoint "
                          "switches, its peers promote the key they had on standby"
                        : "give it to the peers (next_public_key in the sites file, or the shared "
                          "keys directory) and re-plan them (SIGHUP), then --commit")
                << std::endl;
    }
    return 0;
  }
  if (m.plan->parsed()) return run_plan(m);
  if (m.analyze->parsed()) return run_analyze(m);
  return -1;
}

}  // namespace patronus::cli
