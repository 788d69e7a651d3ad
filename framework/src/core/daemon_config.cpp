#include "patronus/core/daemon_config.hpp"

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <set>

#include "patronus/model/types.hpp"
#include "yaml_fields.hpp"

namespace patronus::core {

namespace {

using yamlf::at;
using yamlf::check_keys;

Result<std::string> scalar(const YAML::Node& map, const char* key, const std::string& path,
                           bool required) {
  return yamlf::string_field(map, key, path, required);
}

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || base.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

Result<std::int64_t> int_field(const YAML::Node& map, const char* key, std::int64_t lo,
                               std::int64_t hi, std::int64_t def) {
  if (!map[key]) return def;
  return yamlf::integer(map[key], std::string("runtime.") + key, lo, hi);
}

Result<RuntimeSection> parse_runtime(const YAML::Node& rt, const std::string& base_dir,
                                     const DaemonConfig& c) {
  const std::string path = "runtime";
  if (!rt.IsMap()) return invalid_argument(at(rt) + "runtime: expected a map");
  if (auto s = check_keys(rt,
                          {"sites_file",
                           "topology",
                           "hubs",
                           "k",
                           "keys_dir",
                           "probe",
                           "scorer",
                           "voice_scorer",
                           "classes",
                           "tick_ms",
                           "idle_after_ms",
                           "flow_idle_ms",
                           "metrics_interval_ms",
                           "max_flows",
                           "store_samples",
                           "transport",
                           "transports",
                           "dataplane",
                           "table_base",
                           "liveness"},
                          path);
      !s.is_ok()) {
    return s;
  }
  RuntimeSection r;
  auto sites = scalar(rt, "sites_file", path, true);
  if (!sites.is_ok()) return sites.status();
  r.sites_file = resolve(base_dir, sites.value());
  auto keys = scalar(rt, "keys_dir", path, true);
  if (!keys.is_ok()) return keys.status();
  r.keys_dir = resolve(base_dir, keys.value());
  auto topo = scalar(rt, "topology", path, false);
  if (!topo.is_ok()) return topo.status();
  if (!topo.value().empty()) r.topology = topo.value();
  if (const auto h = rt["hubs"]) {
    if (!h.IsSequence()) return invalid_argument(at(h) + "runtime.hubs: expected a list");
    for (std::size_t i = 0; i < h.size(); ++i) {
      if (!h[i].IsScalar() || h[i].Scalar().empty()) {
        return invalid_argument(at(h[i]) + "runtime.hubs[" + std::to_string(i) +
                                "]: expected a site name");
      }
      r.hubs.push_back(h[i].Scalar());
    }
  }
  auto instance = [&](const char* key, bool required) -> Result<std::string> {
    auto v = scalar(rt, key, path, required);
    if (!v.is_ok()) return v.status();
    if (v.value().empty()) return v.value();
    for (const auto& p : c.plugins) {
      if (p.instance == v.value()) return v.value();
    }
    return invalid_argument(at(rt[key]) + "runtime." + key + ": no plugin instance '" + v.value() +
                            "' in plugins");
  };
  auto probe = instance("probe", true);
  if (!probe.is_ok()) return probe.status();
  r.probe = probe.value();
  if (const auto lv = rt["liveness"]) {
    if (!lv.IsSequence()) {
      return invalid_argument(at(lv) + "runtime.liveness: expected a list of plugin instances");
    }
    for (std::size_t i = 0; i < lv.size(); ++i) {
      const std::string where = "runtime.liveness[" + std::to_string(i) + "]";
      if (!lv[i].IsScalar() || lv[i].Scalar().empty()) {
        return invalid_argument(at(lv[i]) + where + ": expected a plugin instance name");
      }
      const std::string name = lv[i].Scalar();
      const bool known = std::any_of(c.plugins.begin(), c.plugins.end(),
                                     [&](const auto& p) { return p.instance == name; });
      if (!known) {
        return invalid_argument(at(lv[i]) + where + ": no plugin instance '" + name +
                                "' in plugins");
      }
      if (name == r.probe ||
          std::find(r.liveness.begin(), r.liveness.end(), name) != r.liveness.end()) {
        return invalid_argument(at(lv[i]) + where + ": '" + name +
                                "' is named twice (runtime.probe's liveness counts already)");
      }
      r.liveness.push_back(name);
    }
  }
  auto scorer = instance("scorer", true);
  if (!scorer.is_ok()) return scorer.status();
  r.scorer = scorer.value();
  auto voice = instance("voice_scorer", false);
  if (!voice.is_ok()) return voice.status();
  r.voice_scorer = voice.value();
  auto transport = instance("transport", false);
  if (!transport.is_ok()) return transport.status();
  r.transport = transport.value();
  if (const auto ts = rt["transports"]) {
    if (!ts.IsMap()) {
      return invalid_argument(at(ts) + "runtime.transports: expected a map of transport kind " +
                              "(wireguard, ipsec) to plugin instance");
    }
    for (const auto& kv : ts) {
      const std::string kind = kv.first.Scalar();
      const std::string where = "runtime.transports." + kind;
      if (auto k = model::parse_transport_kind(kind); !k.is_ok()) {
        return invalid_argument(at(kv.first) + where + ": " + k.status().message());
      }
      if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
        return invalid_argument(at(kv.second) + where + ": expected a plugin instance name");
      }
      const std::string name = kv.second.Scalar();
      if (std::none_of(c.plugins.begin(), c.plugins.end(),
                       [&](const auto& p) { return p.instance == name; })) {
        return invalid_argument(at(kv.second) + where + ": no plugin instance '" + name +
                                "' in plugins");
      }
      r.transports[kind] = name;
    }
  }
  auto dp = scalar(rt, "dataplane", path, false);
  if (!dp.is_ok()) return dp.status();
  const bool tunnels = !r.transport.empty() || !r.transports.empty();
  r.dataplane = dp.value().empty() ? (tunnels ? "linux" : "none") : dp.value();
  if (r.dataplane != "linux" && r.dataplane != "none") {
    return invalid_argument(at(rt["dataplane"]) + "runtime.dataplane: '" + r.dataplane +
                            "' is not linux or none");
  }
  if (r.dataplane == "linux" && !tunnels) {
    return invalid_argument(at(rt["dataplane"]) +
                            "runtime.dataplane: linux steers onto tunnels, so it needs "
                            "runtime.transport or runtime.transports");
  }
  if (const auto cl = rt["classes"]; cl && !cl.IsNull()) {
    if (!cl.IsMap()) return invalid_argument(at(cl) + "runtime.classes: expected a map");
    YAML::Emitter out;
    out << cl;
    r.classes_yaml = out.c_str();
  }
  struct IntField {
    const char* key;
    std::int64_t lo, hi;
    std::int64_t* out;
  };
  std::int64_t k = r.k, max_flows = r.max_flows, table_base = r.table_base;
  for (const IntField& f : {IntField{"k", 1, 1000, &k}, IntField{"tick_ms", 1, 10000, &r.tick_ms},
                            IntField{"idle_after_ms", 0, 86400000, &r.idle_after_ms},
                            IntField{"flow_idle_ms", 1, 86400000, &r.flow_idle_ms},
                            IntField{"metrics_interval_ms", 100, 86400000, &r.metrics_interval_ms},
                            IntField{"max_flows", 1, 16777214, &max_flows},
                            IntField{"table_base", 256, 2000000000, &table_base}}) {
    auto v = int_field(rt, f.key, f.lo, f.hi, *f.out);
    if (!v.is_ok()) return v.status();
    *f.out = v.value();
  }
  r.k = static_cast<int>(k);
  r.max_flows = static_cast<std::uint32_t>(max_flows);
  r.table_base = static_cast<std::uint32_t>(table_base);
  if (rt["store_samples"]) {
    auto b = yamlf::boolean(rt["store_samples"], "runtime.store_samples");
    if (!b.is_ok()) return b.status();
    r.store_samples = b.value();
  }
  return r;
}

}  // namespace

Result<DaemonConfig> parse_daemon_config(const std::string& yaml_text,
                                         const std::string& base_dir) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(std::string("config is not valid YAML: ") + e.what());
  }
  try {
    if (!root.IsMap()) return invalid_argument("config: expected a map at the top level");
    if (auto s = check_keys(root,
                            {"site", "state_db", "plugin_dir", "log_level", "flush_interval_ms",
                             "seed", "plugins", "policy_inventory", "runtime", "control_socket"},
                            "");
        !s.is_ok()) {
      return s;
    }
    DaemonConfig c;
    auto site = scalar(root, "site", "", true);
    if (!site.is_ok()) return site.status();
    c.site = site.value();
    if (auto s = model::validate_name(at(root["site"]) + "site", c.site, 63); !s.is_ok()) return s;
    auto db = scalar(root, "state_db", "", true);
    if (!db.is_ok()) return db.status();
    c.state_db = resolve(base_dir, db.value());
    auto dir = scalar(root, "plugin_dir", "", true);
    if (!dir.is_ok()) return dir.status();
    c.plugin_dir = resolve(base_dir, dir.value());
    if (const auto n = root["control_socket"]) {
      auto v = scalar(root, "control_socket", "", false);
      if (!v.is_ok()) return v.status();
      // "none" (or an empty value) runs without the control API.
      if (v.value().empty() || v.value() == "none") {
        c.control_socket.clear();
      } else {
        c.control_socket = resolve(base_dir, v.value());
        if (c.control_socket.size() > 107) {
          return invalid_argument(at(n) + "control_socket: '" + c.control_socket +
                                  "' is longer than 107 bytes (a unix socket's limit)");
        }
      }
    }
    if (root["log_level"]) {
      auto l = scalar(root, "log_level", "", false);
      if (!l.is_ok()) return l.status();
      const std::string v = l.value();
      if (v != "debug" && v != "info" && v != "warn" && v != "error") {
        return invalid_argument(at(root["log_level"]) + "log_level: '" + v +
                                "' is not one of debug, info, warn, error");
      }
      c.log_level = v;
    }
    if (const auto n = root["flush_interval_ms"]) {
      std::int64_t v = 0;
      if (!n.IsScalar() || !YAML::convert<std::int64_t>::decode(n, v) || v < 10 || v > 60000) {
        return invalid_argument(at(n) + "flush_interval_ms: expected an integer from 10 to 60000");
      }
      c.flush_interval_ms = v;
    }
    if (const auto n = root["seed"]) {
      std::uint64_t v = 0;
      if (!n.IsScalar() || n.Scalar().empty() || n.Scalar()[0] == '-' ||
          !YAML::convert<std::uint64_t>::decode(n, v)) {
        return invalid_argument(at(n) + "seed: expected an unsigned integer");
      }
      c.seed = v;
    }
    if (const auto inv = root["policy_inventory"]; inv && !inv.IsNull()) {
      if (!inv.IsSequence()) return invalid_argument(at(inv) + "policy_inventory: expected a list");
      for (std::size_t i = 0; i < inv.size(); ++i) {
        if (!inv[i].IsScalar() || inv[i].Scalar().empty()) {
          return invalid_argument(at(inv[i]) + "policy_inventory[" + std::to_string(i) +
                                  "]: expected a file name");
        }
        c.policy_inventory.push_back(resolve(base_dir, inv[i].Scalar()));
      }
    }
    const YAML::Node plugins = root["plugins"];
    if (plugins && !plugins.IsNull()) {
      if (!plugins.IsSequence()) return invalid_argument(at(plugins) + "plugins: expected a list");
      if (plugins.size() > 64) return invalid_argument(at(plugins) + "plugins: at most 64");
      std::set<std::string> names;
      for (std::size_t i = 0; i < plugins.size(); ++i) {
        const YAML::Node p = plugins[i];
        const std::string path = "plugins[" + std::to_string(i) + "]";
        if (!p.IsMap()) return invalid_argument(at(p) + path + ": expected a map");
        if (auto s = check_keys(p, {"plugin", "name", "config"}, path); !s.is_ok()) return s;
        PluginSpec spec;
        spec.path = path;
        auto plugin = scalar(p, "plugin", path, true);
        if (!plugin.is_ok()) return plugin.status();
        spec.plugin = plugin.value();
        auto name = scalar(p, "name", path, false);
        if (!name.is_ok()) return name.status();
        spec.instance = name.value().empty() ? spec.plugin : name.value();
        if (auto s = model::validate_name(at(p) + path + ".name", spec.instance, 64); !s.is_ok()) {
          return s;
        }
        if (!names.insert(spec.instance).second) {
          return invalid_argument(at(p) + path + ".name: instance '" + spec.instance +
                                  "' is configured twice");
        }
        if (const auto cfg = p["config"]) {
          if (!cfg.IsMap() && !cfg.IsNull()) {
            return invalid_argument(at(cfg) + path + ".config: expected a map");
          }
          spec.config = std::make_shared<const YAML::Node>(cfg);
          spec.config_line = cfg.Mark().line + 1;
        }
        c.plugins.push_back(std::move(spec));
      }
    }
    if (const auto rt = root["runtime"]; rt && !rt.IsNull()) {
      auto r = parse_runtime(rt, base_dir, c);
      if (!r.is_ok()) return r.status();
      c.runtime = std::move(r).value();
    }
    return c;
  } catch (const YAML::Exception& e) {
    return invalid_argument(std::string("config: ") + e.what());
  }
}

}  // namespace patronus::core
