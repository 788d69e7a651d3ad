#include "patronus/policy/parse.hpp"

#include <yaml-cpp/yaml.h>

#include <nlohmann/json.hpp>
#include <set>

#include "patronus/util/enum_table.hpp"
#include "patronus/util/file.hpp"
#include "yaml_fields.hpp"

namespace patronus::policy {

namespace {

using nlohmann::json;

// A validation failure at a field path.
struct FieldError {
  std::string path;
  std::string message;
};

using Check = std::optional<FieldError>;

constexpr EnumTable<Op, 4> kOperators{{
    {"In", Op::kIn},
    {"NotIn", Op::kNotIn},
    {"Exists", Op::kExists},
    {"DoesNotExist", Op::kDoesNotExist},
}};

std::string idx(const std::string& path, std::size_t i) {
  return path + "[" + std::to_string(i) + "]";
}
std::string child(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

bool is_quoted(const YAML::Node& n) {
  return n.Tag() == "!";
}

// DNS-1123 label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63.
bool dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// DNS-1123 subdomain: dot-separated labels, at most 253.
bool dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const auto dot = s.find('.', start);
    const auto part = s.substr(start, dot == std::string_view::npos ? s.npos : dot - start);
    if (!dns_label(part)) return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

// A label "name" part (and label values when non-empty): at most 63 characters,
// [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?.
bool label_name_part(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  for (char c : s) {
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return alnum(s.front()) && alnum(s.back());
}

// Qualified name: [prefix/]name, prefix a DNS subdomain.
Check check_label_key(const std::string& path, const std::string& key) {
  const auto slash = key.find('/');
  const std::string prefix = slash == std::string::npos ? "" : key.substr(0, slash);
  const std::string name = slash == std::string::npos ? key : key.substr(slash + 1);
  if ((slash != std::string::npos && !dns_subdomain(prefix)) || !label_name_part(name) ||
      key.find('/', slash == std::string::npos ? key.size() : slash + 1) != std::string::npos) {
    return FieldError{path, "'" + key +
                                "': a valid label key is an optional DNS subdomain prefix and "
                                "'/', then 1-63 alphanumeric characters, '-', '_' or '.', "
                                "starting and ending with an alphanumeric character"};
  }
  return std::nullopt;
}

Check check_label_value(const std::string& path, const std::string& v) {
  if (!v.empty() && !label_name_part(v)) {
    return FieldError{path, "'" + v +
                                "': a valid label value is empty or 1-63 alphanumeric "
                                "characters, '-', '_' or '.', starting and ending with an "
                                "alphanumeric character"};
  }
  return std::nullopt;
}

// IANA service name: 1-15 of [a-z0-9-], at least one letter, no leading/trailing or double '-'.
bool iana_svc_name(std::string_view s) {
  if (s.empty() || s.size() > 15) return false;
  bool letter = false;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c >= 'a' && c <= 'z') {
      letter = true;
    } else if (!((c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
    if (c == '-' && i > 0 && s[i - 1] == '-') return false;
  }
  return letter && s.front() != '-' && s.back() != '-';
}

class Parser {
 public:
  // Every check returns false after recording the first error.
  bool fail(const std::string& path, const std::string& msg) {
    if (!err_) err_ = FieldError{path, msg};
    return false;
  }
  bool fail(const FieldError& e) { return fail(e.path, e.message); }
  const std::optional<FieldError>& error() const { return err_; }

  bool keys(const YAML::Node& map, const std::string& path, std::set<std::string> allowed) {
    if (!map.IsMap()) return fail(path, "expected an object");
    for (const auto& kv : map) {
      const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : "<non-scalar key>";
      if (!allowed.count(k)) return fail(child(path, k), "unknown field");
    }
    return true;
  }

  bool list(const YAML::Node& n, const std::string& path) {
    if (!n.IsSequence()) return fail(path, "expected a list");
    if (n.size() > kMaxListItems) {
      return fail(path, "more than " + std::to_string(kMaxListItems) + " items");
    }
    // Aliases can make a short text name the same big list many times: bound the total.
    if (budget && (*budget += n.size()) > kMaxElements) {
      return fail(path,
                  "the input has more than " + std::to_string(kMaxElements) + " list items in all");
    }
    return true;
  }
  std::size_t* budget = nullptr;

  bool string(const YAML::Node& n, const std::string& path, std::string& out) {
    if (!n.IsScalar()) return fail(path, "expected a string");
    if (!yamlf::valid_utf8(n.Scalar())) return fail(path, "not valid UTF-8 text");
    out = n.Scalar();
    return true;
  }

  bool int32(const YAML::Node& n, const std::string& path, std::int32_t& out) {
    std::int64_t v = 0;
    if (!n.IsScalar() || is_quoted(n) || !YAML::convert<std::int64_t>::decode(n, v) ||
        v < INT32_MIN || v > INT32_MAX) {
      return fail(path, "expected an integer");
    }
    out = static_cast<std::int32_t>(v);
    return true;
  }

  bool labels(const YAML::Node& n, const std::string& path, Labels& out) {
    if (!n || n.IsNull()) return true;
    if (!n.IsMap()) return fail(path, "expected a map of labels");
    if (n.size() > kMaxListItems) return fail(path, "too many labels");
    for (const auto& kv : n) {
      std::string k, v;
      if (!string(kv.first, path, k)) return false;
      if (auto e = check_label_key(child(path, k), k)) return fail(*e);
      if (kv.second.IsNull()) {
        v = "";
      } else if (!string(kv.second, child(path, k), v)) {
        return false;
      }
      if (auto e = check_label_value(child(path, k), v)) return fail(*e);
      out[k] = v;
    }
    return true;
  }

  bool selector(const YAML::Node& n, const std::string& path, LabelSelector& out) {
    if (n.IsNull()) return true;  // `podSelector:` with nothing: empty selector
    if (!keys(n, path, {"matchLabels", "matchExpressions"})) return false;
    if (!labels(n["matchLabels"], child(path, "matchLabels"), out.match_labels)) return false;
    const YAML::Node exprs = n["matchExpressions"];
    if (!exprs || exprs.IsNull()) return true;
    const std::string ep = child(path, "matchExpressions");
    if (!list(exprs, ep)) return false;
    for (std::size_t i = 0; i < exprs.size(); ++i) {
      const std::string p = idx(ep, i);
      const YAML::Node e = exprs[i];
      if (!keys(e, p, {"key", "operator", "values"})) return false;
      Requirement r;
      if (!e["key"]) return fail(child(p, "key"), "Required value");
      if (!string(e["key"], child(p, "key"), r.key)) return false;
      if (auto err = check_label_key(child(p, "key"), r.key)) return fail(*err);
      std::string op;
      if (!e["operator"]) return fail(child(p, "operator"), "Required value");
      if (!string(e["operator"], child(p, "operator"), op)) return false;
      const auto parsed_op = find_enum(op, kOperators);
      if (!parsed_op) {
        return fail(child(p, "operator"), "'" + op + "' is not a valid selector operator");
      }
      r.op = *parsed_op;
      const YAML::Node vals = e["values"];
      if (vals && !vals.IsNull()) {
        if (!list(vals, child(p, "values"))) return false;
        for (std::size_t j = 0; j < vals.size(); ++j) {
          std::string v;
          if (!string(vals[j], idx(child(p, "values"), j), v)) return false;
          if (auto err = check_label_value(idx(child(p, "values"), j), v)) return fail(*err);
          r.values.push_back(v);
        }
      }
      if ((r.op == Op::kIn || r.op == Op::kNotIn) && r.values.empty()) {
        return fail(child(p, "values"), "must be specified when `operator` is 'In' or 'NotIn'");
      }
      if ((r.op == Op::kExists || r.op == Op::kDoesNotExist) && !r.values.empty()) {
        return fail(child(p, "values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'");
      }
      out.match_expressions.push_back(std::move(r));
    }
    return true;
  }

  bool cidr(const YAML::Node& n, const std::string& path, model::IpPrefix& out) {
    std::string s;
    if (!string(n, path, s)) return false;
    auto p = model::IpPrefix::parse(s, /*allow_host_bits=*/true);
    if (!p.is_ok()) return fail(path, "must be a valid CIDR (got \"" + s + "\")");
    out = p.value();
    return true;
  }

  bool peer(const YAML::Node& n, const std::string& path, Peer& out) {
    if (!keys(n, path, {"podSelector", "namespaceSelector", "ipBlock"})) return false;
    int count = 0;
    if (n["podSelector"]) {
      out.pod_selector.emplace();
      if (!selector(n["podSelector"], child(path, "podSelector"), *out.pod_selector)) {
        return false;
      }
      ++count;
    }
    if (n["namespaceSelector"]) {
      out.namespace_selector.emplace();
      if (!selector(n["namespaceSelector"], child(path, "namespaceSelector"),
                    *out.namespace_selector)) {
        return false;
      }
      ++count;
    }
    if (const auto ib = n["ipBlock"]) {
      const std::string p = child(path, "ipBlock");
      if (!keys(ib, p, {"cidr", "except"})) return false;
      IpBlock block;
      if (!ib["cidr"]) return fail(child(p, "cidr"), "Required value");
      if (!cidr(ib["cidr"], child(p, "cidr"), block.cidr)) return false;
      if (const auto ex = ib["except"]; ex && !ex.IsNull()) {
        if (!list(ex, child(p, "except"))) return false;
        for (std::size_t i = 0; i < ex.size(); ++i) {
          const std::string ep = idx(child(p, "except"), i);
          model::IpPrefix e;
          if (!cidr(ex[i], ep, e)) return false;
          if (e.is_v4() != block.cidr.is_v4() || !block.cidr.contains(e.network()) ||
              e.length() <= block.cidr.length()) {
            return fail(ep, "must be a strict subset of `cidr`");
          }
          block.except.push_back(e);
        }
      }
      out.ip_block = std::move(block);
      ++count;
    }
    if (count == 0) return fail(path, "must specify a peer");
    if (out.ip_block && count > 1) return fail(path, "may not specify more than 1 peer");
    return true;
  }

  bool port(const YAML::Node& n, const std::string& path, PolicyPort& out) {
    if (!keys(n, path, {"protocol", "port", "endPort"})) return false;
    if (const auto pr = n["protocol"]; pr && !pr.IsNull()) {
      std::string s;
      if (!string(pr, child(path, "protocol"), s)) return false;
      const auto p = parse_protocol(s);
      if (!p) {
        return fail(
            child(path, "protocol"),
            "Unsupported value: \"" + s + "\": supported values: \"SCTP\", \"TCP\", \"UDP\"");
      }
      out.protocol = *p;
    }
    if (const auto pn = n["port"]; pn && !pn.IsNull()) {
      const std::string pp = child(path, "port");
      std::int64_t v = 0;
      if (pn.IsScalar() && !is_quoted(pn) && YAML::convert<std::int64_t>::decode(pn, v)) {
        if (v < 1 || v > 65535) return fail(pp, "must be between 1 and 65535, inclusive");
        out.port = static_cast<std::int32_t>(v);
      } else {
        std::string s;
        if (!string(pn, pp, s)) return false;
        if (!iana_svc_name(s)) {
          return fail(pp, "'" + s +
                              "': a named port is 1-15 lowercase letters, digits and '-', with "
                              "at least one letter, no leading, trailing or double '-'");
        }
        out.port_name = s;
      }
    }
    if (const auto en = n["endPort"]; en && !en.IsNull()) {
      const std::string ep = child(path, "endPort");
      std::int32_t v = 0;
      if (!int32(en, ep, v)) return false;
      if (!out.port_name.empty())
        return fail(ep, "may not be specified when `port` is non-numeric");
      if (!out.port) return fail(ep, "may not be specified when `port` is not specified");
      if (v < *out.port) return fail(ep, "must be greater than or equal to port");
      if (v > 65535) return fail(ep, "must be between 1 and 65535, inclusive");
      out.end_port = v;
    }
    return true;
  }

  bool rules(const YAML::Node& n, const std::string& path, const char* peers_key,
             std::vector<Rule>& out) {
    if (!n || n.IsNull()) return true;
    if (!list(n, path)) return false;
    for (std::size_t i = 0; i < n.size(); ++i) {
      const std::string p = idx(path, i);
      const YAML::Node r = n[i];
      if (r.IsNull()) {  // `- ` alone: an empty rule
        out.emplace_back();
        continue;
      }
      if (!keys(r, p, {peers_key, "ports"})) return false;
      Rule rule;
      if (const auto peers = r[peers_key]; peers && !peers.IsNull()) {
        const std::string pp = child(p, peers_key);
        if (!list(peers, pp)) return false;
        for (std::size_t j = 0; j < peers.size(); ++j) {
          Peer peer_out;
          if (!peer(peers[j], idx(pp, j), peer_out)) return false;
          rule.peers.push_back(std::move(peer_out));
        }
      }
      if (const auto ports = r["ports"]; ports && !ports.IsNull()) {
        const std::string pp = child(p, "ports");
        if (!list(ports, pp)) return false;
        for (std::size_t j = 0; j < ports.size(); ++j) {
          PolicyPort port_out;
          if (!port(ports[j], idx(pp, j), port_out)) return false;
          rule.ports.push_back(std::move(port_out));
        }
      }
      out.push_back(std::move(rule));
    }
    return true;
  }

  bool spec(const YAML::Node& n, NetworkPolicy& out) {
    if (!n) return fail("spec", "Required value");
    if (!keys(n, "spec", {"podSelector", "ingress", "egress", "policyTypes"})) return false;
    // Omitted, the API server defaults it to the empty selector: every pod of the namespace.
    if (n["podSelector"] && !selector(n["podSelector"], "spec.podSelector", out.pod_selector)) {
      return false;
    }
    if (!rules(n["ingress"], "spec.ingress", "from", out.ingress)) return false;
    if (!rules(n["egress"], "spec.egress", "to", out.egress)) return false;
    const YAML::Node types = n["policyTypes"];
    if (types && !types.IsNull()) {
      if (!list(types, "spec.policyTypes")) return false;
      if (types.size() > 2)
        return fail("spec.policyTypes", "may not specify more than two policyTypes");
      out.affects_ingress = out.affects_egress = false;
      for (std::size_t i = 0; i < types.size(); ++i) {
        std::string t;
        if (!string(types[i], idx("spec.policyTypes", i), t)) return false;
        if (t == "Ingress") {
          out.affects_ingress = true;
        } else if (t == "Egress") {
          out.affects_egress = true;
        } else {
          return fail(
              idx("spec.policyTypes", i),
              "Unsupported value: \"" + t + "\": supported values: \"Egress\", \"Ingress\"");
        }
      }
    } else {
      // Defaults: Ingress always; Egress when the policy has egress rules.
      out.affects_ingress = true;
      out.affects_egress = !out.egress.empty();
    }
    return true;
  }

 private:
  std::optional<FieldError> err_;
};

json selector_json(const LabelSelector& s) {
  json j = json::object();
  if (!s.match_labels.empty()) j["matchLabels"] = s.match_labels;
  if (!s.match_expressions.empty()) {
    json exprs = json::array();
    for (const auto& r : s.match_expressions) {
      json e = {{"key", r.key}, {"operator", enum_name(r.op, kOperators)}};
      if (!r.values.empty()) e["values"] = r.values;
      exprs.push_back(e);
    }
    j["matchExpressions"] = exprs;
  }
  return j;
}

json rules_json(const std::vector<Rule>& rules, const char* peers_key) {
  json out = json::array();
  for (const auto& r : rules) {
    json rule = json::object();
    if (!r.peers.empty()) {
      json peers = json::array();
      for (const auto& p : r.peers) {
        json pj = json::object();
        if (p.pod_selector) pj["podSelector"] = selector_json(*p.pod_selector);
        if (p.namespace_selector) pj["namespaceSelector"] = selector_json(*p.namespace_selector);
        if (p.ip_block) {
          json ib = {{"cidr", p.ip_block->cidr.to_string()}};
          if (!p.ip_block->except.empty()) {
            json ex = json::array();
            for (const auto& e : p.ip_block->except) ex.push_back(e.to_string());
            ib["except"] = ex;
          }
          pj["ipBlock"] = ib;
        }
        peers.push_back(pj);
      }
      rule[peers_key] = peers;
    }
    if (!r.ports.empty()) {
      json ports = json::array();
      for (const auto& p : r.ports) {
        json pj = {{"protocol", to_string(p.protocol)}};
        if (p.port) pj["port"] = *p.port;
        if (!p.port_name.empty()) pj["port"] = p.port_name;
        if (p.end_port) pj["endPort"] = *p.end_port;
        ports.push_back(pj);
      }
      rule["ports"] = ports;
    }
    out.push_back(rule);
  }
  return out;
}

}  // namespace

std::string spec_to_json(const NetworkPolicy& p) {
  json j = {{"podSelector", selector_json(p.pod_selector)}};
  json types = json::array();
  if (p.affects_ingress) types.push_back("Ingress");
  if (p.affects_egress) types.push_back("Egress");
  j["policyTypes"] = types;
  if (!p.ingress.empty() || p.affects_ingress) j["ingress"] = rules_json(p.ingress, "from");
  if (!p.egress.empty() || p.affects_egress) j["egress"] = rules_json(p.egress, "to");
  return j.dump();
}

namespace {

struct Meta {
  std::string name, namespace_;
  Labels labels;
  std::map<std::string, std::string> annotations;
};

// metadata: name (required), namespace (default "default" for namespaced kinds), labels,
// annotations; other metadata fields (uid, resourceVersion, ...) are accepted and ignored.
bool parse_meta(Parser& p, const YAML::Node& n, bool namespaced, Meta& out) {
  if (!n || !n.IsMap()) return p.fail("metadata", "Required value");
  if (!n["name"]) return p.fail("metadata.name", "Required value: name is required");
  if (!p.string(n["name"], "metadata.name", out.name)) return false;
  if (namespaced) {
    out.namespace_ = "default";
    if (n["namespace"] && !p.string(n["namespace"], "metadata.namespace", out.namespace_)) {
      return false;
    }
    if (!dns_label(out.namespace_)) {
      return p.fail("metadata.namespace", "'" + out.namespace_ + "': must be a DNS-1123 label");
    }
  }
  if (!p.labels(n["labels"], "metadata.labels", out.labels)) return false;
  if (const auto a = n["annotations"]; a && a.IsMap()) {
    for (const auto& kv : a) {
      if (kv.first.IsScalar() && kv.second.IsScalar()) {
        out.annotations[kv.first.Scalar()] = kv.second.Scalar();
      }
    }
  }
  return true;
}

bool parse_policy(Parser& p, const YAML::Node& doc, NetworkPolicy& out) {
  Meta meta;
  if (!parse_meta(p, doc["metadata"], true, meta)) return false;
  out.name = meta.name;
  out.namespace_ = meta.namespace_;
  if (!dns_subdomain(out.name)) {
    return p.fail("metadata.name", "'" + out.name + "': must be a DNS-1123 subdomain");
  }
  if (const auto it = meta.annotations.find("patronus.io/enabled"); it != meta.annotations.end()) {
    if (it->second != "true" && it->second != "false") {
      return p.fail("metadata.annotations[patronus.io/enabled]", "must be \"true\" or \"false\"");
    }
    out.enabled = it->second == "true";
  }
  if (const auto it = meta.annotations.find("patronus.io/priority"); it != meta.annotations.end()) {
    try {
      std::size_t used = 0;
      const long v = std::stol(it->second, &used);
      if (used != it->second.size() || v < INT32_MIN || v > INT32_MAX) throw std::out_of_range("");
      out.priority = static_cast<std::int32_t>(v);
    } catch (const std::exception&) {
      return p.fail("metadata.annotations[patronus.io/priority]", "must be a 32-bit integer");
    }
  }
  if (!p.spec(doc["spec"], out)) return false;
  out.spec_json = spec_to_json(out);
  return true;
}

bool parse_namespace(Parser& p, const YAML::Node& doc, Namespace& out) {
  Meta meta;
  if (!parse_meta(p, doc["metadata"], false, meta)) return false;
  if (!dns_label(meta.name)) {
    return p.fail("metadata.name", "'" + meta.name + "': must be a DNS-1123 label");
  }
  out.name = meta.name;
  out.labels = meta.labels;
  out.labels[kNamespaceNameLabel] = meta.name;  // the API server sets (and fixes) it
  return true;
}

bool parse_pod(Parser& p, const YAML::Node& doc, Pod& out) {
  Meta meta;
  if (!parse_meta(p, doc["metadata"], true, meta)) return false;
  if (!dns_subdomain(meta.name)) {
    return p.fail("metadata.name", "'" + meta.name + "': must be a DNS-1123 subdomain");
  }
  out.name = meta.name;
  out.namespace_ = meta.namespace_;
  out.labels = meta.labels;
  if (const auto spec = doc["spec"]; spec && spec.IsMap()) {
    if (const auto cs = spec["containers"]; cs && !cs.IsNull()) {
      if (!p.list(cs, "spec.containers")) return false;
      std::set<std::string> names;
      for (std::size_t i = 0; i < cs.size(); ++i) {
        const auto ports = cs[i]["ports"];
        if (!ports || ports.IsNull()) continue;
        const std::string pp = child(idx("spec.containers", i), "ports");
        if (!p.list(ports, pp)) return false;
        for (std::size_t j = 0; j < ports.size(); ++j) {
          const std::string q = idx(pp, j);
          ContainerPort cp;
          if (!ports[j]["containerPort"])
            return p.fail(child(q, "containerPort"), "Required value");
          if (!p.int32(ports[j]["containerPort"], child(q, "containerPort"), cp.port)) return false;
          if (cp.port < 1 || cp.port > 65535) {
            return p.fail(child(q, "containerPort"), "must be between 1 and 65535, inclusive");
          }
          if (const auto pr = ports[j]["protocol"]; pr && !pr.IsNull()) {
            std::string s;
            if (!p.string(pr, child(q, "protocol"), s)) return false;
            const auto proto = parse_protocol(s);
            if (!proto) {
              return p.fail(child(q, "protocol"), "Unsupported value: \"" + s +
                                                      "\": supported values: \"SCTP\", "
                                                      "\"TCP\", \"UDP\"");
            }
            cp.protocol = *proto;
          }
          if (const auto nm = ports[j]["name"]; nm && !nm.IsNull()) {
            if (!p.string(nm, child(q, "name"), cp.name)) return false;
            if (!iana_svc_name(cp.name)) {
              return p.fail(child(q, "name"), "'" + cp.name + "': must be an IANA_SVC_NAME");
            }
            if (!names.insert(cp.name).second) {
              return p.fail(child(q, "name"), "Duplicate value: \"" + cp.name + "\"");
            }
          }
          out.ports.push_back(cp);
        }
      }
    }
  }
  if (const auto status = doc["status"]; status && status.IsMap()) {
    std::set<model::IpAddress> seen;
    auto add_ip = [&](const YAML::Node& n, const std::string& path) {
      std::string s;
      if (!p.string(n, path, s)) return false;
      auto ip = model::IpAddress::parse(s);
      if (!ip.is_ok()) return p.fail(path, "must be a valid IP address (got \"" + s + "\")");
      if (seen.insert(ip.value()).second) out.ips.push_back(ip.value());
      return true;
    };
    if (const auto ip = status["podIP"]; ip && !ip.IsNull()) {
      if (!add_ip(ip, "status.podIP")) return false;
    }
    if (const auto ips = status["podIPs"]; ips && !ips.IsNull()) {
      if (!p.list(ips, "status.podIPs")) return false;
      for (std::size_t i = 0; i < ips.size(); ++i) {
        const auto ipn = ips[i]["ip"];
        if (!ipn) return p.fail(child(idx("status.podIPs", i), "ip"), "Required value");
        if (!add_ip(ipn, child(idx("status.podIPs", i), "ip"))) return false;
      }
    }
  }
  return true;
}

}  // namespace

Result<Manifests> parse_manifests(const std::string& text, const std::string& origin,
                                  Accept accept) {
  const std::string o = origin.empty() ? "" : origin + ": ";
  if (auto s = yamlf::check_yaml_stream(text, kMaxDocuments, kMaxEvents, kMaxAliases); !s.is_ok()) {
    return invalid_argument(o + s.message());
  }
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(text);
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + "not valid YAML: " + e.what());
  }
  if (docs.size() > kMaxDocuments) {
    return invalid_argument(o + "more than " + std::to_string(kMaxDocuments) + " documents");
  }
  Manifests out;
  std::set<std::string> seen;
  std::size_t budget = 0;
  // A document, or an item of a List, at `where` ("document 2", "document 1, items[3]").
  std::function<Status(const YAML::Node&, const std::string&, bool)> one;
  one = [&](const YAML::Node& doc, const std::string& where, bool in_list) -> Status {
    if (doc.IsNull()) return Status::ok();  // empty document (e.g. trailing ---)
    if (!doc.IsMap()) return invalid_argument(o + where + ": expected an object with a kind");
    std::string kind, api;
    if (doc["kind"] && doc["kind"].IsScalar()) kind = doc["kind"].Scalar();
    if (doc["apiVersion"] && doc["apiVersion"].IsScalar()) api = doc["apiVersion"].Scalar();
    if (kind.empty()) return invalid_argument(o + where + ": kind: Required value");
    Parser p;
    p.budget = &budget;
    std::string what;
    const bool policies_ok = accept != Accept::kInventory;
    const bool inventory_ok = accept != Accept::kPolicies;
    if (kind == "List" && !in_list) {
      if (api != "v1") return invalid_argument(o + where + ": apiVersion: List needs \"v1\"");
      const auto items = doc["items"];
      if (!items || items.IsNull()) return Status::ok();
      if (!items.IsSequence() || items.size() > kMaxDocuments) {
        return invalid_argument(o + where + ": items: expected a list");
      }
      for (std::size_t i = 0; i < items.size(); ++i) {
        if (auto s = one(items[i], where + ", items[" + std::to_string(i) + "]", true);
            !s.is_ok()) {
          return s;
        }
      }
      return Status::ok();
    }
    if (kind == "NetworkPolicy" && policies_ok) {
      if (api != "networking.k8s.io/v1") {
        return invalid_argument(o + where +
                                ": apiVersion: NetworkPolicy needs "
                                "\"networking.k8s.io/v1\" (got \"" +
                                api + "\")");
      }
      NetworkPolicy np;
      const bool ok = parse_policy(p, doc, np);
      what = "NetworkPolicy " + (np.name.empty() ? std::string("?") : np.key());
      if (ok) {
        if (!seen.insert("np/" + np.key()).second) {
          return invalid_argument(o + where + " (" + what + "): defined twice");
        }
        out.policies.push_back(std::move(np));
        return Status::ok();
      }
    } else if (kind == "Namespace" && inventory_ok) {
      if (api != "v1") return invalid_argument(o + where + ": apiVersion: Namespace needs \"v1\"");
      Namespace ns;
      const bool ok = parse_namespace(p, doc, ns);
      what = "Namespace " + ns.name;
      if (ok) {
        if (!seen.insert("ns/" + ns.name).second) {
          return invalid_argument(o + where + " (" + what + "): defined twice");
        }
        out.namespaces.push_back(std::move(ns));
        return Status::ok();
      }
    } else if (kind == "Pod" && inventory_ok) {
      if (api != "v1") return invalid_argument(o + where + ": apiVersion: Pod needs \"v1\"");
      Pod pod;
      const bool ok = parse_pod(p, doc, pod);
      what = "Pod " + (pod.name.empty() ? std::string("?") : pod.key());
      if (ok) {
        if (!seen.insert("pod/" + pod.key()).second) {
          return invalid_argument(o + where + " (" + what + "): defined twice");
        }
        out.pods.push_back(std::move(pod));
        return Status::ok();
      }
    } else {
      const char* allowed = accept == Accept::kPolicies    ? "NetworkPolicy, List"
                            : accept == Accept::kInventory ? "Namespace, Pod, List"
                                                           : "NetworkPolicy, Namespace, Pod, List";
      return invalid_argument(o + where + ": kind " + kind + " is not accepted here (" + allowed +
                              ")");
    }
    const auto& e = *p.error();
    return invalid_argument(o + where + " (" + what + "): " + e.path + ": " + e.message);
  };
  try {
    for (std::size_t i = 0; i < docs.size(); ++i) {
      if (auto s = one(docs[i], "document " + std::to_string(i + 1), false); !s.is_ok()) {
        return s;
      }
    }
  } catch (const YAML::Exception& e) {
    return invalid_argument(o + e.what());
  }
  return out;
}

Result<Manifests> load_manifests(const std::vector<std::string>& files, Accept accept) {
  Manifests all;
  std::set<std::string> seen;
  for (const auto& f : files) {
    auto text = read_text_file(f);
    if (!text.is_ok()) return text.status();
    auto m = parse_manifests(text.value(), f, accept);
    if (!m.is_ok()) return m.status();
    for (auto& p : m.value().policies) {
      if (!seen.insert("np/" + p.key()).second) {
        return invalid_argument(f + ": NetworkPolicy " + p.key() + " is defined in two files");
      }
      all.policies.push_back(std::move(p));
    }
    for (auto& n : m.value().namespaces) {
      if (!seen.insert("ns/" + n.name).second) {
        return invalid_argument(f + ": Namespace " + n.name + " is defined in two files");
      }
      all.namespaces.push_back(std::move(n));
    }
    for (auto& p : m.value().pods) {
      if (!seen.insert("pod/" + p.key()).second) {
        return invalid_argument(f + ": Pod " + p.key() + " is defined in two files");
      }
      all.pods.push_back(std::move(p));
    }
  }
  return all;
}

Inventory make_inventory(Manifests m) {
  Inventory inv;
  inv.namespaces = std::move(m.namespaces);
  inv.pods = std::move(m.pods);
  inv.complete_namespaces();
  return inv;
}

Result<NetworkPolicy> policy_from_spec_json(const std::string& name, const std::string& ns,
                                            const std::string& spec_json, bool enabled,
                                            std::int32_t priority) {
  json doc = {{"apiVersion", "networking.k8s.io/v1"},
              {"kind", "NetworkPolicy"},
              {"metadata", {{"name", name}, {"namespace", ns}}}};
  try {
    doc["spec"] = json::parse(spec_json);
  } catch (const json::exception& e) {
    return invalid_argument("policy " + ns + "/" + name + ": stored spec is not JSON: " + e.what());
  }
  auto m = parse_manifests(doc.dump(), "stored policy", Accept::kPolicies);
  if (!m.is_ok()) return m.status();
  NetworkPolicy p = std::move(m.value().policies.at(0));
  p.enabled = enabled;
  p.priority = priority;
  return p;
}

std::string stored_policies_document(const std::vector<model::NetworkPolicyRecord>& rows) {
  std::string out;
  for (const auto& r : rows) {
    json doc = {{"apiVersion", "networking.k8s.io/v1"},
                {"kind", "NetworkPolicy"},
                {"metadata",
                 {{"name", r.name},
                  {"namespace", r.namespace_},
                  {"annotations",
                   {{"patronus.io/enabled", r.enabled ? "true" : "false"},
                    {"patronus.io/priority", std::to_string(r.priority)}}}}}};
    try {
      doc["spec"] = json::parse(r.spec_json);
    } catch (const json::exception&) {
      doc["spec"] = r.spec_json;  // not an object: the plugin's validation names it
    }
    out += "---\n" + doc.dump() + "\n";
  }
  return out;
}

}  // namespace patronus::policy
