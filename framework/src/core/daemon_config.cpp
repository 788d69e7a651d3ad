#include "patronus/core/daemon_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "patronus/daemon/v1/daemon_config.pb.h"
#include "patronus/model/address.hpp"
#include "patronus/model/types.hpp"
#include "yaml_proto.hpp"

namespace patronus::core {

namespace {

namespace v1 = patronus::daemon::v1;

std::string resolve(const std::string& base, const std::string& p) {
  if (p.empty() || base.empty() || std::filesystem::path(p).is_absolute()) return p;
  return (std::filesystem::path(base) / p).lexically_normal().string();
}

// The file's content, converted, with the line of every key for the checks that follow.
class Checker {
 public:
  explicit Checker(std::map<std::string, int> lines) : lines_(std::move(lines)) {}

  // "line N: path: why", N the line of `path` (or of the nearest enclosing key that has one).
  Status error(const std::string& path, const std::string& why) const {
    std::string p = path;
    while (true) {
      const auto it = lines_.find(p);
      if (it != lines_.end()) {
        return invalid_argument("line " + std::to_string(it->second) + ": " + path + ": " + why);
      }
      const auto cut = p.find_last_of(".[");
      if (cut == std::string::npos) break;
      p = p.substr(0, cut);
    }
    return invalid_argument("line 1: " + path + ": " + why);
  }

  Status required(const std::string& path, const std::string& value) const {
    return value.empty() ? error(path, "required") : Status::ok();
  }

  Status range(const std::string& path, std::int64_t v, std::int64_t lo, std::int64_t hi) const {
    if (v >= lo && v <= hi) return Status::ok();
    return error(path, "expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                           "], got " + std::to_string(v));
  }

 private:
  std::map<std::string, int> lines_;
};

Result<RuntimeSection> runtime_of(const v1::Runtime& rt, const Checker& at,
                                  const std::string& base_dir, const DaemonConfig& c,
                                  bool controlled) {
  RuntimeSection r;
  if (controlled) {
    // The controller sends the plan: nothing of the mesh is read from the file.
    const char* const mesh_keys[] = {"sites_file", "topology", "hubs", "k"};
    const bool given[] = {!rt.sites_file().empty(), rt.has_topology(), rt.hubs_size() > 0,
                          rt.has_k()};
    for (int i = 0; i < 4; ++i) {
      if (given[i]) {
        return at.error(std::string("runtime.") + mesh_keys[i],
                        "a site fed by a controller takes its plan from it; remove this key");
      }
    }
  } else if (auto s = at.required("runtime.sites_file", rt.sites_file()); !s.is_ok()) {
    return s;
  }
  if (auto s = at.required("runtime.keys_dir", rt.keys_dir()); !s.is_ok()) return s;
  r.sites_file = resolve(base_dir, rt.sites_file());
  r.keys_dir = resolve(base_dir, rt.keys_dir());
  if (rt.has_topology() && !rt.topology().empty()) r.topology = rt.topology();
  for (int i = 0; i < rt.hubs_size(); ++i) {
    if (rt.hubs(i).empty()) {
      return at.error("runtime.hubs[" + std::to_string(i) + "]", "expected a site name");
    }
    r.hubs.push_back(rt.hubs(i));
  }
  auto known = [&](const std::string& name) {
    return std::any_of(c.plugins.begin(), c.plugins.end(),
                       [&](const PluginSpec& p) { return p.instance == name; });
  };
  // "no plugin instance 'x' in plugins (they are: a, b)": the names to choose from.
  auto unknown = [&](const std::string& name) {
    std::string list;
    for (const auto& p : c.plugins) list += (list.empty() ? "" : ", ") + p.instance;
    return "no plugin instance '" + name + "' in plugins (" +
           (list.empty() ? std::string("there are none") : "they are: " + list) + ")";
  };
  auto instance = [&](const std::string& key, const std::string& v, bool required,
                      std::string& out) -> Status {
    if (v.empty()) return required ? at.error("runtime." + key, "required") : Status::ok();
    if (!known(v)) return at.error("runtime." + key, unknown(v));
    out = v;
    return Status::ok();
  };
  if (auto s = instance("probe", rt.probe(), true, r.probe); !s.is_ok()) return s;
  for (int i = 0; i < rt.liveness_size(); ++i) {
    const std::string where = "runtime.liveness[" + std::to_string(i) + "]";
    const std::string& name = rt.liveness(i);
    if (name.empty()) return at.error(where, "expected a plugin instance name");
    if (!known(name)) return at.error(where, unknown(name));
    if (name == r.probe ||
        std::find(r.liveness.begin(), r.liveness.end(), name) != r.liveness.end()) {
      return at.error(where,
                      "'" + name + "' is named twice (runtime.probe's liveness counts already)");
    }
    r.liveness.push_back(name);
  }
  if (auto s = instance("scorer", rt.scorer(), true, r.scorer); !s.is_ok()) return s;
  if (auto s = instance("voice_scorer", rt.voice_scorer(), false, r.voice_scorer); !s.is_ok()) {
    return s;
  }
  if (auto s = instance("transport", rt.transport(), false, r.transport); !s.is_ok()) return s;
  // In the file's order, for the first error to be the first in the file.
  std::vector<std::pair<std::string, std::string>> kinds(rt.transports().begin(),
                                                         rt.transports().end());
  for (const auto& [kind, name] : kinds) {
    const std::string where = "runtime.transports[" + kind + "]";
    if (auto k = model::parse_transport_kind(kind); !k.is_ok()) {
      return at.error(where, k.status().message());
    }
    if (name.empty()) return at.error(where, "expected a plugin instance name");
    if (!known(name)) return at.error(where, unknown(name));
    r.transports[kind] = name;
  }
  const bool tunnels = !r.transport.empty() || !r.transports.empty();
  r.dataplane = rt.dataplane().empty() ? (tunnels ? "linux" : "none") : rt.dataplane();
  if (r.dataplane != "linux" && r.dataplane != "none") {
    return at.error("runtime.dataplane", "'" + r.dataplane + "' is not linux or none");
  }
  if (r.dataplane == "linux" && !tunnels) {
    return at.error("runtime.dataplane",
                    "linux steers onto tunnels, so it needs runtime.transport or "
                    "runtime.transports");
  }
  struct IntField {
    const char* key;
    bool has;
    std::int64_t value, lo, hi;
  };
  for (const IntField& f :
       {IntField{"k", rt.has_k(), rt.k(), 1, 1000},
        IntField{"tick_ms", rt.has_tick_ms(), rt.tick_ms(), 1, 10000},
        IntField{"idle_after_ms", rt.has_idle_after_ms(), rt.idle_after_ms(), 0, 86400000},
        IntField{"flow_idle_ms", rt.has_flow_idle_ms(), rt.flow_idle_ms(), 1, 86400000},
        IntField{"metrics_interval_ms", rt.has_metrics_interval_ms(), rt.metrics_interval_ms(), 100,
                 86400000},
        IntField{"max_flows", rt.has_max_flows(), rt.max_flows(), 1, 16777214},
        IntField{"table_base", rt.has_table_base(), rt.table_base(), 256, 2000000000}}) {
    if (!f.has) continue;
    if (auto s = at.range(std::string("runtime.") + f.key, f.value, f.lo, f.hi); !s.is_ok()) {
      return s;
    }
  }
  if (rt.has_k()) r.k = static_cast<int>(rt.k());
  if (rt.has_tick_ms()) r.tick_ms = rt.tick_ms();
  if (rt.has_idle_after_ms()) r.idle_after_ms = rt.idle_after_ms();
  if (rt.has_flow_idle_ms()) r.flow_idle_ms = rt.flow_idle_ms();
  if (rt.has_metrics_interval_ms()) r.metrics_interval_ms = rt.metrics_interval_ms();
  if (rt.has_max_flows()) r.max_flows = static_cast<std::uint32_t>(rt.max_flows());
  if (rt.has_table_base()) r.table_base = static_cast<std::uint32_t>(rt.table_base());
  r.store_samples = rt.store_samples();
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
  if (!root.IsMap()) return invalid_argument("config: expected a map at the top level");
  // The file through the converter; the free-form subtrees (plugin configs, classes) are kept
  // as they are written, with their lines.
  v1::DaemonFile file;
  std::map<std::string, int> lines;
  std::map<std::string, YAML::Node> raw;
  yamlproto::Options opt;
  opt.lines = &lines;
  opt.raw_fields = {"patronus.daemon.v1.Plugin.config", "patronus.daemon.v1.Runtime.classes"};
  opt.raw = [&raw](const google::protobuf::FieldDescriptor&, const YAML::Node& n,
                   const std::string& path) -> Status {
    if (!n.IsMap() && !n.IsNull()) return invalid_argument(path + ": expected a map");
    raw[path] = n;
    return Status::ok();
  };
  int line = 0;
  if (auto s = yamlproto::convert(root, &file, "", opt, &line); !s.is_ok()) {
    return line > 0 ? Status(s.code(), "line " + std::to_string(line) + ": " + s.message()) : s;
  }
  const Checker at(lines);
  DaemonConfig c;
  if (auto s = at.required("site", file.site()); !s.is_ok()) return s;
  c.site = file.site();
  if (auto s = model::validate_name("site", c.site, 63); !s.is_ok()) {
    return at.error("site", s.message().substr(s.message().find(": ") + 2));
  }
  if (auto s = at.required("state_db", file.state_db()); !s.is_ok()) return s;
  c.state_db = resolve(base_dir, file.state_db());
  if (auto s = at.required("plugin_dir", file.plugin_dir()); !s.is_ok()) return s;
  c.plugin_dir = resolve(base_dir, file.plugin_dir());
  if (file.has_control_socket()) {
    // "none" (or an empty value) runs without the control API.
    const std::string& v = file.control_socket();
    if (v.empty() || v == "none") {
      c.control_socket.clear();
    } else {
      c.control_socket = resolve(base_dir, v);
      if (c.control_socket.size() > 107) {
        return at.error("control_socket", "'" + c.control_socket +
                                              "' is longer than 107 bytes (a unix socket's limit)");
      }
    }
  }
  if (file.has_http_listen()) {
    const std::string& v = file.http_listen();
    c.http_listen_default = false;
    if (v.empty() || v == "none") {
      c.http_listen.clear();
    } else {
      auto addr = model::SocketAddress::parse(v);
      if (!addr.is_ok()) {
        return at.error("http_listen", "'" + v + "': expected ADDRESS:PORT (127.0.0.1:9474, " +
                                           "[::1]:9474) or none: " + addr.status().message());
      }
      c.http_listen = v;
    }
  }
  if (file.has_log_format()) {
    const std::string& v = file.log_format();
    if (v != "text" && v != "logfmt" && v != "json") {
      return at.error("log_format", "'" + v + "' is not one of text, logfmt, json");
    }
    c.log_format = v;
  }
  if (file.has_log_level()) {
    const std::string& v = file.log_level();
    if (v != "debug" && v != "info" && v != "warn" && v != "error") {
      return at.error("log_level", "'" + v + "' is not one of debug, info, warn, error");
    }
    c.log_level = v;
  }
  if (file.has_flush_interval_ms()) {
    if (auto s = at.range("flush_interval_ms", file.flush_interval_ms(), 10, 60000); !s.is_ok()) {
      return s;
    }
    c.flush_interval_ms = file.flush_interval_ms();
  }
  if (file.has_seed()) c.seed = file.seed();
  for (int i = 0; i < file.policy_inventory_size(); ++i) {
    if (file.policy_inventory(i).empty()) {
      return at.error("policy_inventory[" + std::to_string(i) + "]", "expected a file name");
    }
    c.policy_inventory.push_back(resolve(base_dir, file.policy_inventory(i)));
  }
  if (file.plugins_size() > 64) return at.error("plugins", "at most 64");
  std::set<std::string> names;
  for (int i = 0; i < file.plugins_size(); ++i) {
    const auto& p = file.plugins(i);
    const std::string path = "plugins[" + std::to_string(i) + "]";
    PluginSpec spec;
    spec.path = path;
    if (auto s = at.required(path + ".plugin", p.plugin()); !s.is_ok()) return s;
    spec.plugin = p.plugin();
    spec.instance = p.name().empty() ? spec.plugin : p.name();
    if (auto s = model::validate_name(path + ".name", spec.instance, 64); !s.is_ok()) {
      return at.error(path + ".name", s.message().substr(s.message().find(": ") + 2));
    }
    if (!names.insert(spec.instance).second) {
      return at.error(path + ".name", "instance '" + spec.instance + "' is configured twice");
    }
    if (const auto it = raw.find(path + ".config"); it != raw.end()) {
      spec.config = std::make_shared<const YAML::Node>(it->second);
      spec.config_line = it->second.Mark().line + 1;
    }
    c.plugins.push_back(std::move(spec));
  }
  if (file.has_controller()) {
    const auto& f = file.controller();
    ControllerSection cs;
    if (auto s = at.required("controller.address", f.address()); !s.is_ok()) return s;
    if (f.address().rfind(':') == std::string::npos) {
      return at.error("controller.address", "expected host:port");
    }
    cs.address = f.address();
    if (auto s = at.required("controller.pin", f.pin()); !s.is_ok()) return s;
    // The key itself is checked where the channel reads it (patronusd's load, --check too).
    if (f.pin().rfind("ed25519:", 0) != 0) {
      return at.error("controller.pin",
                      "expected 'ed25519:' and the controller's key in base64 "
                      "(patronus-controller prints it when it starts)");
    }
    cs.pin = f.pin();
    cs.token_file = resolve(base_dir, f.token_file());
    cs.state_dir =
        f.state_dir().empty()
            ? (std::filesystem::path(c.state_db).parent_path() / ("controller-" + c.site)).string()
            : resolve(base_dir, f.state_dir());
    if (f.has_report_interval_ms()) {
      if (auto s = at.range("controller.report_interval_ms", f.report_interval_ms(), 200, 3600000);
          !s.is_ok()) {
        return s;
      }
      cs.report_interval_ms = f.report_interval_ms();
    }
    if (!file.has_runtime()) {
      return at.error("controller",
                      "a site fed by a controller needs a runtime section (its "
                      "probe, scorer, transport and keys_dir)");
    }
    c.controller = std::move(cs);
  }
  if (file.has_runtime()) {
    auto r = runtime_of(file.runtime(), at, base_dir, c, c.controller.has_value());
    if (!r.is_ok()) return r.status();
    c.runtime = std::move(r).value();
    if (const auto it = raw.find("runtime.classes"); it != raw.end() && !it->second.IsNull()) {
      c.runtime->classes = std::make_shared<const YAML::Node>(it->second);
    }
  }
  return c;
}

}  // namespace patronus::core
