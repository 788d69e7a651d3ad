#include "connection.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include <nlohmann/json.hpp>

#include "patronus/util/enum_table.hpp"
#include "patronus/util/file.hpp"
#include "patronus/util/wipe.hpp"
#include "proposals.hpp"

namespace patronus::ipsec {

namespace {

using nlohmann::json;

Result<model::IpAddress> ip_of(const patronus_addr& a, const std::string& what) {
  patronus_addr x = a;
  x.port = 0;
  auto s = model::SocketAddress::from_abi(x);
  if (!s.is_ok()) return invalid_argument(what + ": not an address");
  return s.value().ip();
}

Result<model::IpPrefix> prefix_of(const patronus_prefix& p, const std::string& what) {
  auto ip = ip_of(p.addr, what);
  if (!ip.is_ok()) return ip.status();
  const int max = ip.value().is_v4() ? 32 : 128;
  if (p.length > max) return invalid_argument(what + ": prefix length " + std::to_string(p.length));
  return model::IpPrefix(ip.value(), p.length);
}

// A string field of an `ike` object, or "" (a non-string is an error).
Result<std::string> str(const json& o, const char* key, const std::string& where) {
  if (!o.contains(key)) return std::string();
  if (!o[key].is_string()) return invalid_argument(where + "." + key + ": expected a string");
  return o[key].get<std::string>();
}

Result<std::vector<std::string>> list(const json& o, const char* key, const std::string& where) {
  std::vector<std::string> out;
  if (!o.contains(key)) return out;
  if (!o[key].is_array() || o[key].size() > 16) {
    return invalid_argument(where + "." + key + ": expected a list of at most 16 strings");
  }
  for (const auto& v : o[key]) {
    if (!v.is_string()) return invalid_argument(where + "." + key + ": expected strings");
    out.push_back(v.get<std::string>());
  }
  return out;
}

Status timer(const json& o, const char* key, const std::string& where, std::uint32_t& out) {
  if (!o.contains(key)) return Status::ok();
  if (!o[key].is_number_unsigned() || o[key].get<std::uint64_t>() > 7 * 24 * 3600 ||
      o[key].get<std::uint64_t>() == 0) {
    return invalid_argument(where + "." + key + ": expected seconds, 1..604800");
  }
  out = o[key].get<std::uint32_t>();
  return Status::ok();
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 255) return false;
  return std::all_of(id.begin(), id.end(), [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

}  // namespace

namespace {
constexpr EnumTable<Mode, 2> kModes{{{"libipsec", Mode::kLibipsec}, {"xfrm", Mode::kXfrm}}};
}  // namespace

const char* to_string(Mode m) {
  return enum_name(m, kModes);
}
Result<Mode> parse_mode(std::string_view text) {
  return parse_enum("mode", text, kModes);
}

std::string conn_name(std::uint64_t path_id) {
  return "patronus-" + std::to_string(path_id);
}

Result<PathParams> path_params(const patronus_path_desc& d, Mode mode) {
  PathParams p;
  p.path_id = d.path_id;
  const std::string pid = "path " + std::to_string(d.path_id) + ": ";
  auto fail = [&](const Status& s) -> Result<PathParams> {
    return Status(s.code(), pid + s.message());
  };
  auto name = [](const char* s) { return s == nullptr ? std::string() : std::string(s); };
  p.local_site = name(d.local_site);
  p.remote_site = name(d.remote_site);
  p.local_endpoint = name(d.local_endpoint);
  p.remote_endpoint = name(d.remote_endpoint);
  if (p.local_site.empty() || p.remote_site.empty() || p.local_endpoint.empty() ||
      p.remote_endpoint.empty()) {
    return fail(invalid_argument("both sites' and endpoints' names are needed"));
  }
  auto local_ip = ip_of(d.local, "local address");
  if (!local_ip.is_ok()) return fail(local_ip.status());
  auto remote = model::SocketAddress::from_abi(d.remote);
  if (!remote.is_ok()) return fail(invalid_argument("remote address: not an address"));
  p.local_addr = local_ip.value();
  p.remote_addr = remote.value().ip();
  p.remote_port = remote.value().port() == 0 ? 500 : remote.value().port();
  if (p.local_addr.is_v4() != p.remote_addr.is_v4()) {
    return fail(invalid_argument("the local and remote addresses are of different families"));
  }
  p.interface_name = name(d.interface_name);
  p.mode = mode;
  if (p.interface_name.size() < 6 || p.interface_name.rfind("ipsec", 0) != 0 ||
      p.interface_name.size() > 15 ||
      !std::all_of(p.interface_name.begin() + 5, p.interface_name.end(),
                   [](unsigned char c) { return std::isdigit(c) != 0; })) {
    return fail(invalid_argument("interface '" + p.interface_name +
                                 "' is not an IPsec interface name (ipsecN)"));
  }
  const std::uint32_t n = static_cast<std::uint32_t>(std::stoul(p.interface_name.substr(5)));
  if (mode == Mode::kLibipsec && n != 0) {
    return fail(failed_precondition(
        "interface " + p.interface_name +
        ": userspace ESP (kernel-libipsec) has one TUN per charon, ipsec0, so a site has one "
        "IPsec endpoint here; route-based kernel ESP (mode: xfrm) allows more"));
  }
  p.if_id = n + 1;
  if (d.interface_address_count > 16 ||
      (d.interface_address_count > 0 && d.interface_addresses == nullptr)) {
    return fail(invalid_argument("interface addresses: bad count"));
  }
  for (std::uint32_t i = 0; i < d.interface_address_count; ++i) {
    // An address with its prefix length (host bits kept: it is this end's own address).
    const std::string what = "interface address " + std::to_string(i);
    auto ip = ip_of(d.interface_addresses[i].addr, what);
    if (!ip.is_ok()) return fail(ip.status());
    if (d.interface_addresses[i].length > (ip.value().is_v4() ? 32 : 128)) {
      return fail(invalid_argument(what + ": prefix length " +
                                   std::to_string(d.interface_addresses[i].length)));
    }
    p.interface_addresses.emplace_back(ip.value(), d.interface_addresses[i].length);
    // This end's overlay address is in its traffic selectors as a host route.
    p.local_ts.emplace_back(ip.value(), ip.value().is_v4() ? 32 : 128);
  }
  if (auto o = model::SocketAddress::from_abi(d.remote_overlay); o.is_ok()) {
    p.remote_overlay = o.value().ip();
  }
  if (d.allowed_prefix_count > 4096 ||
      (d.allowed_prefix_count > 0 && d.allowed_prefixes == nullptr)) {
    return fail(invalid_argument("allowed prefixes: bad count"));
  }
  for (std::uint32_t i = 0; i < d.allowed_prefix_count; ++i) {
    auto a = prefix_of(d.allowed_prefixes[i], "allowed prefix " + std::to_string(i));
    if (!a.is_ok()) return fail(a.status());
    p.remote_ts.push_back(a.value());
  }
  if (p.remote_ts.empty()) return fail(invalid_argument("no allowed prefixes (remote traffic)"));

  // The sites file's settings (ABI 1.4).
  json params = json::object();
  if (d.struct_size >= offsetof(patronus_path_desc, reserved2) && d.transport_params != nullptr &&
      d.transport_params_size > 0) {
    if (d.transport_params_size > 64 * 1024) {
      return fail(invalid_argument("transport settings: more than 64 KiB"));
    }
    params =
        json::parse(std::string_view(d.transport_params, d.transport_params_size), nullptr, false);
    if (params.is_discarded() || !params.is_object()) {
      return fail(invalid_argument("transport settings: not a JSON object"));
    }
    if (params.contains("transport") && params["transport"] != "ipsec") {
      return fail(invalid_argument("transport settings are for '" + params["transport"].dump() +
                                   "', not ipsec"));
    }
  }
  const json local = params.value("local", json::object());
  const json rem = params.value("remote", json::object());
  if (!local.is_object() || !rem.is_object()) {
    return fail(invalid_argument("transport settings: local and remote must be objects"));
  }
  auto lid = str(local, "id", "local");
  auto rid = str(rem, "id", "remote");
  if (!lid.is_ok()) return fail(lid.status());
  if (!rid.is_ok()) return fail(rid.status());
  p.local_id = lid.value().empty() ? p.local_addr.to_string() : lid.value();
  p.remote_id = rid.value().empty() ? p.remote_addr.to_string() : rid.value();
  if (!valid_id(p.local_id) || !valid_id(p.remote_id)) {
    return fail(invalid_argument("IKE identities are 1-255 printable characters without spaces"));
  }
  // Proposals: the remote's (a peer says what it accepts) over ours; ours over the defaults.
  for (auto [key, kind, out] :
       {std::tuple{"proposals", ProposalKind::kIke, &p.proposals},
        std::tuple{"esp_proposals", ProposalKind::kEsp, &p.esp_proposals}}) {
    auto r = list(rem, key, "remote");
    auto l = list(local, key, "local");
    if (!r.is_ok()) return fail(r.status());
    if (!l.is_ok()) return fail(l.status());
    *out = !r.value().empty()   ? r.value()
           : !l.value().empty() ? l.value()
                                : default_proposals(kind);
    for (const auto& prop : *out) {
      if (auto s = check_proposal(prop, kind); !s.is_ok()) return fail(s);
    }
  }
  for (auto [key, out] :
       {std::pair{"dpd_s", &p.dpd_s}, std::pair{"rekey_s", &p.rekey_s},
        std::pair{"child_rekey_s", &p.child_rekey_s}, std::pair{"reauth_s", &p.reauth_s}}) {
    if (auto s = timer(local, key, "local", *out); !s.is_ok()) return fail(s);
  }
  auto rpsk = str(rem, "psk_file", "remote");
  auto lpsk = str(local, "psk_file", "local");
  if (!rpsk.is_ok()) return fail(rpsk.status());
  if (!lpsk.is_ok()) return fail(lpsk.status());
  p.psk_file = !rpsk.value().empty() ? rpsk.value() : lpsk.value();
  if (params.contains("local_subnets")) {
    auto subnets = list(params, "local_subnets", "transport settings");
    if (!subnets.is_ok()) return fail(subnets.status());
    for (const auto& s : subnets.value()) {
      auto pf = model::IpPrefix::parse(s);
      if (!pf.is_ok()) return fail(invalid_argument("local_subnets: " + pf.status().message()));
      p.local_ts.push_back(pf.value());
    }
  }
  if (p.local_ts.empty()) return fail(invalid_argument("no local traffic selectors"));
  // Between two of our sites one end starts the IKE_SA (the smaller endpoint name); a peer that
  // is not ours is always started from here.
  const bool external = rem.value("external", false);
  p.initiator = external || std::make_pair(p.local_site, p.local_endpoint) <
                                std::make_pair(p.remote_site, p.remote_endpoint);
  return p;
}

vici::Message load_conn(const PathParams& p) {
  const std::string name = conn_name(p.path_id);
  vici::Message m;
  vici::Message& c = m.section(name);
  c.set("version", "2");
  c.set_list("local_addrs", {p.local_addr.to_string()});
  c.set_list("remote_addrs", {p.remote_addr.to_string()});
  if (p.remote_port != 500) c.set("remote_port", std::to_string(p.remote_port));
  c.set_list("proposals", p.proposals);
  c.set("dpd_delay", std::to_string(p.dpd_s) + "s");
  c.set("rekey_time", std::to_string(p.rekey_s) + "s");
  if (p.reauth_s > 0) c.set("reauth_time", std::to_string(p.reauth_s) + "s");
  c.set("mobike", "no");
  c.set("unique", "replace");
  if (p.mode == Mode::kXfrm) {
    c.set("if_id_in", std::to_string(p.if_id));
    c.set("if_id_out", std::to_string(p.if_id));
  }
  vici::Message& l = c.section("local");
  l.set("auth", "psk");
  l.set("id", p.local_id);
  vici::Message& r = c.section("remote");
  r.set("auth", "psk");
  r.set("id", p.remote_id);
  vici::Message& child = c.section("children").section(name);
  std::vector<std::string> lts, rts;
  for (const auto& t : p.local_ts) lts.push_back(t.to_string());
  for (const auto& t : p.remote_ts) rts.push_back(t.to_string());
  child.set_list("local_ts", lts);
  child.set_list("remote_ts", rts);
  child.set_list("esp_proposals", p.esp_proposals);
  child.set("rekey_time", std::to_string(p.child_rekey_s) + "s");
  // charon never restarts a connection by itself: the plugin does (every retry interval while
  // the path is down), through `initiate`, so each attempt's failure comes back with its reason.
  child.set("dpd_action", "clear");
  child.set("close_action", "none");
  child.set("start_action", "none");
  child.set("mode", "tunnel");
  if (p.mode == Mode::kXfrm) {
    child.set("if_id_in", std::to_string(p.if_id));
    child.set("if_id_out", std::to_string(p.if_id));
  }
  return m;
}

vici::Message load_shared(const PathParams& p, const std::string& secret) {
  vici::Message m;
  m.set("id", conn_name(p.path_id));
  m.set("type", "IKE");
  m.set("data", secret);
  m.set_list("owners", {p.local_id, p.remote_id});
  return m;
}

Result<std::string> read_psk_file(const std::string& path) {
  // The shared checks for private files: no symlink, a regular file of ours, and one others
  // could read is refused as exposed (the key must be replaced, not just chmod-ed).
  auto r = read_private_file(path, 1024);
  if (!r.is_ok()) return Status(r.status().code(), "psk_file " + r.status().message());
  if (!r.value()) return unavailable("psk_file " + path + ": no such file");
  std::string data = trim(std::move(*r.value()));
  if (data.size() < 20) {
    util::wipe(data);
    return invalid_argument("psk_file " + path + ": a pre-shared key needs at least 20 bytes");
  }
  return data;
}

namespace {

Result<std::uint64_t> number(const vici::Message& m, std::string_view key,
                             const std::string& where) {
  const auto v = m.get(key);
  if (!v) return std::uint64_t{0};
  std::uint64_t out = 0;
  const auto* end = v->data() + v->size();
  const auto r = std::from_chars(v->data(), end, out);
  if (r.ec != std::errc() || r.ptr != end) {
    return invalid_argument("list-sa " + where + "." + std::string(key) + ": '" + *v +
                            "' is not a number");
  }
  return out;
}

}  // namespace

Result<std::vector<SaState>> parse_list_sa(const vici::Message& event) {
  std::vector<SaState> out;
  for (const auto& [conn, v] : event.items) {
    if (v.kind != vici::Value::Kind::kSection || !v.section || conn.rfind("patronus-", 0) != 0) {
      continue;
    }
    const vici::Message& ike = *v.section;
    SaState s;
    s.conn = conn;
    s.ike_state = ike.get("state").value_or("");
    s.remote_host = ike.get("remote-host").value_or("");
    s.remote_id = ike.get("remote-id").value_or("");
    s.encr_alg = ike.get("encr-alg").value_or("");
    s.dh_group = ike.get("dh-group").value_or("");
    auto port = number(ike, "remote-port", conn);
    if (!port.is_ok()) return port.status();
    if (ike.get("established")) {
      auto est = number(ike, "established", conn);
      if (!est.is_ok()) return est.status();
      s.established_s = static_cast<std::int64_t>(est.value());
    }
    if (ike.get("rekey-time")) {
      auto rk = number(ike, "rekey-time", conn);
      if (!rk.is_ok()) return rk.status();
      s.ike_rekey_in_s = static_cast<std::int64_t>(rk.value());
    }
    if (port.value() > 65535) return invalid_argument("list-sa " + conn + ".remote-port: too big");
    s.remote_port = static_cast<std::uint16_t>(port.value());
    if (const vici::Message* children = ike.child("child-sas")) {
      for (const auto& [cname, cv] : children->items) {
        if (cv.kind != vici::Value::Kind::kSection || !cv.section) continue;
        const vici::Message& c = *cv.section;
        if (c.get("state").value_or("") != "INSTALLED") continue;
        const std::string where = conn + ".child-sas." + cname;
        auto in = number(c, "bytes-in", where);
        auto outb = number(c, "bytes-out", where);
        auto installed = number(c, "install-time", where);
        if (!in.is_ok()) return in.status();
        if (!outb.is_ok()) return outb.status();
        if (!installed.is_ok()) return installed.status();
        // Several installed CHILD_SAs (a rekey in progress): bytes add up, the newest counts.
        s.bytes_in += in.value();
        s.bytes_out += outb.value();
        const auto ago = static_cast<std::int64_t>(installed.value());
        if (!s.child_installed || ago < s.installed_ago_s) {
          s.installed_ago_s = ago;
          s.child_id = c.get("uniqueid").value_or(cname);
        }
        s.child_installed = true;
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::uint32_t diagnose(std::string_view line) {
  auto has = [&](std::string_view w) { return line.find(w) != std::string_view::npos; };
  if (has("AUTHENTICATION_FAILED") || (has("authentication of") && has("failed"))) {
    return PATRONUS_TUNNEL_DIAG_AUTH_FAILED;
  }
  if (has("NO_PROPOSAL_CHOSEN") || has("TS_UNACCEPTABLE") || has("no acceptable proposal")) {
    return PATRONUS_TUNNEL_DIAG_NEGOTIATION_FAILED;
  }
  return PATRONUS_TUNNEL_DIAG_NONE;
}

}  // namespace patronus::ipsec
