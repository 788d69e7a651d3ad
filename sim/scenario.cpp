#include "scenario.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "patronus/env/env.hpp"
#include "patronus/steering/classes.hpp"
#include "patronus/util/file.hpp"
#include "yaml_fields.hpp"

namespace patronus::sim {

#ifndef PATRONUS_SIM_PLUGINS
#error "PATRONUS_SIM_PLUGINS (the hosted plugins, comma-separated) must be defined"
#endif

const std::vector<std::string>& hosted_plugins() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    const std::string all = PATRONUS_SIM_PLUGINS;
    std::size_t at = 0;
    while (at < all.size()) {
      const auto end = std::min(all.find(',', at), all.size());
      if (end > at) v.push_back(all.substr(at, end - at));
      at = end + 1;
    }
    return v;
  }();
  return names;
}

bool is_hosted_plugin(const std::string& name) {
  const auto& v = hosted_plugins();
  return std::find(v.begin(), v.end(), name) != v.end();
}

std::string hosted_plugins_text() {
  const auto& v = hosted_plugins();
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == v.size() ? " and " : ", ") + v[i];
  }
  return out;
}

using yamlf::at;

namespace {

// Parse failures inside this file travel as exceptions and leave parse_scenario as a Status.
struct Refused {
  std::string message;
};

[[noreturn]] void refuse(const YAML::Node& n, const std::string& path, const std::string& what) {
  throw Refused{at(n) + path + ": " + what};
}

void check(const Status& s) {
  if (!s.is_ok()) throw Refused{s.message()};
}

// A number followed by a unit; the units are given longest first.
struct Unit {
  const char* suffix;
  double factor;
};

Result<double> with_unit(const std::string& text, std::initializer_list<Unit> units,
                         const char* what) {
  for (const Unit& u : units) {
    const std::string suf = u.suffix;
    if (text.size() <= suf.size() || text.compare(text.size() - suf.size(), suf.size(), suf) != 0) {
      continue;
    }
    const std::string num = text.substr(0, text.size() - suf.size());
    std::size_t used = 0;
    double v = 0;
    try {
      v = std::stod(num, &used);
    } catch (...) {
      used = 0;
    }
    if (used != num.size() || num.empty() || !std::isfinite(v) || v < 0 || num[0] == '+' ||
        num[0] == '-' || std::isspace(static_cast<unsigned char>(num[0]))) {
      break;
    }
    return v * u.factor;
  }
  std::string list;
  for (const Unit& u : units) list += (list.empty() ? "" : ", ") + std::string(u.suffix);
  return invalid_argument("'" + text + "' is not " + what + " (a non-negative number with " +
                          "one of the units " + list + ")");
}

std::string scalar(const YAML::Node& n, const std::string& path) {
  if (!n || !n.IsScalar() || n.Scalar().empty()) refuse(n, path, "expected a value");
  if (!yamlf::valid_utf8(n.Scalar())) refuse(n, path, "not valid UTF-8 text");
  return n.Scalar();
}

template <typename T>
T unit_value(const YAML::Node& n, const std::string& path, Result<T> (*parse)(const std::string&)) {
  auto v = parse(scalar(n, path));
  if (!v.is_ok()) refuse(n, path, v.status().message());
  return v.value();
}

std::int64_t duration_at(const YAML::Node& n, const std::string& path) {
  return unit_value<std::int64_t>(n, path, parse_duration);
}

void keys(const YAML::Node& n, const std::string& path, const std::set<std::string>& allowed) {
  if (!n.IsMap()) refuse(n, path.empty() ? "scenario" : path, "expected a map");
  check(yamlf::check_keys(n, allowed, path));
}

std::string join(const std::string& p, const std::string& k) {
  return yamlf::join(p, k);
}

// A name as the model requires it ([a-z0-9-], not starting or ending with '-').
std::string name_at(const YAML::Node& map, const std::string& path, std::size_t max_len = 63) {
  const std::string v = scalar(map["name"], join(path, "name"));
  if (auto st = model::validate_name(join(path, "name"), v, max_len); !st.is_ok()) {
    throw Refused{at(map["name"]) + st.message()};
  }
  return v;
}

LinkChange link_change(const YAML::Node& n, const std::string& path) {
  LinkChange c;
  if (const auto d = n["delay"]) c.delay_ns = duration_at(d, join(path, "delay"));
  if (const auto j = n["jitter"]) c.jitter_ns = duration_at(j, join(path, "jitter"));
  if (const auto l = n["loss"]) c.loss = unit_value<double>(l, join(path, "loss"), parse_percent);
  if (const auto b = n["bandwidth"]) {
    c.bandwidth_bps = unit_value<double>(b, join(path, "bandwidth"), parse_bandwidth);
    if (*c.bandwidth_bps < 1000) refuse(b, join(path, "bandwidth"), "at least 1Kbps");
  }
  if (c.delay_ns && *c.delay_ns > 10'000'000'000) refuse(n, join(path, "delay"), "at most 10s");
  if (c.jitter_ns && *c.jitter_ns > 10'000'000'000) refuse(n, join(path, "jitter"), "at most 10s");
  return c;
}

model::InterfaceType network_type(const YAML::Node& n, const std::string& path) {
  const std::string t = scalar(n, path);
  if (t == "internet") return model::InterfaceType::kWan;
  auto v = model::parse_interface_type(t);
  if (!v.is_ok()) refuse(n, path, v.status().message() + " (or internet)");
  return v.value();
}

class Parser {
 public:
  explicit Parser(Scenario& s) : s_(s) {}

  void run(const YAML::Node& root) {
    keys(root, "",
         {"name", "seed", "duration", "tick", "topology", "plugins", "classes", "rules",
          "default_class", "sites", "paths", "flows", "faults", "variants", "expect", "transport",
          "probe", "controller"});
    if (root["transport"]) {
      refuse(root["transport"], "transport",
             "transport plugins (WireGuard, IPsec) configure real interfaces and do not run in "
             "the simulator: the simulated WAN is the tunnel. Remove the key.");
    }
    s_.name = name_at(root, "");
    if (const auto n = root["seed"]) {
      auto v = yamlf::integer(n, "seed", 0, INT64_MAX);
      check(v.status());
      s_.seed = static_cast<std::uint64_t>(v.value());
    }
    if (!root["duration"]) refuse(root, "duration", "required");
    s_.duration_ns = duration_at(root["duration"], "duration");
    if (s_.duration_ns < 1'000'000'000 || s_.duration_ns > kMaxScenarioDurationNs) {
      refuse(root["duration"], "duration", "must be 1s .. 7 days");
    }
    if (const auto n = root["tick"]) {
      s_.tick_ns = duration_at(n, "tick");
      if (s_.tick_ns < 1'000'000 || s_.tick_ns > 10'000'000'000) {
        refuse(n, "tick", "must be 1ms .. 10s");
      }
    }
    if (const auto n = root["probe"]) {
      s_.probe = scalar(n, "probe");
      s_.probe_line = n.Mark().line + 1;
    }
    if (root["controller"]) controller(root["controller"]);
    sites(root["sites"]);
    if (root["topology"]) topology(root["topology"]);
    if (root["plugins"]) s_.plugins = plugins(root["plugins"], "plugins");
    classes(root);
    if (root["paths"]) paths(root["paths"]);
    if (root["flows"]) flows(root["flows"]);
    if (root["faults"]) faults(root["faults"]);
    if (root["variants"]) variants(root["variants"]);
    if (root["expect"]) expectations(root["expect"]);
  }

 private:
  void controller(const YAML::Node& n) {
    if (!n.IsMap()) refuse(n, "controller", "expected a map ({} for the defaults)");
    keys(n, "controller", {"latency", "debounce", "max_wait"});
    ControllerSpec c;
    c.line = n.Mark().line + 1;
    if (n["latency"]) c.latency_ns = duration_at(n["latency"], "controller.latency");
    if (c.latency_ns < 0 || c.latency_ns > 10'000'000'000) {
      refuse(n["latency"], "controller.latency", "must be 0 .. 10s");
    }
    if (n["debounce"]) c.debounce_ns = duration_at(n["debounce"], "controller.debounce");
    if (n["max_wait"]) c.max_wait_ns = duration_at(n["max_wait"], "controller.max_wait");
    if (c.debounce_ns < 0 || c.debounce_ns > c.max_wait_ns || c.max_wait_ns > 60'000'000'000) {
      refuse(n, "controller", "needs 0 <= debounce <= max_wait <= 60s");
    }
    s_.controller = c;
  }

  void sites(const YAML::Node& n) {
    if (!n) refuse(n, "sites", "required");
    if (!n.IsSequence() || n.size() < 2) refuse(n, "sites", "expected a list of at least 2 sites");
    if (n.size() > kMaxScenarioSites) {
      refuse(n, "sites", "at most " + std::to_string(kMaxScenarioSites) + " sites");
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = "sites[" + std::to_string(i) + "]";
      const YAML::Node sn = n[i];
      keys(sn, p, {"name", "subnet", "endpoints", "join"});
      SiteSpec site;
      site.line = sn.Mark().line + 1;
      if (const auto j = sn["join"]) {
        if (!s_.controller) {
          refuse(j, p + ".join", "a site joins through the controller: add `controller: {}`");
        }
        site.join_ns = duration_at(j, p + ".join");
        if (*site.join_ns <= 0 || *site.join_ns >= s_.duration_ns) {
          refuse(j, p + ".join", "must be after the start and before the end");
        }
      }
      site.name = name_at(sn, p);
      if (s_.find_site(site.name) >= 0) refuse(sn["name"], p + ".name", "duplicate site name");
      if (const auto sub = sn["subnet"]) {
        auto pr = model::IpPrefix::parse(scalar(sub, p + ".subnet"));
        if (!pr.is_ok()) refuse(sub, p + ".subnet", pr.status().message());
        if (!pr.value().is_v4() || pr.value().host_bits() < 2) {
          refuse(sub, p + ".subnet", "the simulator needs an IPv4 subnet of /30 or larger");
        }
        site.subnet = pr.value();
      }
      const YAML::Node eps = sn["endpoints"];
      if (!eps || !eps.IsSequence() || eps.size() == 0) {
        refuse(eps ? eps : sn, p + ".endpoints", "expected a non-empty list");
      }
      if (eps.size() > kMaxScenarioEndpoints) {
        refuse(eps, p + ".endpoints", "at most " + std::to_string(kMaxScenarioEndpoints));
      }
      for (std::size_t j = 0; j < eps.size(); ++j) {
        const std::string ep = p + ".endpoints[" + std::to_string(j) + "]";
        const YAML::Node en = eps[j];
        keys(en, ep, {"name", "type", "access", "cost_per_gb"});
        EndpointSpec e;
        e.line = en.Mark().line + 1;
        e.name = name_at(en, ep, 32);
        for (const auto& other : site.endpoints) {
          if (other.name == e.name) refuse(en["name"], ep + ".name", "duplicate endpoint name");
        }
        if (!en["type"]) refuse(en, ep + ".type", "required");
        e.network = scalar(en["type"], ep + ".type");
        e.type = network_type(en["type"], ep + ".type");
        e.access.bandwidth_bps = 1e9;
        if (const auto a = en["access"]) {
          keys(a, ep + ".access", {"delay", "jitter", "loss", "bandwidth"});
          e.access = link_change(a, ep + ".access").applied_to(e.access);
        }
        if (const auto c = en["cost_per_gb"]) {
          auto v = yamlf::number(c, ep + ".cost_per_gb", 0, 1e6);
          check(v.status());
          e.cost_per_gb = v.value();
        }
        site.endpoints.push_back(std::move(e));
      }
      s_.sites.push_back(std::move(site));
    }
  }

  void topology(const YAML::Node& n) {
    keys(n, "topology", {"type", "hubs", "k", "links"});
    auto kind = mesh::parse_topology(scalar(n["type"], "topology.type"));
    if (!kind.is_ok()) refuse(n["type"], "topology.type", kind.status().message());
    s_.topology.kind = kind.value();
    if (const auto h = n["hubs"]) {
      if (!h.IsSequence()) refuse(h, "topology.hubs", "expected a list of site names");
      for (std::size_t i = 0; i < h.size(); ++i) {
        const std::string p = "topology.hubs[" + std::to_string(i) + "]";
        const std::string v = scalar(h[i], p);
        if (s_.find_site(v) < 0) refuse(h[i], p, "'" + v + "' is not a site of this scenario");
        s_.topology.hubs.push_back(v);
      }
    }
    if (const auto k = n["k"]) {
      auto v = yamlf::integer(k, "topology.k", 1, 1000);
      check(v.status());
      s_.topology.k = static_cast<int>(v.value());
    }
    if (const auto l = n["links"]) {
      if (!l.IsSequence()) refuse(l, "topology.links", "expected a list of {a, b}");
      for (std::size_t i = 0; i < l.size(); ++i) {
        const std::string p = "topology.links[" + std::to_string(i) + "]";
        keys(l[i], p, {"a", "b"});
        const std::string a = scalar(l[i]["a"], p + ".a"), b = scalar(l[i]["b"], p + ".b");
        for (const auto& [end, node] : {std::pair{a, l[i]["a"]}, std::pair{b, l[i]["b"]}}) {
          const auto dot = end.find('.');
          const std::string site = end.substr(0, dot);
          const int si = s_.find_site(site);
          if (si < 0) refuse(node, p, "'" + site + "' is not a site of this scenario");
          if (dot != std::string::npos &&
              s_.find_endpoint(static_cast<std::size_t>(si), end.substr(dot + 1)) < 0) {
            refuse(node, p, "'" + end + "' is not an endpoint of this scenario");
          }
        }
        s_.topology.links.emplace_back(a, b);
      }
    }
    if (s_.topology.kind == mesh::TopologyKind::kHubSpoke && s_.topology.hubs.empty()) {
      refuse(n, "topology.hubs", "hub-spoke needs hubs");
    }
    if (s_.topology.kind == mesh::TopologyKind::kExplicit && s_.topology.links.empty()) {
      refuse(n, "topology.links", "explicit needs links");
    }
  }

  PluginSettings plugins(const YAML::Node& n, const std::string& path) {
    if (!n.IsMap()) refuse(n, path, "expected a map of plugin name to settings");
    PluginSettings out;
    for (const auto& kv : n) {
      const std::string plugin = scalar(kv.first, path);
      const std::string p = join(path, plugin);
      if (path == "plugins") s_.plugin_lines[plugin] = kv.first.Mark().line + 1;
      if (!is_hosted_plugin(plugin)) {
        // Loaded (or refused) by run_scenario, which can look at the plugin's descriptor.
        s_.third_party_plugins.push_back({plugin, p, kv.first.Mark().line + 1});
      }
      if (!kv.second.IsMap()) refuse(kv.second, p, "expected a map of settings");
      auto& settings = out[plugin];
      for (const auto& f : kv.second) {
        std::string key = scalar(f.first, p);
        const std::string fp = join(p, key);
        if (!f.second.IsScalar()) refuse(f.second, fp, "expected a scalar value");
        std::string value = f.second.Scalar();
        // A duration with a unit: the plugin's `<key>_ms` field in whole milliseconds.
        const bool has_unit = !value.empty() &&
                              std::isalpha(static_cast<unsigned char>(value.back())) &&
                              std::isdigit(static_cast<unsigned char>(value.front()));
        if (has_unit) {
          auto d = parse_duration(value);
          if (!d.is_ok()) refuse(f.second, fp, d.status().message());
          if (d.value() % 1'000'000 != 0) refuse(f.second, fp, "must be whole milliseconds");
          if (key.size() < 3 || key.compare(key.size() - 3, 3, "_ms") != 0) key += "_ms";
          value = std::to_string(d.value() / 1'000'000);
        }
        settings[key] = value;
      }
    }
    return out;
  }

  void classes(const YAML::Node& root) {
    YAML::Node sub(YAML::NodeType::Map);
    bool any = false;
    for (const char* k : {"classes", "rules", "default_class"}) {
      if (root[k]) {
        sub[k] = root[k];
        any = true;
      }
    }
    if (!any) return;
    YAML::Emitter e;
    e << sub;
    s_.classes_yaml = e.c_str();
    // Checked now so a bad class is refused before anything runs.
    auto cs = steering::parse_classes_yaml(s_.classes_yaml, "emodel");
    if (!cs.is_ok()) throw Refused{"classes: " + cs.status().message()};
  }

  PathRef path_ref(const YAML::Node& n, const std::string& path) {
    const std::string text = scalar(n, path);
    auto r = resolve_path(text);
    if (!r.is_ok()) refuse(n, path, r.status().message());
    return r.value();
  }

  // "a.x-b.y": the '-' between the ends may also occur inside names, so every split is tried.
  Result<PathRef> resolve_path(const std::string& text) const {
    const auto d1 = text.find('.'), d2 = text.rfind('.');
    if (d1 == std::string::npos || d1 == d2) {
      return invalid_argument("'" + text + "' is not a path (site.endpoint-site.endpoint)");
    }
    const std::string sa = text.substr(0, d1), mid = text.substr(d1 + 1, d2 - d1 - 1),
                      eb = text.substr(d2 + 1);
    std::vector<PathRef> found;
    for (std::size_t dash = mid.find('-'); dash != std::string::npos;
         dash = mid.find('-', dash + 1)) {
      const int a = s_.find_site(sa), b = s_.find_site(mid.substr(dash + 1));
      if (a < 0 || b < 0 || a == b) continue;
      const int ea = s_.find_endpoint(static_cast<std::size_t>(a), mid.substr(0, dash));
      const int ebi = s_.find_endpoint(static_cast<std::size_t>(b), eb);
      if (ea < 0 || ebi < 0) continue;
      PathRef r{static_cast<std::size_t>(a), static_cast<std::size_t>(ea),
                static_cast<std::size_t>(b), static_cast<std::size_t>(ebi), text};
      found.push_back(r);
    }
    if (found.size() != 1) {
      return invalid_argument("'" + text + "' " +
                              (found.empty() ? "names no path between two endpoints of this "
                                               "scenario (site.endpoint-site.endpoint)"
                                             : "is ambiguous"));
    }
    return found[0];
  }

  void paths(const YAML::Node& n) {
    if (!n.IsSequence()) refuse(n, "paths", "expected a list");
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = "paths[" + std::to_string(i) + "]";
      keys(n[i], p, {"path", "delay", "jitter", "loss", "bandwidth"});
      PathOverride o;
      o.line = n[i].Mark().line + 1;
      o.path = path_ref(n[i]["path"], p + ".path");
      o.link = link_change(n[i], p);
      if (o.link.empty())
        refuse(n[i], p, "changes nothing (give delay, jitter, loss or bandwidth)");
      s_.paths.push_back(std::move(o));
    }
  }

  std::size_t site_ref(const YAML::Node& n, const std::string& path) {
    const std::string v = scalar(n, path);
    const int s = s_.find_site(v);
    if (s < 0) refuse(n, path, "'" + v + "' is not a site of this scenario");
    return static_cast<std::size_t>(s);
  }

  void flows(const YAML::Node& n) {
    if (!n.IsSequence()) refuse(n, "flows", "expected a list");
    if (n.size() > kMaxScenarioFlows) {
      refuse(n, "flows", "at most " + std::to_string(kMaxScenarioFlows));
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = "flows[" + std::to_string(i) + "]";
      const YAML::Node fn = n[i];
      keys(fn, p,
           {"name", "from", "to", "type", "priority", "class", "protocol", "src_port", "dst_port",
            "dscp", "rate", "size", "start", "stop"});
      FlowSpec f;
      f.line = fn.Mark().line + 1;
      f.name = name_at(fn, p);
      for (const auto& other : s_.flows) {
        if (other.name == f.name) refuse(fn["name"], p + ".name", "duplicate flow name");
      }
      f.from = site_ref(fn["from"], p + ".from");
      f.to = site_ref(fn["to"], p + ".to");
      if (f.from == f.to) refuse(fn["to"], p + ".to", "a flow goes to another site");
      if (const auto t = fn["type"]) {
        const std::string v = scalar(t, p + ".type");
        if (v == "bulk") {
          f.kind = FlowKind::kBulk;
        } else if (v != "constant") {
          refuse(t, p + ".type", "expected constant or bulk");
        }
      }
      const bool bulk = f.kind == FlowKind::kBulk;
      f.protocol = bulk ? 6 : 17;
      f.dst_port = bulk ? 873 : static_cast<std::uint16_t>(5000 + i);
      f.src_port = static_cast<std::uint16_t>(40000 + i % 20000);
      f.size_bytes = bulk ? 1400 : 200;
      if (const auto pr = fn["priority"]) {
        auto v = model::parse_priority(scalar(pr, p + ".priority"));
        if (!v.is_ok()) refuse(pr, p + ".priority", v.status().message());
        f.priority = v.value();
      }
      if (const auto c = fn["class"]) f.class_name = scalar(c, p + ".class");
      if (const auto pr = fn["protocol"]) {
        const std::string v = scalar(pr, p + ".protocol");
        if (v == "udp") {
          f.protocol = 17;
        } else if (v == "tcp") {
          f.protocol = 6;
        } else {
          refuse(pr, p + ".protocol", "expected udp or tcp");
        }
      }
      for (const auto& [key, field] :
           {std::pair{"src_port", &f.src_port}, std::pair{"dst_port", &f.dst_port}}) {
        if (const auto v = fn[key]) {
          auto x = yamlf::integer(v, join(p, key), 1, 65535);
          check(x.status());
          *field = static_cast<std::uint16_t>(x.value());
        }
      }
      if (const auto d = fn["dscp"]) f.dscp = dscp(d, p + ".dscp");
      if (const auto sz = fn["size"]) {
        f.size_bytes = unit_value<std::uint32_t>(sz, p + ".size", parse_bytes);
        if (f.size_bytes < 64 || f.size_bytes > 1400) refuse(sz, p + ".size", "must be 64B..1400B");
      }
      if (!fn["rate"]) refuse(fn, p + ".rate", "required (pps, or bps/Kbps/Mbps/Gbps)");
      const std::string rate = scalar(fn["rate"], p + ".rate");
      if (rate.size() > 3 && rate.compare(rate.size() - 3, 3, "pps") == 0) {
        f.rate_pps = unit_value<double>(fn["rate"], p + ".rate", parse_rate_pps);
      } else {
        f.rate_pps =
            unit_value<double>(fn["rate"], p + ".rate", parse_bandwidth) / (8.0 * f.size_bytes);
      }
      if (!(f.rate_pps >= 0.1) || f.rate_pps > 200000) {
        refuse(fn["rate"], p + ".rate", "must give 0.1 .. 200000 packets per second");
      }
      f.start_ns = fn["start"] ? duration_at(fn["start"], p + ".start") : 0;
      // Flows stop 2 s before the end by default so the last packets can arrive.
      f.stop_ns = fn["stop"] ? duration_at(fn["stop"], p + ".stop")
                             : std::max<std::int64_t>(f.start_ns, s_.duration_ns - 2'000'000'000);
      if (f.stop_ns <= f.start_ns || f.stop_ns > s_.duration_ns) {
        refuse(fn, p, "needs start < stop <= duration");
      }
      s_.flows.push_back(std::move(f));
    }
  }

  static std::uint8_t dscp(const YAML::Node& n, const std::string& path) {
    static const std::map<std::string, int> names = {
        {"be", 0},    {"cs0", 0},   {"cs1", 8},   {"af11", 10}, {"af12", 12}, {"af13", 14},
        {"cs2", 16},  {"af21", 18}, {"af22", 20}, {"af23", 22}, {"cs3", 24},  {"af31", 26},
        {"af32", 28}, {"af33", 30}, {"cs4", 32},  {"af41", 34}, {"af42", 36}, {"af43", 38},
        {"cs5", 40},  {"ef", 46},   {"cs6", 48},  {"cs7", 56}};
    std::string v = scalar(n, path);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    if (auto it = names.find(v); it != names.end()) return static_cast<std::uint8_t>(it->second);
    auto x = yamlf::integer(n, path, 0, 63);
    if (!x.is_ok()) refuse(n, path, "expected 0..63 or a name (ef, af41, cs1, ...)");
    return static_cast<std::uint8_t>(x.value());
  }

  FaultAction action(const YAML::Node& n, const std::string& path) {
    const std::string v = scalar(n, path);
    if (v == "down") return FaultAction::kDown;
    if (v == "up") return FaultAction::kUp;
    if (v == "degrade") return FaultAction::kDegrade;
    if (v == "flap") return FaultAction::kFlap;
    refuse(n, path, "expected down, up, degrade or flap");
  }

  void target(const YAML::Node& n, const std::string& p, FaultSpec& f) {
    const int given = !!n["path"] + !!n["endpoint"] + !!n["site"];
    if (given != 1) refuse(n, p, "name exactly one of path, endpoint, site");
    if (n["path"]) {
      f.kind = TargetKind::kPath;
      f.path = path_ref(n["path"], p + ".path");
      f.target = f.path.text;
    } else if (n["endpoint"]) {
      f.kind = TargetKind::kEndpoint;
      const std::string v = scalar(n["endpoint"], p + ".endpoint");
      const auto dot = v.find('.');
      const int s = dot == std::string::npos ? -1 : s_.find_site(v.substr(0, dot));
      const int e = s < 0 ? -1 : s_.find_endpoint(static_cast<std::size_t>(s), v.substr(dot + 1));
      if (e < 0) refuse(n["endpoint"], p + ".endpoint", "'" + v + "' is not site.endpoint here");
      f.site = static_cast<std::size_t>(s);
      f.endpoint = static_cast<std::size_t>(e);
      f.target = v;
    } else {
      f.kind = TargetKind::kSite;
      f.site = site_ref(n["site"], p + ".site");
      f.target = s_.sites[f.site].name;
    }
  }

  void faults(const YAML::Node& n) {
    if (!n.IsSequence()) refuse(n, "faults", "expected a list");
    if (n.size() > kMaxScenarioFaults) {
      refuse(n, "faults", "at most " + std::to_string(kMaxScenarioFaults));
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = "faults[" + std::to_string(i) + "]";
      const YAML::Node fn = n[i];
      if (fn.IsMap() && fn["random"]) {
        keys(fn, p, {"random"});
        random_faults(fn["random"], p + ".random");
        continue;
      }
      if (fn.IsMap() && fn["controller"]) {
        controller_fault(fn, p);
        continue;
      }
      keys(fn, p,
           {"at", "path", "endpoint", "site", "action", "loss", "delay", "jitter", "bandwidth",
            "period", "duration"});
      FaultSpec f;
      f.line = fn.Mark().line + 1;
      if (!fn["at"]) refuse(fn, p + ".at", "required");
      f.at_ns = duration_at(fn["at"], p + ".at");
      if (f.at_ns >= s_.duration_ns) refuse(fn["at"], p + ".at", "is not before the end");
      target(fn, p, f);
      f.action = action(fn["action"], p + ".action");
      f.degrade = link_change(fn, p);
      const bool changes = !f.degrade.empty();
      if (f.action == FaultAction::kDegrade && !changes) {
        refuse(fn, p, "degrade needs loss, delay, jitter or bandwidth");
      }
      if (f.action != FaultAction::kDegrade && changes) {
        refuse(fn, p, "loss/delay/jitter/bandwidth belong to degrade");
      }
      if (f.action == FaultAction::kDegrade && f.kind == TargetKind::kSite) {
        refuse(fn, p, "degrade a path or an endpoint's access link, not a whole site");
      }
      if (f.action == FaultAction::kFlap) {
        if (!fn["period"] || !fn["duration"]) refuse(fn, p, "flap needs period and duration");
        f.period_ns = duration_at(fn["period"], p + ".period");
        f.duration_ns = duration_at(fn["duration"], p + ".duration");
        if (f.period_ns < 1'000'000 || f.duration_ns < f.period_ns) {
          refuse(fn, p, "flap needs period >= 1ms and duration >= period");
        }
      } else if (fn["period"]) {
        refuse(fn["period"], p + ".period", "only flap has a period");
      } else if (fn["duration"]) {
        if (f.action != FaultAction::kDegrade && f.action != FaultAction::kDown) {
          refuse(fn["duration"], p + ".duration", "only down, degrade and flap have a duration");
        }
        f.duration_ns = duration_at(fn["duration"], p + ".duration");
      }
      s_.faults.push_back(std::move(f));
    }
  }

  void controller_fault(const YAML::Node& n, const std::string& p) {
    keys(n, p, {"at", "controller", "duration"});
    if (!s_.controller)
      refuse(n["controller"], p + ".controller",
             "needs a `controller:` section (add `controller: {}`)");
    ControllerFault f;
    f.line = n.Mark().line + 1;
    if (!n["at"]) refuse(n, p + ".at", "required");
    f.at_ns = duration_at(n["at"], p + ".at");
    if (f.at_ns <= 0 || f.at_ns >= s_.duration_ns) {
      refuse(n["at"], p + ".at", "must be after the start and before the end");
    }
    const std::string v = scalar(n["controller"], p + ".controller");
    if (v != "down" && v != "up") refuse(n["controller"], p + ".controller", "expected down or up");
    f.up = v == "up";
    if (n["duration"]) {
      if (f.up) refuse(n["duration"], p + ".duration", "only down has a duration");
      f.duration_ns = duration_at(n["duration"], p + ".duration");
      if (f.duration_ns <= 0) refuse(n["duration"], p + ".duration", "must be positive");
    }
    s_.controller_faults.push_back(f);
  }

  void random_faults(const YAML::Node& n, const std::string& p) {
    keys(n, p,
         {"count", "targets", "actions", "between", "duration", "period", "loss", "delay",
          "jitter"});
    RandomFaults r;
    r.line = n.Mark().line + 1;
    auto c = yamlf::integer(n["count"], p + ".count", 1, 10000);
    check(c.status());
    r.count = static_cast<std::uint32_t>(c.value());
    const std::string t = n["targets"] ? scalar(n["targets"], p + ".targets") : "paths";
    if (t == "paths") {
      r.kind = TargetKind::kPath;
    } else if (t == "endpoints") {
      r.kind = TargetKind::kEndpoint;
    } else if (t == "sites") {
      r.kind = TargetKind::kSite;
    } else {
      refuse(n["targets"], p + ".targets", "expected paths, endpoints or sites");
    }
    if (const auto a = n["actions"]) {
      if (!a.IsSequence() || a.size() == 0) refuse(a, p + ".actions", "expected a list");
      for (std::size_t i = 0; i < a.size(); ++i) {
        const auto act = action(a[i], p + ".actions[" + std::to_string(i) + "]");
        if (act == FaultAction::kUp) refuse(a[i], p + ".actions", "up is not a fault");
        r.actions.push_back(act);
      }
    } else {
      r.actions.push_back(FaultAction::kDown);
    }
    const YAML::Node b = n["between"];
    if (!b || !b.IsSequence() || b.size() != 2) refuse(n, p + ".between", "expected [from, to]");
    r.from_ns = duration_at(b[0], p + ".between[0]");
    r.to_ns = duration_at(b[1], p + ".between[1]");
    if (r.to_ns <= r.from_ns || r.to_ns > s_.duration_ns) {
      refuse(b, p + ".between", "needs from < to <= duration");
    }
    if (!n["duration"]) refuse(n, p + ".duration", "required");
    r.duration_ns = duration_at(n["duration"], p + ".duration");
    r.period_ns = n["period"] ? duration_at(n["period"], p + ".period") : r.duration_ns / 4;
    r.degrade = link_change(n, p);
    const bool degrade = std::count(r.actions.begin(), r.actions.end(), FaultAction::kDegrade);
    if (degrade && r.degrade.empty()) refuse(n, p, "degrade needs loss, delay or jitter");
    if (r.kind == TargetKind::kSite && degrade) refuse(n, p, "sites are not degraded");
    if (std::count(r.actions.begin(), r.actions.end(), FaultAction::kFlap) &&
        (r.period_ns < 1'000'000 || r.period_ns > r.duration_ns)) {
      refuse(n, p + ".period", "flap needs 1ms <= period <= duration");
    }
    s_.random_faults.push_back(std::move(r));
  }

  void variants(const YAML::Node& n) {
    if (!n.IsSequence()) refuse(n, "variants", "expected a list");
    if (n.size() > kMaxScenarioVariants) {
      refuse(n, "variants", "at most " + std::to_string(kMaxScenarioVariants));
    }
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = "variants[" + std::to_string(i) + "]";
      keys(n[i], p, {"name", "plugins"});
      Variant v;
      v.line = n[i].Mark().line + 1;
      v.name = name_at(n[i], p);
      if (v.name == s_.name) refuse(n[i]["name"], p + ".name", "is the scenario's own name");
      for (const auto& o : s_.variants) {
        if (o.name == v.name) refuse(n[i]["name"], p + ".name", "duplicate variant name");
      }
      if (!n[i]["plugins"]) refuse(n[i], p + ".plugins", "required (what the variant changes)");
      v.plugins = plugins(n[i]["plugins"], p + ".plugins");
      s_.variants.push_back(std::move(v));
    }
  }

  void expectations(const YAML::Node& n) {
    if (!n.IsSequence()) refuse(n, "expect", "expected a list");
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = "expect[" + std::to_string(i) + "]";
      const YAML::Node en = n[i];
      keys(en, p,
           {"flow", "max_failover", "max_lost_packets", "max_failovers", "min_failovers",
            "final_path", "max_false_failovers", "max_detection", "max_config_delay"});
      Expectation e;
      e.line = en.Mark().line + 1;
      YAML::Emitter em;
      em << YAML::Flow << en;
      e.text = em.c_str();
      if (const auto f = en["flow"]) {
        e.flow = scalar(f, p + ".flow");
        if (std::none_of(s_.flows.begin(), s_.flows.end(),
                         [&](const FlowSpec& x) { return x.name == e.flow; })) {
          refuse(f, p + ".flow", "'" + e.flow + "' is not a flow of this scenario");
        }
      }
      auto count = [&](const char* key) -> std::optional<std::uint64_t> {
        if (!en[key]) return std::nullopt;
        auto v = yamlf::integer(en[key], join(p, key), 0, INT64_MAX);
        check(v.status());
        return static_cast<std::uint64_t>(v.value());
      };
      if (en["max_failover"])
        e.max_failover_ns = duration_at(en["max_failover"], p + ".max_failover");
      if (en["max_detection"]) {
        e.max_detection_ns = duration_at(en["max_detection"], p + ".max_detection");
      }
      e.max_lost_packets = count("max_lost_packets");
      e.max_failovers = count("max_failovers");
      e.min_failovers = count("min_failovers");
      e.max_false_failovers = count("max_false_failovers");
      if (const auto d = en["max_config_delay"]) {
        if (!s_.controller)
          refuse(d, p + ".max_config_delay",
                 "needs a `controller:` section (add `controller: {}`)");
        e.max_config_delay_ns = duration_at(d, p + ".max_config_delay");
      }
      if (en["final_path"]) {
        if (scalar(en["final_path"], p + ".final_path") == "none") {
          e.final_path_none = true;
        } else {
          e.final_path = path_ref(en["final_path"], p + ".final_path");
        }
      }
      const bool flow_scoped = e.max_failover_ns || e.max_lost_packets || e.max_failovers ||
                               e.min_failovers || e.final_path || e.final_path_none;
      if (flow_scoped && e.flow.empty()) refuse(en, p, "these expectations need a flow");
      if (!flow_scoped && !e.max_false_failovers && !e.max_detection_ns && !e.max_config_delay_ns) {
        refuse(en, p, "expects nothing");
      }
      s_.expect.push_back(std::move(e));
    }
  }

  Scenario& s_;
};

std::uint64_t splitmix(std::uint64_t& x) {
  std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

const char* to_string(FaultAction a) {
  switch (a) {
    case FaultAction::kDown:
      return "down";
    case FaultAction::kUp:
      return "up";
    case FaultAction::kDegrade:
      return "degrade";
    case FaultAction::kFlap:
      return "flap";
  }
  return "?";
}

LinkSpec LinkChange::applied_to(LinkSpec base) const {
  if (delay_ns) base.delay_ns = *delay_ns;
  if (jitter_ns) base.jitter_ns = *jitter_ns;
  if (loss) base.loss = *loss;
  if (bandwidth_bps) base.bandwidth_bps = *bandwidth_bps;
  return base;
}

int Scenario::find_site(const std::string& n) const {
  for (std::size_t i = 0; i < sites.size(); ++i) {
    if (sites[i].name == n) return static_cast<int>(i);
  }
  return -1;
}

int Scenario::find_endpoint(std::size_t site, const std::string& n) const {
  const auto& eps = sites.at(site).endpoints;
  for (std::size_t i = 0; i < eps.size(); ++i) {
    if (eps[i].name == n) return static_cast<int>(i);
  }
  return -1;
}

std::string Scenario::path_text(const PathRef& p) const {
  return sites[p.a_site].name + "." + sites[p.a_site].endpoints[p.a_endpoint].name + "-" +
         sites[p.b_site].name + "." + sites[p.b_site].endpoints[p.b_endpoint].name;
}

Result<std::int64_t> parse_duration(const std::string& text) {
  auto v =
      with_unit(text, {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}},
                "a duration");
  if (!v.is_ok()) return v.status();
  if (v.value() > 3.0e17) return invalid_argument("'" + text + "' is too long a duration");
  return static_cast<std::int64_t>(std::llround(v.value()));
}

Result<double> parse_percent(const std::string& text) {
  auto v = with_unit(text, {{"%", 0.01}}, "a percentage");
  if (!v.is_ok()) return v.status();
  if (v.value() > 1.0) return invalid_argument("'" + text + "' is more than 100%");
  return v.value();
}

Result<double> parse_bandwidth(const std::string& text) {
  auto v =
      with_unit(text, {{"Gbps", 1e9}, {"Mbps", 1e6}, {"Kbps", 1e3}, {"bps", 1}}, "a bandwidth");
  if (!v.is_ok()) return v.status();
  if (v.value() > 1e12) return invalid_argument("'" + text + "' is more than 1000Gbps");
  return v.value();
}

Result<double> parse_rate_pps(const std::string& text) {
  return with_unit(text, {{"pps", 1}}, "a packet rate");
}

Result<std::uint32_t> parse_bytes(const std::string& text) {
  auto v = with_unit(text, {{"B", 1}}, "a size in bytes");
  if (!v.is_ok()) return v.status();
  if (v.value() != std::floor(v.value()) || v.value() > 1e9) {
    return invalid_argument("'" + text + "' is not a whole number of bytes");
  }
  return static_cast<std::uint32_t>(v.value());
}

Result<Scenario> parse_scenario(const std::string& text, const std::string& origin) {
  const std::string o = origin.empty() ? "" : origin + ": ";
  if (auto s = yamlf::check_yaml_stream(text, 1, 2'000'000, 1000); !s.is_ok()) {
    return invalid_argument(o + s.message());
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + "not valid YAML: " + e.what());
  }
  Scenario s;
  s.origin = origin;
  try {
    Parser(s).run(root);
  } catch (const Refused& r) {
    return invalid_argument(o + r.message);
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + e.what());
  }
  return s;
}

Result<Scenario> load_scenario(const std::string& path) {
  auto text = read_text_file(path);
  if (!text.is_ok()) return Status(text.status().code(), "scenario " + text.status().message());
  return parse_scenario(text.value(), path);
}

std::vector<FaultSpec> expand_faults(const Scenario& s, std::uint64_t seed,
                                     const std::vector<PathRef>& mesh_paths) {
  std::vector<FaultSpec> out = s.faults;
  std::uint64_t x = seed ^ 0x5eed5eed5eed5eedULL;
  for (const auto& r : s.random_faults) {
    for (std::uint32_t i = 0; i < r.count; ++i) {
      FaultSpec f;
      f.line = r.line;
      f.kind = r.kind;
      f.at_ns = r.from_ns + static_cast<std::int64_t>(
                                splitmix(x) % static_cast<std::uint64_t>(r.to_ns - r.from_ns));
      f.at_ns -= f.at_ns % 1'000'000;  // whole milliseconds: readable reports
      f.action = r.actions[splitmix(x) % r.actions.size()];
      if (r.kind == TargetKind::kPath) {
        if (mesh_paths.empty()) break;
        f.path = mesh_paths[splitmix(x) % mesh_paths.size()];
        f.target = f.path.text;
      } else {
        f.site = splitmix(x) % s.sites.size();
        f.endpoint = splitmix(x) % s.sites[f.site].endpoints.size();
        f.target = s.sites[f.site].name;
        if (r.kind == TargetKind::kEndpoint) {
          f.target += "." + s.sites[f.site].endpoints[f.endpoint].name;
        }
      }
      if (f.action == FaultAction::kDegrade) f.degrade = r.degrade;
      if (f.action == FaultAction::kFlap) f.period_ns = r.period_ns;
      f.duration_ns = r.duration_ns;  // down and degrade end with `up` after it
      out.push_back(f);
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const FaultSpec& a, const FaultSpec& b) { return a.at_ns < b.at_ns; });
  return out;
}

PluginSettings plugin_settings(const Scenario& s, const Variant* v) {
  PluginSettings merged = s.plugins;
  if (v) {
    for (const auto& [plugin, kv] : v->plugins) {
      for (const auto& [k, val] : kv) merged[plugin][k] = val;
    }
  }
  return merged;
}

std::map<std::string, std::string> plugin_yaml(const PluginSettings& settings) {
  std::map<std::string, std::string> out;
  for (const auto& [plugin, kv] : settings) {
    std::string y;
    for (const auto& [k, val] : kv) y += k + ": " + val + "\n";
    out[plugin] = y;
  }
  return out;
}

bool same_path(const PathRef& a, const PathRef& b) {
  const auto a1 = std::make_pair(a.a_site, a.a_endpoint),
             a2 = std::make_pair(a.b_site, a.b_endpoint);
  const auto b1 = std::make_pair(b.a_site, b.a_endpoint),
             b2 = std::make_pair(b.b_site, b.b_endpoint);
  return (a1 == b1 && a2 == b2) || (a1 == b2 && a2 == b1);
}

}  // namespace patronus::sim
