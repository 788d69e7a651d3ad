#include "controller_cmd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "api_session.hpp"
#include "cli_common.hpp"
#include "control.hpp"
#include "patronus/controller/core.hpp"
#include "patronus/core/config_schema.hpp"
#include "patronus/core/plugin_host.hpp"
#include "patronus/core/router.hpp"
#include "patronus/fleet/v1/fleet.pb.h"
#include "patronus/mesh/sites.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/site/site_config.hpp"
#include "patronus/steering/classes.hpp"
#include "patronus/util/file.hpp"
#include "socket.hpp"

namespace patronus::cli {

namespace fleet = ::patronus::fleet::v1;
using json = nlohmann::json;

namespace {

Result<std::int64_t> parse_duration_s(const std::string& text) {
  if (text.empty()) return invalid_argument("--ttl: empty");
  std::size_t used = 0;
  long long n = 0;
  try {
    n = std::stoll(text, &used);
  } catch (const std::exception&) {
    return invalid_argument("--ttl: '" + text + "' is not a duration (30m, 24h, 7d)");
  }
  const std::string unit = text.substr(used);
  const long long mult = unit == "s" || unit.empty() ? 1
                         : unit == "m"               ? 60
                         : unit == "h"               ? 3600
                         : unit == "d"               ? 86400
                                                     : -1;
  if (mult < 0 || n <= 0)
    return invalid_argument("--ttl: '" + text + "' is not a duration (30m, 24h, 7d)");
  return static_cast<std::int64_t>(n * mult);
}

// ---- through the operator API -------------------------------------------------------------

// The API's JSON of a resource, as the message the printers take (the API speaks the messages'
// JSON mapping).
template <typename M>
Result<M> from_api(const json& j) {
  M m;
  if (auto st = control::from_json(j.dump(), &m); !st.is_ok()) {
    return internal_error("the controller's answer does not parse: " + st.message());
  }
  return m;
}

// Every page of a list.
Result<json> all_pages(ApiSession& api, const std::string& path, const std::string& query) {
  json items = json::array();
  std::string cursor;
  for (int page = 0; page < 10000; ++page) {
    auto r = api.call("GET", path + "?limit=500" + query +
                                 (cursor.empty() ? "" : "&cursor=" + http::percent_encode(cursor)));
    if (!r.is_ok()) return r.status();
    if (r.value().status != 200) return failed_precondition(problem_text(r.value()));
    const json j = json::parse(r.value().body, nullptr, false);
    if (!j.is_object() || !j.contains("items")) return internal_error("not a page: " + path);
    for (const auto& i : j["items"]) items.push_back(i);
    if (!j.contains("next_cursor") || j["next_cursor"].is_null()) break;
    cursor = j["next_cursor"].get<std::string>();
  }
  return json{{"items", items}};
}

std::string seg(const std::string& s) {
  return http::percent_encode(s);
}

json site_input(const fleet::Site& s) {
  json j{{"name", s.name()}, {"endpoints", json::array()}, {"subnets", s.subnets()}};
  for (const auto& e : s.endpoints()) {
    json ej{{"name", e.name()},
            {"address", e.address()},
            {"type", e.type()},
            {"cost_per_gb", e.cost_per_gb()}};
    if (e.has_bandwidth_mbps()) ej["bandwidth_mbps"] = e.bandwidth_mbps();
    j["endpoints"].push_back(ej);
  }
  return j;
}

// The request as API calls; the answer as the message the printers take, and the API's own JSON
// (what --json prints).
Result<fleet::Response> ask_api(const ControllerCommands& c, const fleet::Request& q,
                                std::string* api_json) {
  auto session = ApiSession::open();
  if (!session.is_ok()) return session.status();
  ApiSession& api = session.value();
  fleet::Response out;
  auto expect = [&](const Result<ApiResult>& r, std::initializer_list<int> ok) -> Status {
    if (!r.is_ok()) return r.status();
    if (std::find(ok.begin(), ok.end(), r.value().status) == ok.end()) {
      return failed_precondition(problem_text(r.value()));
    }
    *api_json = r.value().body.empty() ? "{}" : r.value().body;
    return Status::ok();
  };
  auto done = [&](const std::string& message) {
    out.mutable_done()->set_message(message);
    return out;
  };
  switch (q.what_case()) {
    case fleet::Request::kListSites:
    case fleet::Request::kFleetStatus: {
      auto all = all_pages(api, "/api/v1/sites", "");
      if (!all.is_ok()) return all.status();
      *api_json = all.value().dump();
      fleet::Sites* sites = q.has_list_sites() ? out.mutable_sites() : out.mutable_status();
      (void)sites->sites_size();
      for (const auto& i : all.value()["items"]) {
        auto v = from_api<fleet::SiteView>(i);
        if (!v.is_ok()) return v.status();
        *sites->add_sites() = v.value();
      }
      return out;
    }
    case fleet::Request::kFleetPaths: {
      auto all = all_pages(api, "/api/v1/paths", "");
      if (!all.is_ok()) return all.status();
      *api_json = all.value().dump();
      out.mutable_paths();
      for (const auto& i : all.value()["items"]) {
        auto v = from_api<fleet::PathView>(i);
        if (!v.is_ok()) return v.status();
        *out.mutable_paths()->add_paths() = v.value();
      }
      return out;
    }
    case fleet::Request::kFleetDecisions: {
      const auto& d = q.fleet_decisions();
      auto all =
          all_pages(api, "/api/v1/decisions", d.site().empty() ? "" : "&site=" + seg(d.site()));
      if (!all.is_ok()) return all.status();
      json items = all.value()["items"];
      if (items.size() > std::max(d.limit(), 1u))
        items.erase(items.begin() + std::max(d.limit(), 1u), items.end());
      *api_json = json{{"items", items}}.dump();
      out.mutable_decisions();
      for (const auto& i : items) {
        auto v = from_api<fleet::DecisionView>(i);
        if (!v.is_ok()) return v.status();
        *out.mutable_decisions()->add_decisions() = v.value();
      }
      return out;
    }
    case fleet::Request::kAddSites: {
      int added = 0;
      for (const auto& s : q.add_sites().sites()) {
        auto r = api.call("POST", "/api/v1/sites", site_input(s).dump());
        if (auto st = expect(r, {201}); !st.is_ok()) {
          return failed_precondition(
              "site '" + s.name() + "': " + st.message() +
              (added ? " (" + std::to_string(added) + " site(s) before it were added)"
                     : std::string()));
        }
        ++added;
      }
      return done(std::to_string(added) + " site(s) added");
    }
    case fleet::Request::kRemoveSite: {
      auto r = api.call("DELETE", "/api/v1/sites/" + seg(q.remove_site().name()));
      if (auto st = expect(r, {204}); !st.is_ok()) return st;
      return done("site '" + q.remove_site().name() + "' removed");
    }
    case fleet::Request::kApproveSite: {
      auto r = api.call("POST", "/api/v1/sites/" + seg(q.approve_site().name()) + "/approve");
      if (auto st = expect(r, {200}); !st.is_ok()) return st;
      return done("site '" + q.approve_site().name() + "' approved");
    }
    case fleet::Request::kCreateToken: {
      const json body =
          q.create_token().ttl_s() > 0 ? json{{"ttl_s", q.create_token().ttl_s()}} : json::object();
      auto r =
          api.call("POST", "/api/v1/sites/" + seg(q.create_token().site()) + "/enrolment-tokens",
                   body.dump());
      if (auto st = expect(r, {201}); !st.is_ok()) return st;
      auto t = from_api<fleet::TokenReply>(json::parse(r.value().body));
      if (!t.is_ok()) return t.status();
      *out.mutable_token() = t.value();
      return out;
    }
    case fleet::Request::kRotateKey: {
      auto r = api.call("POST", "/api/v1/sites/" + seg(q.rotate_key().site()) + "/endpoints/" +
                                    seg(q.rotate_key().endpoint()) + "/rotate-key");
      if (auto st = expect(r, {202}); !st.is_ok()) return st;
      return done("rotating " + q.rotate_key().site() + "/" + q.rotate_key().endpoint() +
                  ": the site stages its next key; it commits once every peer has it (see "
                  "`fleet status`)");
    }
    case fleet::Request::kSetTopology: {
      // What is not given keeps its value: the current topology, read with its ETag so that
      // another operator's change in between is not overwritten.
      auto cur = api.call("GET", "/api/v1/topology");
      if (auto st = expect(cur, {200}); !st.is_ok()) return st;
      json t = json::parse(cur.value().body);
      const auto& s = q.set_topology();
      if (s.spoke_summary_size() > 0) {
        return invalid_argument(
            "--summary: not yet for running sites (see `patronus controller "
            "topology set --help`)");
      }
      t["topology"] = s.topology().empty() ? "full-mesh" : s.topology();
      t["hubs"] = s.hubs();
      t["k"] = s.k();
      t["links"] = json::array();
      if (s.mesh_given()) {
        const json given = json::parse(control::to_json(s));
        for (const char* k : {"overlay_ipv4", "overlay_ipv6", "rules", "links"}) t[k] = given[k];
        t["persistent_keepalive"] = s.persistent_keepalive();
      }
      auto r = api.call("PUT", "/api/v1/topology", t.dump(), "application/json", cur.value().etag);
      if (auto st = expect(r, {200}); !st.is_ok()) return st;
      return done("topology " + t["topology"].get<std::string>());
    }
    case fleet::Request::kSetClasses: {
      if (q.set_classes().clear()) {
        auto r = api.call("DELETE", "/api/v1/classes");
        if (auto st = expect(r, {204}); !st.is_ok()) return st;
        return done("every site keeps its own classes");
      }
      auto r = api.call("PUT", "/api/v1/classes", control::to_json(q.set_classes().classes()));
      if (auto st = expect(r, {200}); !st.is_ok()) return st;
      return done(std::to_string(q.set_classes().classes().classes_size()) +
                  " class(es) for the fleet");
    }
    case fleet::Request::kSetPolicies: {
      const auto& sp = q.set_policies();
      for (const auto& name : sp.remove()) {
        const auto slash = name.find('/');
        auto r = api.call("DELETE", "/api/v1/policies/" + seg(name.substr(0, slash)) + "/" +
                                        seg(name.substr(slash + 1)));
        if (auto st = expect(r, {204}); !st.is_ok()) return st;
      }
      if (sp.inventory_given()) {
        auto r = api.call("PUT", "/api/v1/inventory", sp.inventory(), "application/yaml");
        if (auto st = expect(r, {204}); !st.is_ok()) return st;
      }
      if (sp.apply_size() > 0) {
        // The manifests as the operator wrote them: the controller parses them again.
        std::string text;
        for (const auto& f : c.files) {
          auto t = read_text_file(f);
          if (!t.is_ok()) return t.status();
          text += "---\n" + t.value() + "\n";
        }
        auto r = api.call("POST", "/api/v1/policies", text, "application/yaml");
        if (auto st = expect(r, {200}); !st.is_ok()) return st;
      }
      return done(std::to_string(sp.apply_size()) + " applied, " +
                  std::to_string(sp.remove_size()) + " removed" +
                  (!sp.inventory_given()    ? ""
                   : sp.inventory().empty() ? ", inventory cleared"
                                            : ", inventory replaced"));
    }
    case fleet::Request::kListPolicies: {
      auto r = api.call("GET", "/api/v1/policies");
      if (auto st = expect(r, {200}); !st.is_ok()) return st;
      out.mutable_policies();
      const json page = json::parse(r.value().body);
      for (const auto& p : page["items"]) {
        auto* x = out.mutable_policies()->add_policies();
        x->set_ns(p.value("namespace", ""));
        x->set_name(p.value("name", ""));
        x->set_spec_json(p["spec"].dump());
        x->set_enabled(p.value("enabled", true));
        x->set_priority(p.value("priority", 0));
      }
      auto inv = api.call("GET", "/api/v1/inventory");
      if (inv.is_ok() && inv.value().status == 200 && !inv.value().body.empty()) {
        auto m = policy::parse_manifests(inv.value().body, "inventory", policy::Accept::kInventory);
        if (m.is_ok()) {
          out.mutable_policies()->set_namespaces(
              static_cast<std::uint32_t>(m.value().namespaces.size()));
          out.mutable_policies()->set_pods(static_cast<std::uint32_t>(m.value().pods.size()));
        }
      }
      return out;
    }
    case fleet::Request::kSetPlugin: {
      const auto& sp = q.set_plugin().setting();
      const std::string path = "/api/v1/plugins/" + seg(sp.instance()) +
                               (sp.site().empty() ? "" : "?site=" + seg(sp.site()));
      const std::string what =
          "'" + sp.instance() + "'" + (sp.site().empty() ? " for the fleet" : " on " + sp.site());
      if (q.set_plugin().remove()) {
        auto r = api.call("DELETE", path);
        if (auto st = expect(r, {204}); !st.is_ok()) return st;
        return done("removed the setting of " + what);
      }
      json body = json::parse(control::to_json(sp));
      for (const char* k : {"instance", "site"}) body.erase(k);
      auto r = api.call("PUT", path, body.dump());
      if (auto st = expect(r, {200}); !st.is_ok()) return st;
      return done("set " + what);
    }
    case fleet::Request::kListPlugins: {
      auto r = api.call("GET", "/api/v1/plugins");
      if (auto st = expect(r, {200}); !st.is_ok()) return st;
      out.mutable_plugins();
      const json page = json::parse(r.value().body);
      for (const auto& p : page["items"]) {
        auto v = from_api<fleet::PluginSetting>(p);
        if (!v.is_ok()) return v.status();
        *out.mutable_plugins()->add_plugins() = v.value();
      }
      return out;
    }
    default:
      return invalid_argument("this command has no API route");
  }
}

// ---- through the admin socket ---------------------------------------------------------------

Result<fleet::Response> ask(const ControllerCommands& c, const fleet::Request& q,
                            std::string* api_json) {
  if (!c.socket_given) return ask_api(c, q, api_json);
  auto line =
      control::call_line(c.socket, control::to_json(q), c.timeout_ms, "patronus-controller");
  if (!line.is_ok()) return line.status();
  fleet::Response r;
  if (auto s = control::from_json(line.value(), &r); !s.is_ok()) {
    return internal_error("the controller's reply does not parse: " + s.message());
  }
  if (r.has_error()) return Status(Code::kFailedPrecondition, r.error().message());
  return r;
}

std::string ago(std::int64_t unix_ns) {
  if (unix_ns == 0) return "never";
  const auto now = std::chrono::duration_cast<std::chrono::nanoseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return std::to_string(std::max<std::int64_t>(0, (now - unix_ns) / 1'000'000'000)) + " s ago";
}

void print_sites(const fleet::Sites& sites, bool status) {
  if (sites.sites().empty()) {
    std::cout << "no sites (add them with `patronus controller sites add -f FILE`)\n";
    return;
  }
  std::cout << std::left << std::setw(16) << "SITE" << std::setw(10) << "ENROLLED" << std::setw(11)
            << "CONNECTED" << std::setw(10) << "VERSION" << std::setw(10) << "APPLIED"
            << std::setw(7) << "DRIFT";
  if (status)
    std::cout << std::setw(16) << "PATHS UP/DEG/DN" << std::setw(12) << "LAST SEEN"
              << "NOTES";
  else
    std::cout << "ENDPOINTS";
  std::cout << "\n";
  for (const auto& s : sites.sites()) {
    std::cout << std::setw(16) << s.name() << std::setw(10)
              << (s.enrolled() ? (s.approved() ? "yes" : "pending") : "no") << std::setw(11)
              << (s.connected() ? "yes" : "no") << std::setw(10) << s.version() << std::setw(10)
              << s.applied_version() << std::setw(7) << (s.drift() ? "DRIFT" : "-");
    if (status) {
      std::cout << std::setw(16)
                << (std::to_string(s.paths_up()) + "/" + std::to_string(s.paths_degraded()) + "/" +
                    std::to_string(s.paths_down()))
                << std::setw(12) << ago(s.last_seen_unix_ns());
      if (!s.last_error().empty()) std::cout << "apply failed: " << s.last_error() << "  ";
      if (!s.rotation().empty()) std::cout << "rotating " << s.rotation();
    } else {
      std::string eps;
      for (const auto& e : s.endpoints()) {
        eps += (eps.empty() ? "" : ", ") + e.name() + " " + e.address() + " " + e.type();
      }
      std::cout << eps;
    }
    std::cout << "\n";
  }
}

}  // namespace

void register_controller_commands(CLI::App& app, ControllerCommands& c,
                                  const std::string& default_plugin_dir) {
  c.plugin_dir = default_plugin_dir;
  c.root =
      app.add_subcommand("controller",
                         "the fleet, through the operator API (`patronus login` first; or "
                         "PATRONUS_API_KEY), or --socket for the controller's local admin socket");
  c.root->add_option("--socket", c.socket, "the controller's admin socket")->capture_default_str();
  c.root->add_option("--timeout-ms", c.timeout_ms, "wait this long for a reply")
      ->check(CLI::Range(100, 600000));
  c.root->add_flag("--json", c.json, "print the reply as JSON");
  c.root->require_subcommand(1);
  auto* sites = c.root->add_subcommand("sites", "the fleet's sites");
  sites->require_subcommand(1);
  c.sites_list = sites->add_subcommand("list", "every site with its endpoints and state");
  c.sites_add = sites->add_subcommand(
      "add", "add the sites of a sites file (name, endpoints, subnets; keys come from the sites)");
  c.sites_add->add_option("-f,--file", c.file, "a sites file (the `sites:` format)")->required();
  c.sites_remove = sites->add_subcommand("remove", "remove a site (its peers drop its paths)");
  c.sites_remove->add_option("name", c.name)->required();
  c.sites_approve = sites->add_subcommand("approve", "let an enrolled site have its config");
  c.sites_approve->add_option("name", c.name)->required();
  auto* token = c.root->add_subcommand("token", "enrolment tokens");
  token->require_subcommand(1);
  c.token_create = token->add_subcommand("create", "a one-time token for a site to enrol with");
  c.token_create->add_option("--site", c.site, "the site it enrols")->required();
  c.token_create->add_option("--ttl", c.ttl, "valid for (30m, 24h, 7d)")->capture_default_str();
  c.token_create->add_option("--out", c.out,
                             "write it to this new owner-only file (else it is printed)");
  auto* topology = c.root->add_subcommand("topology", "the fleet's topology");
  topology->require_subcommand(1);
  c.topology_set =
      topology->add_subcommand("set", "full-mesh, hub-spoke, partial or explicit (-f: links:)");
  c.topology_set->add_option("kind", c.topology)->required();
  c.topology_set->add_option("--hubs", c.hubs, "hub sites (hub-spoke)")->delimiter(',');
  c.topology_set->add_option("--k", c.k, "peers per site (partial)")->check(CLI::Range(1, 64));
  c.topology_set
      ->add_option("--summary", c.summary,
                   "hub-spoke: the fleet's LAN supernets, so a new spoke changes only "
                   "the hubs' configs")
      ->delimiter(',');
  c.topology_set->add_option("-f,--file", c.mesh_file,
                             "the fleet's overlay:, rules: and, for explicit, links: (the sites "
                             "file's sections)");
  auto* classes = c.root->add_subcommand("classes", "the fleet's traffic classes");
  classes->require_subcommand(1);
  c.classes_set = classes->add_subcommand("set", "classes and rules for every site");
  c.classes_set->add_option("-f,--file", c.file, "YAML with `classes:` and `rules:`");
  c.classes_set->add_flag("--clear", c.clear, "every site keeps the classes of its own file");
  auto* policy = c.root->add_subcommand("policy", "the fleet's Kubernetes NetworkPolicies");
  policy->require_subcommand(1);
  c.policy_apply = policy->add_subcommand(
      "apply", "add or replace NetworkPolicies (by namespace and name) on every site");
  c.policy_apply->add_option("-f,--file", c.files, "NetworkPolicy YAML files")->required();
  c.policy_delete = policy->add_subcommand("delete", "remove one of the fleet's policies");
  c.policy_delete->add_option("name", c.name, "NAMESPACE/NAME")->required();
  c.policy_list = policy->add_subcommand("list", "the fleet's policies and inventory");
  c.policy_inventory = policy->add_subcommand(
      "inventory", "replace the fleet's Namespaces and Pods (what the policies select)");
  c.policy_inventory->add_option("-f,--file", c.files, "Namespace and Pod YAML files");
  c.policy_inventory->add_flag("--clear", c.clear, "no fleet inventory");
  auto* plugins = c.root->add_subcommand("plugins", "plugin instances' configs for the fleet");
  plugins->require_subcommand(1);
  c.plugins_set = plugins->add_subcommand(
      "set", "the config of a plugin instance on every site (or, with --site, on one)");
  c.plugins_set->add_option("instance", c.instance, "the instance, as the sites' files name it")
      ->required();
  c.plugins_set->add_option("--plugin", c.plugin, "the plugin it runs (probes, bfd, ...)")
      ->required();
  c.plugins_set->add_option("-f,--file", c.file, "the instance's config (YAML)")->required();
  c.plugins_set->add_option("--site", c.site, "only this site (overrides the fleet's)");
  c.plugins_set
      ->add_option("--plugin-dir", c.plugin_dir,
                   "where the plugin is, to check the config with its own schema")
      ->capture_default_str();
  c.plugins_unset = plugins->add_subcommand("unset", "drop a setting (the file's config returns)");
  c.plugins_unset->add_option("instance", c.instance)->required();
  c.plugins_unset->add_option("--site", c.site, "the site's override");
  c.plugins_list = plugins->add_subcommand("list", "the fleet's and each site's settings");
  auto* fleetc = c.root->add_subcommand("fleet", "the fleet's state");
  fleetc->require_subcommand(1);
  c.fleet_status = fleetc->add_subcommand(
      "status", "each site: connected, version applied, drift, last seen, paths");
  c.fleet_paths = fleetc->add_subcommand("paths", "every path as its sites report it");
  c.fleet_decisions = fleetc->add_subcommand(
      "decisions", "the steering decisions the sites reported, newest first");
  c.fleet_decisions->add_option("--site", c.site, "one site's");
  c.fleet_decisions->add_option("--limit", c.limit, "at most this many")
      ->check(CLI::Range(1, 1000));
  auto* keys = c.root->add_subcommand("keys", "the sites' endpoint keys");
  keys->require_subcommand(1);
  c.keys_rotate = keys->add_subcommand(
      "rotate",
      "rotate an endpoint's key: the site stages its next key, the peers get it, the "
      "site commits (no path goes down)");
  c.keys_rotate->add_option("site", c.site)->required();
  c.keys_rotate->add_option("endpoint", c.endpoint)->required();
  for (CLI::App* leaf :
       {c.fleet_decisions, c.keys_rotate, c.sites_list, c.sites_add, c.sites_remove,
        c.sites_approve, c.token_create, c.topology_set, c.classes_set, c.fleet_status,
        c.fleet_paths, c.policy_apply, c.policy_delete, c.policy_list, c.policy_inventory,
        c.plugins_set, c.plugins_unset, c.plugins_list}) {
    leaf->add_flag("--json", c.json, "print the reply as JSON");
  }
}

int run_controller_commands(ControllerCommands& c) {
  if (c.root == nullptr || !c.root->parsed()) return -1;
  fleet::Request q;
  if (c.sites_list->parsed()) {
    q.mutable_list_sites();
  } else if (c.fleet_status->parsed()) {
    q.mutable_fleet_status();
  } else if (c.fleet_paths->parsed()) {
    q.mutable_fleet_paths();
  } else if (c.sites_add->parsed()) {
    auto text = read_text_file(c.file);
    if (!text.is_ok()) return fail(kExitUsage, text.status().message());
    auto file = mesh::parse_sites_yaml(text.value(), c.file);
    if (!file.is_ok()) return fail(kExitUsage, file.status().message());
    for (const auto& spec : file.value().sites) {
      auto* s = q.mutable_add_sites()->add_sites();
      s->set_name(spec.site.name);
      for (const auto& e : spec.site.endpoints) {
        auto* r = s->add_endpoints();
        r->set_name(e.name);
        r->set_address(e.address.to_string());
        r->set_type(model::to_string(e.type));
        r->set_cost_per_gb(e.cost_per_gb);
        if (e.bandwidth_mbps) r->set_bandwidth_mbps(*e.bandwidth_mbps);
      }
      for (const auto& p : spec.subnets) s->add_subnets(p.to_string());
    }
    if (!file.value().peers.empty() || !file.value().links.empty()) {
      return fail(kExitUsage, c.file + ": peers and links are not fleet sites; give only `sites:`");
    }
  } else if (c.policy_apply->parsed()) {
    // Validated here for the file and line; the controller validates again.
    auto m = policy::load_manifests(c.files, policy::Accept::kPolicies);
    if (!m.is_ok()) return fail(kExitUsage, m.status().message());
    if (m.value().policies.empty()) {
      return fail(kExitUsage, "policy apply: no NetworkPolicy in the file(s) given");
    }
    for (const auto& np : m.value().policies) {
      *q.mutable_set_policies()->add_apply() = controller::policy_record(np);
    }
  } else if (c.plugins_set->parsed()) {
    // The config in the plugin's own encoding, judged by the plugin itself: what a site's
    // instance would be configured with.
    auto yaml = read_text_file(c.file);
    if (!yaml.is_ok()) return fail(kExitUsage, yaml.status().message());
    core::PluginRegistry reg;
    if (auto l = reg.load_named(c.plugin_dir, {c.plugin}); !l.is_ok()) {
      return fail(kExitUsage, l.status().message());
    }
    const auto lib = reg.find(c.plugin);
    if (!lib) return fail(kExitUsage, "no plugin '" + c.plugin + "' in " + c.plugin_dir);
    std::string bytes;
    if (lib->schema()) {
      auto b = lib->schema()->text_to_bytes(yaml.value(), c.file);
      if (!b.is_ok()) return fail(kExitUsage, b.status().message());
      bytes = b.value();
    }
    if (auto st = core::check_plugin_config(lib, c.instance, bytes); !st.is_ok()) {
      return fail(kExitUsage, c.file + ": " + st.message());
    }
    auto* sp = q.mutable_set_plugin()->mutable_setting();
    sp->set_instance(c.instance);
    sp->set_plugin(c.plugin);
    sp->set_config(bytes);
    sp->set_site(c.site);
    sp->set_yaml(yaml.value());
  } else if (c.plugins_unset->parsed()) {
    q.mutable_set_plugin()->mutable_setting()->set_instance(c.instance);
    q.mutable_set_plugin()->mutable_setting()->set_site(c.site);
    q.mutable_set_plugin()->set_remove(true);
  } else if (c.plugins_list->parsed()) {
    q.mutable_list_plugins();
  } else if (c.policy_delete->parsed()) {
    if (c.name.find('/') == std::string::npos) return fail(kExitUsage, "expected NAMESPACE/NAME");
    q.mutable_set_policies()->add_remove(c.name);
  } else if (c.policy_list->parsed()) {
    q.mutable_list_policies();
  } else if (c.policy_inventory->parsed()) {
    if (c.clear == !c.files.empty()) {
      return fail(kExitUsage, "policy inventory: give -f FILE... or --clear");
    }
    std::string text;
    for (const auto& f : c.files) {
      auto t = read_text_file(f);
      if (!t.is_ok()) return fail(kExitUsage, t.status().message());
      auto m = policy::parse_manifests(t.value(), f, policy::Accept::kInventory);
      if (!m.is_ok()) return fail(kExitUsage, m.status().message());
      if (m.value().namespaces.empty() && m.value().pods.empty()) {
        return fail(kExitUsage, f + ": no Namespace or Pod (to empty the inventory: --clear)");
      }
      text += "---\n" + t.value() + "\n";
    }
    q.mutable_set_policies()->set_inventory(text);
    q.mutable_set_policies()->set_inventory_given(true);
  } else if (c.fleet_decisions->parsed()) {
    q.mutable_fleet_decisions()->set_site(c.site);
    q.mutable_fleet_decisions()->set_limit(c.limit);
  } else if (c.keys_rotate->parsed()) {
    q.mutable_rotate_key()->set_site(c.site);
    q.mutable_rotate_key()->set_endpoint(c.endpoint);
  } else if (c.sites_remove->parsed()) {
    q.mutable_remove_site()->set_name(c.name);
  } else if (c.sites_approve->parsed()) {
    q.mutable_approve_site()->set_name(c.name);
  } else if (c.token_create->parsed()) {
    struct stat st {};
    if (!c.out.empty() && ::lstat(c.out.c_str(), &st) == 0) {
      return fail(kExitUsage, c.out + " exists: --out writes a new file (no token was made)");
    }
    auto ttl = parse_duration_s(c.ttl);
    if (!ttl.is_ok()) return fail(kExitUsage, ttl.status().message());
    q.mutable_create_token()->set_site(c.site);
    q.mutable_create_token()->set_ttl_s(ttl.value());
  } else if (c.topology_set->parsed()) {
    auto* t = q.mutable_set_topology();
    t->set_topology(c.topology);
    for (const auto& h : c.hubs) t->add_hubs(h);
    t->set_k(static_cast<std::uint32_t>(c.k));
    for (const auto& p : c.summary) t->add_spoke_summary(p);
    if (!c.mesh_file.empty()) {
      auto text = read_text_file(c.mesh_file);
      if (!text.is_ok()) return fail(kExitUsage, text.status().message());
      auto m = mesh::parse_mesh_settings_yaml(text.value(), c.mesh_file);
      if (!m.is_ok()) return fail(kExitUsage, m.status().message());
      const auto& ms = m.value();
      t->set_mesh_given(true);
      t->set_overlay_ipv4(ms.overlay.ipv4.to_string());
      t->set_overlay_ipv6(ms.overlay.ipv6 ? ms.overlay.ipv6->to_string() : "none");
      t->set_persistent_keepalive(ms.overlay.persistent_keepalive);
      for (const auto& l : ms.links) {
        auto* link = t->add_links();
        link->set_a_site(l.a_site);
        link->set_a_endpoint(l.a_endpoint);
        link->set_b_site(l.b_site);
        link->set_b_endpoint(l.b_endpoint);
      }
      const auto defaults = mesh::EndpointRules::defaults();
      for (int type = 0; type < mesh::kInterfaceTypeCount; ++type) {
        const auto& rule = ms.rules.by_type[static_cast<std::size_t>(type)];
        const auto& d = defaults.by_type[static_cast<std::size_t>(type)];
        if (rule.peers_mask == d.peers_mask && rule.hubs_only == d.hubs_only) continue;
        auto* tr = t->add_rules();
        tr->set_type(model::to_string(static_cast<model::InterfaceType>(type)));
        for (int peer = 0; peer < mesh::kInterfaceTypeCount; ++peer) {
          if ((rule.peers_mask >> peer) & 1U) {
            tr->add_peers(model::to_string(static_cast<model::InterfaceType>(peer)));
          }
        }
        tr->set_hubs_only(rule.hubs_only);
      }
    }
  } else if (c.classes_set->parsed()) {
    if (c.clear == !c.file.empty()) return fail(kExitUsage, "classes set: give -f FILE or --clear");
    if (c.clear) {
      q.mutable_set_classes()->set_clear(true);
    } else {
      auto text = read_text_file(c.file);
      if (!text.is_ok()) return fail(kExitUsage, text.status().message());
      auto set = steering::parse_classes_yaml(text.value(), "");
      if (!set.is_ok()) return fail(kExitUsage, c.file + ": " + set.status().message());
      *q.mutable_set_classes()->mutable_classes() = site::classes_to_proto(set.value());
    }
  } else {
    return -1;
  }
  c.socket_given = c.root->get_option("--socket")->count() > 0;
  std::string api_json;
  auto r = ask(c, q, &api_json);
  if (!r.is_ok()) return fail(kExitFailure, r.status().message());
  const fleet::Response& v = r.value();
  if (v.has_token() && !c.out.empty()) {
    // A token goes to a new owner-only file, never through a log or a command line.
    if (auto s = write_new_file(c.out, v.token().token() + "\n", 0600); !s.is_ok()) {
      return fail(kExitFailure, s.message());
    }
    std::cout << "token for site '" << v.token().site() << "' written to " << c.out
              << " (valid until " << utc_time(v.token().expires_unix_ns()) << ")\n";
    return 0;
  }
  if (c.json) {
    // Through the API: the API's own JSON; through the socket: the admin protocol's.
    std::cout << (c.socket_given ? control::to_json(v, 2) : json::parse(api_json).dump(2)) << "\n";
    return 0;
  }
  switch (v.what_case()) {
    case fleet::Response::kSites:
      print_sites(v.sites(), false);
      break;
    case fleet::Response::kStatus:
      print_sites(v.status(), true);
      break;
    case fleet::Response::kPaths: {
      if (v.paths().paths().empty()) {
        std::cout << "no path reported yet\n";
        break;
      }
      std::cout << std::left << std::setw(6) << "ID" << std::setw(36) << "PATH" << std::setw(10)
                << "STATE" << std::setw(16) << "REPORTED BY" << std::setw(8) << "SCORE"
                << std::setw(9) << "RTT ms"
                << "LOSS %\n";
      auto num = [](bool has, double v, int prec) {
        if (!has) return std::string("-");
        std::ostringstream o;
        o << std::fixed << std::setprecision(prec) << v;
        return o.str();
      };
      for (const auto& p : v.paths().paths()) {
        const bool down = p.state() == "down";
        std::cout << std::setw(6) << p.id() << std::setw(36) << p.name() << std::setw(10)
                  << p.state() << std::setw(16) << p.site() << std::setw(8)
                  << num(p.has_score(), p.score(), 1) << std::setw(9)
                  << num(p.has_rtt_ms() && !down, p.rtt_ms(), 2)
                  << num(p.has_loss_pct(), p.loss_pct(), 2) << "\n";
      }
      break;
    }
    case fleet::Response::kDecisions:
      if (v.decisions().decisions().empty()) std::cout << "no decision reported yet\n";
      for (const auto& d : v.decisions().decisions()) {
        std::cout << utc_time(d.unix_ns()) << "  " << d.site() << "  " << d.class_name() << " -> "
                  << d.remote_site() << ": " << d.reason() << " (path " << d.from_path() << " -> "
                  << d.to_path() << ") " << d.why() << "\n";
      }
      break;
    case fleet::Response::kToken:
      std::cout << v.token().token() << "\n";
      std::cerr << "patronus: a one-time token for site '" << v.token().site() << "', valid until "
                << utc_time(v.token().expires_unix_ns())
                << "; put it in the file the site's `controller.token_file` names\n";
      break;
    case fleet::Response::kDone:
      std::cout << v.done().message() << "\n";
      break;
    case fleet::Response::kPlugins:
      if (v.plugins().plugins().empty()) std::cout << "no plugin settings for the fleet\n";
      for (const auto& p : v.plugins().plugins()) {
        std::cout << p.instance() << " (" << p.plugin() << ") on "
                  << (p.site().empty() ? std::string("every site") : p.site()) << ":\n";
        std::istringstream lines(p.yaml());
        for (std::string line; std::getline(lines, line);) std::cout << "  " << line << "\n";
      }
      break;
    case fleet::Response::kPolicies:
      if (v.policies().policies().empty()) std::cout << "no policies for the fleet\n";
      for (const auto& p : v.policies().policies()) {
        std::cout << p.ns() << "/" << p.name() << (p.enabled() ? "" : " (disabled)")
                  << (p.priority() != 0 ? " priority " + std::to_string(p.priority()) : "") << "\n";
      }
      std::cout << "inventory: " << v.policies().namespaces() << " namespace(s), "
                << v.policies().pods() << " pod(s)\n";
      break;
    default:
      break;
  }
  return 0;
}

}  // namespace patronus::cli
