// patronus: the command-line tool. Subcommands: plugins list/inspect, site add/list/remove,
// samples, events, keys generate/public, mesh plan/analyze, policy
// validate/matrix/check/apply/list/delete. Errors go to stderr with a non-zero
// exit; bad input changes nothing.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "api_session.hpp"
#include "cli_common.hpp"
#include "controller_cmd.hpp"
#include "mesh_cmd.hpp"
#include "path_cmd.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/model/types.hpp"
#include "patronus/store/store.hpp"
#include "policy_cmd.hpp"
#include "sim_cmd.hpp"
#include "try_cmd.hpp"

namespace {

using namespace patronus;
using nlohmann::json;

using cli::fail;
using cli::kExitFailure;
using cli::kExitUsage;

std::string default_plugin_dir() {
  if (const char* env = std::getenv("PATRONUS_PLUGIN_DIR")) return env;
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "plugins";
  // The build tree keeps them in build/plugins; an installed tree in <prefix>/lib/patronus/plugins.
  const auto prefix = exe.parent_path().parent_path();
  if (std::filesystem::is_directory(prefix / "plugins", ec)) return (prefix / "plugins").string();
  return (prefix / "lib" / "patronus" / "plugins").string();
}

json info_json(const core::PluginInfo& i) {
  return {{"name", i.name},
          {"kind", core::to_string(i.kind)},
          {"version", i.version},
          {"abi", std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor)},
          {"config_type", i.config_type},
          {"file", i.file}};
}

// "name=wan1,address=203.0.113.1:51820,type=wan,cost=0.05[,bandwidth=100]"
Result<model::Endpoint> parse_endpoint(const std::string& spec, std::size_t index) {
  const std::string where = "--endpoint #" + std::to_string(index + 1) + " ";
  model::Endpoint e;
  bool have_name = false, have_addr = false;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    if (eq == std::string::npos)
      return invalid_argument(where + "'" + item + "': expected key=value");
    const std::string k = item.substr(0, eq), v = item.substr(eq + 1);
    if (k == "name") {
      e.name = v;
      have_name = true;
    } else if (k == "address") {
      auto a = model::SocketAddress::parse(v);
      if (!a.is_ok()) return invalid_argument(where + "address: " + a.status().message());
      e.address = a.value();
      have_addr = true;
    } else if (k == "type") {
      auto t = model::parse_interface_type(v);
      if (!t.is_ok()) return invalid_argument(where + "type: " + t.status().message());
      e.type = t.value();
    } else if (k == "cost") {
      try {
        std::size_t used = 0;
        e.cost_per_gb = std::stod(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        return invalid_argument(where + "cost: '" + v + "' is not a number");
      }
    } else if (k == "bandwidth") {
      try {
        std::size_t used = 0;
        e.bandwidth_mbps = std::stod(v, &used);
        if (used != v.size()) throw std::invalid_argument(v);
      } catch (const std::exception&) {
        return invalid_argument(where + "bandwidth: '" + v + "' is not a number");
      }
    } else {
      return invalid_argument(where + "'" + k +
                              "': unknown key (name, address, type, cost, bandwidth)");
    }
  }
  if (!have_name) return invalid_argument(where + "needs name=");
  if (!have_addr) return invalid_argument(where + "needs address=");
  return e;
}

Result<std::unique_ptr<store::Store>> open_existing(const std::string& db) {
  std::error_code ec;
  if (!std::filesystem::exists(db, ec)) {
    return not_found("no state database at " + db + " (create one with 'patronus site add')");
  }
  return store::Store::open(db);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"patronus: Patronus SD-WAN command-line tool"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("patronus ") + PATRONUS_VERSION + " (plugin ABI " +
                                        std::to_string(PATRONUS_ABI_VERSION_MAJOR) + "." +
                                        std::to_string(PATRONUS_ABI_VERSION_MINOR) + ")");
  std::string db_path = "patronus.db";
  bool as_json = false;

  auto* plugins = app.add_subcommand("plugins", "list, inspect and try plugins");
  plugins->require_subcommand(1);
  std::string plugin_dir = default_plugin_dir();
  auto* plist = plugins->add_subcommand("list", "list the plugins in a directory");
  plist->add_option("--plugin-dir", plugin_dir, "directory of lib*.so plugins");
  plist->add_flag("--json", as_json, "JSON output");
  std::string inspect_file;
  auto* pinspect = plugins->add_subcommand("inspect", "show one plugin file in detail");
  pinspect->add_option("file", inspect_file, "plugin shared object")->required();
  pinspect->add_flag("--json", as_json, "JSON output");
  cli::TryCommand ptry;
  cli::register_try_command(*plugins, ptry);

  auto* site = app.add_subcommand("site", "manage sites in a state database");
  site->require_subcommand(1);
  site->add_option("--db", db_path, "state database file")->capture_default_str();
  std::string site_name, region;
  std::vector<std::string> endpoint_specs;
  auto* sadd = site->add_subcommand("add", "add a site with its endpoints");
  sadd->add_option("name", site_name, "site name (lowercase letters, digits, '-')")->required();
  sadd->add_option("--region", region, "region label");
  sadd->add_option("--endpoint", endpoint_specs,
                   "name=N,address=IP:PORT,type=wan|lte|mpls|broadband|satellite,cost=USD_PER_GB"
                   "[,bandwidth=MBPS] (repeatable)");
  auto* slist = site->add_subcommand("list", "list sites");
  slist->add_flag("--json", as_json, "JSON output");
  auto* sremove = site->add_subcommand("remove", "remove a site");
  sremove->add_option("name", site_name, "site name")->required();

  auto* samples = app.add_subcommand("samples", "summarize probe samples in a state database");
  samples->add_option("--db", db_path, "state database file")->capture_default_str();
  samples->add_flag("--json", as_json, "JSON output");

  std::size_t limit = 50;
  auto* events = app.add_subcommand("events", "show the newest decision events");
  events->add_option("--db", db_path, "state database file")->capture_default_str();
  events->add_option("--limit", limit, "how many")->check(CLI::Range(1, 1000000));
  events->add_flag("--json", as_json, "JSON output");

  cli::MeshCommands mesh;
  cli::register_mesh_commands(app, mesh);
  cli::PolicyCommands policy;
  cli::register_policy_commands(app, policy);
  cli::PathCommands paths;
  cli::register_path_commands(app, paths, default_plugin_dir());
  cli::ControllerCommands controller_cmds;
  cli::register_controller_commands(app, controller_cmds, default_plugin_dir());
  cli::LoginCommands login_cmds;
  cli::register_login_commands(app, login_cmds);
  cli::SimCommands sim;
  cli::register_sim_commands(app, sim, default_plugin_dir());

  CLI11_PARSE(app, argc, argv);

  if (const int rc = cli::run_try_command(ptry); rc >= 0) return rc;
  if (const int rc = cli::run_mesh_commands(mesh); rc >= 0) return rc;
  if (const int rc = cli::run_policy_commands(policy); rc >= 0) return rc;
  if (const int rc = cli::run_path_commands(paths); rc >= 0) return rc;
  if (const int rc = cli::run_controller_commands(controller_cmds); rc >= 0) return rc;
  if (const int rc = cli::run_login_commands(login_cmds); rc >= 0) return rc;
  if (const int rc = cli::run_sim_commands(sim); rc >= 0) return rc;

  if (plist->parsed()) {
    core::PluginRegistry reg;
    auto refused = reg.load_directory(plugin_dir);
    if (!refused.is_ok()) return fail(kExitUsage, refused.status().message());
    const core::DirectoryScan& scan = refused.value();
    if (as_json) {
      json out = {
          {"plugins", json::array()}, {"refused", json::array()}, {"skipped", json::array()}};
      for (const auto& p : reg.plugins()) out["plugins"].push_back(info_json(p->info()));
      for (const auto& r : scan.refused) {
        out["refused"].push_back({{"file", r.file}, {"reason", r.reason}});
      }
      for (const auto& r : scan.skipped) {
        out["skipped"].push_back({{"file", r.file}, {"reason", r.reason}});
      }
      out["scanner"] = {{"scanned", reg.scans_run()}, {"cached", reg.scan_cache_hits()}};
      std::cout << out.dump(2) << std::endl;
    } else {
      std::cout << std::left << std::setw(16) << "NAME" << std::setw(11) << "KIND" << std::setw(10)
                << "VERSION" << std::setw(6) << "ABI" << std::setw(32) << "CONFIG"
                << "FILE\n";
      for (const auto& p : reg.plugins()) {
        const auto& i = p->info();
        std::cout << std::left << std::setw(16) << i.name << std::setw(11)
                  << core::to_string(i.kind) << std::setw(10) << i.version << std::setw(6)
                  << (std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor))
                  << std::setw(32) << (i.config_type.empty() ? "-" : i.config_type) << i.file
                  << "\n";
      }
      for (const auto& r : scan.refused) {
        std::cout << "refused " << r.file << ": " << r.reason << "\n";
      }
      for (const auto& r : scan.skipped) {
        std::cout << "skipped " << r.file << ": " << r.reason << "\n";
      }
      std::cout << "scanner: " << reg.scans_run() << " loaded in a child process first, "
                << reg.scan_cache_hits() << " known from the cache\n";
    }
    // A refused file is a failure to report (a plugin the operator meant to use does not load);
    // a skipped one is not a candidate.
    return scan.refused.empty() ? 0 : kExitFailure;
  }

  if (pinspect->parsed()) {
    core::PluginRegistry reg;
    auto aliases = core::exported_aliases(inspect_file);
    auto lib = reg.load_file(inspect_file);
    if (!lib.is_ok()) return fail(kExitFailure, "refused: " + lib.status().message());
    const auto& l = *lib.value();
    std::vector<std::string> fields;
    if (l.schema()) fields = l.schema()->describe();
    if (as_json) {
      json out = info_json(l.info());
      out["exported_aliases"] = aliases.is_ok() ? aliases.value() : std::vector<std::string>{};
      out["config_fields"] = fields;
      std::cout << out.dump(2) << std::endl;
    } else {
      const auto& i = l.info();
      std::cout << "file:         " << i.file << "\n"
                << "name:         " << i.name << "\n"
                << "kind:         " << core::to_string(i.kind) << "\n"
                << "version:      " << i.version << "\n"
                << "abi:          " << i.abi_major << "." << i.abi_minor << " (host "
                << PATRONUS_ABI_VERSION_MAJOR << "." << PATRONUS_ABI_VERSION_MINOR << ")\n"
                << "config type:  " << (i.config_type.empty() ? "(none)" : i.config_type) << "\n";
      for (const auto& f : fields) std::cout << "  " << f << "\n";
    }
    return 0;
  }

  if (sadd->parsed()) {
    // Parse and validate everything before touching the database.
    model::Site s;
    s.name = site_name;
    s.region = region;
    for (std::size_t i = 0; i < endpoint_specs.size(); ++i) {
      auto e = parse_endpoint(endpoint_specs[i], i);
      if (!e.is_ok()) return fail(kExitUsage, e.status().message());
      s.endpoints.push_back(e.value());
    }
    if (auto v = model::validate_site(s); !v.is_ok()) return fail(kExitUsage, v.message());
    auto st = store::Store::open(db_path);
    if (!st.is_ok()) return fail(kExitFailure, st.status().message());
    auto id = st.value()->add_site(s, static_cast<std::int64_t>(std::time(nullptr)));
    if (!id.is_ok()) return fail(kExitFailure, id.status().message());
    std::cout << "added site " << s.name << " (id " << id.value() << ", " << s.endpoints.size()
              << " endpoint(s))" << std::endl;
    return 0;
  }

  if (slist->parsed() || sremove->parsed() || samples->parsed() || events->parsed()) {
    auto st = open_existing(db_path);
    if (!st.is_ok()) return fail(kExitFailure, st.status().message());
    auto& db = *st.value();
    if (sremove->parsed()) {
      if (auto r = db.remove_site(site_name); !r.is_ok()) return fail(kExitFailure, r.message());
      std::cout << "removed site " << site_name << std::endl;
      return 0;
    }
    if (slist->parsed()) {
      auto sites = db.list_sites();
      if (!sites.is_ok()) return fail(kExitFailure, sites.status().message());
      if (as_json) {
        json out = json::array();
        for (const auto& s : sites.value()) {
          json eps = json::array();
          for (const auto& e : s.endpoints) {
            json je = {{"name", e.name},
                       {"address", e.address.to_string()},
                       {"type", model::to_string(e.type)},
                       {"cost_per_gb", e.cost_per_gb}};
            if (e.bandwidth_mbps) je["bandwidth_mbps"] = *e.bandwidth_mbps;
            eps.push_back(je);
          }
          out.push_back({{"id", s.id.value()},
                         {"name", s.name},
                         {"region", s.region},
                         {"status", model::to_string(s.status)},
                         {"endpoints", eps}});
        }
        std::cout << json{{"sites", out}}.dump(2) << std::endl;
      } else {
        for (const auto& s : sites.value()) {
          std::cout << s.name << (s.region.empty() ? "" : " (" + s.region + ")") << " "
                    << model::to_string(s.status) << "\n";
          for (const auto& e : s.endpoints) {
            std::cout << "  " << e.name << " " << e.address.to_string() << " "
                      << model::to_string(e.type) << " $" << e.cost_per_gb << "/GB\n";
          }
        }
      }
      return 0;
    }
    if (samples->parsed()) {
      auto sum = db.sample_summary();
      if (!sum.is_ok()) return fail(kExitFailure, sum.status().message());
      if (as_json) {
        json out = json::array();
        for (const auto& s : sum.value()) {
          out.push_back({{"source", s.source},
                         {"samples", s.samples},
                         {"lost", s.lost},
                         {"min_rtt_ms", s.min_rtt_ms},
                         {"avg_rtt_ms", s.avg_rtt_ms},
                         {"max_rtt_ms", s.max_rtt_ms}});
        }
        std::cout << json{{"sources", out}}.dump(2) << std::endl;
      } else {
        std::cout << std::left << std::setw(24) << "SOURCE" << std::setw(9) << "SAMPLES"
                  << std::setw(7) << "LOST"
                  << "RTT min/avg/max (ms)\n";
        for (const auto& s : sum.value()) {
          std::cout << std::left << std::setw(24) << s.source << std::setw(9) << s.samples
                    << std::setw(7) << s.lost << std::fixed << std::setprecision(3) << s.min_rtt_ms
                    << "/" << s.avg_rtt_ms << "/" << s.max_rtt_ms << "\n";
        }
      }
      return 0;
    }
    auto ev = db.events(limit);
    if (!ev.is_ok()) return fail(kExitFailure, ev.status().message());
    if (as_json) {
      json out = json::array();
      for (const auto& e : ev.value()) {
        out.push_back({{"timestamp_ns", e.timestamp_ns},
                       {"site", e.site},
                       {"source", e.source},
                       {"kind", e.kind},
                       {"subject", e.subject},
                       {"payload", e.payload}});
      }
      std::cout << json{{"events", out}}.dump(2) << std::endl;
    } else {
      for (const auto& e : ev.value()) {
        std::cout << cli::utc_time(e.timestamp_ns) << " " << e.site << " " << e.source << " "
                  << e.kind << " " << e.payload << "\n";
      }
    }
    return 0;
  }
  return fail(kExitUsage, "no command");
}
