#include "genl.hpp"

#include <arpa/inet.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/wireguard.h>
#include <netinet/in.h>
#include <string.h>

#include <cstring>

namespace patronus::wg::genl {

using linuxnet::NlMessage;

namespace {

using Attr = linuxnet::NlAttr;
using Msg = linuxnet::NlBuilder;

// The attributes in [p, p + n), errors naming where in the device's answer they are.
Result<std::vector<Attr>> attrs(const std::uint8_t* p, std::size_t n, const char* where,
                                std::size_t max = 1 << 20) {
  auto a = linuxnet::parse_attrs(p, n, max);
  if (!a.is_ok())
    return invalid_argument(std::string("wireguard ") + where + ": " + a.status().message());
  return a;
}

// A generic netlink request: the netlink header and the genl header.
Msg request(std::uint16_t type, std::uint16_t flags, std::uint32_t seq, std::uint8_t cmd,
            std::uint8_t version) {
  Msg m(type, flags, seq);
  genlmsghdr g{};
  g.cmd = cmd;
  g.version = version;
  m.fixed(g);
  return m;
}

template <typename T>
Result<T> read(const Attr& a, const char* what) {
  if (a.size != sizeof(T)) {
    return invalid_argument(std::string("wireguard netlink: ") + what + " is " +
                            std::to_string(a.size) + " bytes, expected " +
                            std::to_string(sizeof(T)));
  }
  T v{};
  std::memcpy(&v, a.data, sizeof v);
  return v;
}

Result<Key> read_key(const Attr& a, const char* what) {
  if (a.size != WG_KEY_LEN) {
    return invalid_argument(std::string("wireguard netlink: ") + what + " is " +
                            std::to_string(a.size) + " bytes, expected 32");
  }
  Key k{};
  std::memcpy(k.data(), a.data, k.size());
  return k;
}

bool all_zero(const Key& k) {
  for (auto b : k) {
    if (b) return false;
  }
  return true;
}

Result<model::SocketAddress> read_endpoint(const Attr& a) {
  if (a.size == sizeof(sockaddr_in)) {
    sockaddr_in s{};
    std::memcpy(&s, a.data, sizeof s);
    if (s.sin_family != AF_INET) return invalid_argument("wireguard netlink: endpoint family");
    return model::SocketAddress(model::IpAddress::v4(ntohl(s.sin_addr.s_addr)), ntohs(s.sin_port));
  }
  if (a.size == sizeof(sockaddr_in6)) {
    sockaddr_in6 s{};
    std::memcpy(&s, a.data, sizeof s);
    if (s.sin6_family != AF_INET6) return invalid_argument("wireguard netlink: endpoint family");
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), &s.sin6_addr, 16);
    return model::SocketAddress(model::IpAddress::v6(b), ntohs(s.sin6_port));
  }
  return invalid_argument("wireguard netlink: an endpoint of " + std::to_string(a.size) +
                          " bytes (neither sockaddr_in nor sockaddr_in6)");
}

Result<model::IpPrefix> read_allowed_ip(const Attr& nested) {
  auto as = attrs(nested.data, nested.size, "allowed IP", 16);
  if (!as.is_ok()) return as.status();
  std::optional<std::uint16_t> family;
  std::optional<std::uint8_t> cidr;
  const Attr* addr = nullptr;
  for (const auto& a : as.value()) {
    if (a.type == WGALLOWEDIP_A_FAMILY) {
      auto v = read<std::uint16_t>(a, "allowed IP family");
      if (!v.is_ok()) return v.status();
      family = v.value();
    } else if (a.type == WGALLOWEDIP_A_CIDR_MASK) {
      auto v = read<std::uint8_t>(a, "allowed IP mask");
      if (!v.is_ok()) return v.status();
      cidr = v.value();
    } else if (a.type == WGALLOWEDIP_A_IPADDR) {
      addr = &a;
    }
  }
  if (!family || !cidr || addr == nullptr) {
    return invalid_argument("wireguard netlink: an allowed IP without family, address or mask");
  }
  if (*family == AF_INET && addr->size == 4 && *cidr <= 32) {
    std::uint32_t be = 0;
    std::memcpy(&be, addr->data, 4);
    return model::IpPrefix(model::IpAddress::v4(ntohl(be)), *cidr);
  }
  if (*family == AF_INET6 && addr->size == 16 && *cidr <= 128) {
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), addr->data, 16);
    return model::IpPrefix(model::IpAddress::v6(b), *cidr);
  }
  return invalid_argument("wireguard netlink: allowed IP of family " + std::to_string(*family) +
                          " with " + std::to_string(addr->size) + " address bytes and mask " +
                          std::to_string(*cidr));
}

Result<PeerState> read_peer(const Attr& nested, std::size_t* allowed_total,
                            const UapiLimits& limits) {
  auto as = attrs(nested.data, nested.size, "peer", 64);
  if (!as.is_ok()) return as.status();
  PeerState p;
  bool have_key = false;
  for (const auto& a : as.value()) {
    switch (a.type) {
      case WGPEER_A_PUBLIC_KEY: {
        auto k = read_key(a, "peer public key");
        if (!k.is_ok()) return k.status();
        p.public_key = k.value();
        have_key = true;
        break;
      }
      case WGPEER_A_PRESHARED_KEY: {
        auto k = read_key(a, "preshared key");
        if (!k.is_ok()) return k.status();
        if (!all_zero(k.value())) p.preshared_key = k.value();
        break;
      }
      case WGPEER_A_ENDPOINT: {
        auto e = read_endpoint(a);
        if (!e.is_ok()) return e.status();
        p.endpoint = e.value();
        break;
      }
      case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL: {
        auto v = read<std::uint16_t>(a, "keepalive");
        if (!v.is_ok()) return v.status();
        p.keepalive_s = v.value();
        break;
      }
      case WGPEER_A_LAST_HANDSHAKE_TIME: {
        struct {
          std::int64_t sec, nsec;
        } ts{};
        if (a.size != sizeof ts) {
          return invalid_argument("wireguard netlink: last handshake time of " +
                                  std::to_string(a.size) + " bytes, expected 16");
        }
        std::memcpy(&ts, a.data, sizeof ts);
        if (ts.sec < 0 || ts.nsec < 0 || ts.nsec >= 1'000'000'000 || ts.sec > 9'000'000'000LL) {
          return invalid_argument("wireguard netlink: last handshake time out of range");
        }
        p.last_handshake_ns = ts.sec * 1'000'000'000 + ts.nsec;
        break;
      }
      case WGPEER_A_RX_BYTES: {
        auto v = read<std::uint64_t>(a, "rx bytes");
        if (!v.is_ok()) return v.status();
        p.rx_bytes = v.value();
        break;
      }
      case WGPEER_A_TX_BYTES: {
        auto v = read<std::uint64_t>(a, "tx bytes");
        if (!v.is_ok()) return v.status();
        p.tx_bytes = v.value();
        break;
      }
      case WGPEER_A_PROTOCOL_VERSION: {
        auto v = read<std::uint32_t>(a, "protocol version");
        if (!v.is_ok()) return v.status();
        p.protocol_version = v.value();
        break;
      }
      case WGPEER_A_ALLOWEDIPS: {
        auto ips = attrs(a.data, a.size, "allowed IPs");
        if (!ips.is_ok()) return ips.status();
        for (const auto& ip : ips.value()) {
          if (++*allowed_total > limits.max_allowed_ips) {
            return invalid_argument("wireguard netlink: more than " +
                                    std::to_string(limits.max_allowed_ips) + " allowed IPs");
          }
          auto pf = read_allowed_ip(ip);
          if (!pf.is_ok()) return pf.status();
          p.allowed_ips.push_back(pf.value());
        }
        break;
      }
      default:
        break;  // a newer kernel's attribute
    }
  }
  if (!have_key) return invalid_argument("wireguard netlink: a peer without a public key");
  return p;
}

}  // namespace

std::vector<std::uint8_t> encode_get_family(const std::string& name, std::uint32_t seq) {
  Msg m = request(GENL_ID_CTRL, NLM_F_REQUEST | NLM_F_ACK, seq, CTRL_CMD_GETFAMILY, 1);
  m.attr(CTRL_ATTR_FAMILY_NAME, name.c_str(), name.size() + 1);
  return m.finish();
}

Result<std::uint16_t> decode_family_id(const NlMessage& m) {
  if (m.type != GENL_ID_CTRL || m.payload.size() < GENL_HDRLEN) {
    return invalid_argument("generic netlink: not a controller message");
  }
  auto as = attrs(m.payload.data() + GENL_HDRLEN, m.payload.size() - GENL_HDRLEN, "family");
  if (!as.is_ok()) return as.status();
  for (const auto& a : as.value()) {
    if (a.type == CTRL_ATTR_FAMILY_ID) return read<std::uint16_t>(a, "family id");
  }
  return invalid_argument("generic netlink: the controller's answer has no family id");
}

std::vector<std::uint8_t> encode_get_device(std::uint16_t family, const std::string& ifname,
                                            std::uint32_t seq) {
  Msg m = request(family, NLM_F_REQUEST | NLM_F_DUMP, seq, WG_CMD_GET_DEVICE, WG_GENL_VERSION);
  m.attr(WGDEVICE_A_IFNAME, ifname.c_str(), ifname.size() + 1);
  return m.finish();
}

Result<DeviceState> decode_device(const std::vector<NlMessage>& messages,
                                  const UapiLimits& limits) {
  DeviceState d;
  std::size_t allowed_total = 0;
  for (const auto& m : messages) {
    if (m.payload.size() < GENL_HDRLEN) {
      return invalid_argument("wireguard netlink: a message shorter than its genl header");
    }
    genlmsghdr g{};
    std::memcpy(&g, m.payload.data(), sizeof g);
    if (g.cmd != WG_CMD_GET_DEVICE) {
      return invalid_argument("wireguard netlink: command " + std::to_string(g.cmd) +
                              " in a device dump");
    }
    auto as = attrs(m.payload.data() + GENL_HDRLEN, m.payload.size() - GENL_HDRLEN, "device", 64);
    if (!as.is_ok()) return as.status();
    for (const auto& a : as.value()) {
      switch (a.type) {
        case WGDEVICE_A_PRIVATE_KEY: {
          auto k = read_key(a, "private key");
          if (!k.is_ok()) return k.status();
          if (!all_zero(k.value())) d.private_key = k.value();
          break;
        }
        case WGDEVICE_A_LISTEN_PORT: {
          auto v = read<std::uint16_t>(a, "listen port");
          if (!v.is_ok()) return v.status();
          d.listen_port = v.value();
          break;
        }
        case WGDEVICE_A_FWMARK: {
          auto v = read<std::uint32_t>(a, "fwmark");
          if (!v.is_ok()) return v.status();
          d.fwmark = v.value();
          break;
        }
        case WGDEVICE_A_PEERS: {
          auto peers = attrs(a.data, a.size, "peers");
          if (!peers.is_ok()) return peers.status();
          for (const auto& pa : peers.value()) {
            auto p = read_peer(pa, &allowed_total, limits);
            if (!p.is_ok()) return p.status();
            // A peer continued from the previous message: more allowed IPs of the same key.
            if (!d.peers.empty() && d.peers.back().public_key == p.value().public_key) {
              auto& last = d.peers.back();
              last.allowed_ips.insert(last.allowed_ips.end(), p.value().allowed_ips.begin(),
                                      p.value().allowed_ips.end());
              continue;
            }
            if (d.peers.size() >= limits.max_peers) {
              return invalid_argument("wireguard netlink: more than " +
                                      std::to_string(limits.max_peers) + " peers");
            }
            d.peers.push_back(std::move(p).value());
          }
          break;
        }
        default:
          break;  // ifindex, ifname, public key, flags: nothing to keep
      }
    }
  }
  return d;
}

namespace {

void put_allowed_ip(Msg& m, const model::IpPrefix& p) {
  m.nest_begin(0);
  m.attr_value<std::uint16_t>(WGALLOWEDIP_A_FAMILY, p.is_v4() ? AF_INET : AF_INET6);
  if (p.is_v4()) {
    const std::uint32_t be = htonl(p.network().v4_host_order());
    m.attr(WGALLOWEDIP_A_IPADDR, &be, 4);
  } else {
    m.attr(WGALLOWEDIP_A_IPADDR, p.network().bytes().data(), 16);
  }
  m.attr_value<std::uint8_t>(WGALLOWEDIP_A_CIDR_MASK, static_cast<std::uint8_t>(p.length()));
  m.nest_end();
}

void put_endpoint(Msg& m, const model::SocketAddress& e) {
  if (e.ip().is_v4()) {
    sockaddr_in s{};
    s.sin_family = AF_INET;
    s.sin_port = htons(e.port());
    s.sin_addr.s_addr = htonl(e.ip().v4_host_order());
    m.attr(WGPEER_A_ENDPOINT, &s, sizeof s);
  } else {
    sockaddr_in6 s{};
    s.sin6_family = AF_INET6;
    s.sin6_port = htons(e.port());
    std::memcpy(&s.sin6_addr, e.ip().bytes().data(), 16);
    m.attr(WGPEER_A_ENDPOINT, &s, sizeof s);
  }
}

// Upper bounds of what one peer's header and one allowed IP add to a message, with the closing
// of the nests: a fragment is cut before it could exceed the limit.
constexpr std::size_t kPeerHeaderMax = 4 + 36 + 8 + 36 + 32 + 8 + 4;
constexpr std::size_t kAllowedIpMax = 4 + 8 + 20 + 8;

}  // namespace

std::vector<std::vector<std::uint8_t>> encode_set_device(std::uint16_t family,
                                                         const std::string& ifname,
                                                         const DeviceChange& c, std::uint32_t seq,
                                                         std::size_t max_message) {
  max_message = std::max<std::size_t>(max_message, 512);
  std::vector<std::vector<std::uint8_t>> out;
  auto start = [&](bool first) {
    Msg m = request(family, NLM_F_REQUEST | NLM_F_ACK, seq++, WG_CMD_SET_DEVICE, WG_GENL_VERSION);
    m.attr(WGDEVICE_A_IFNAME, ifname.c_str(), ifname.size() + 1);
    if (first) {
      m.attr_value<std::uint32_t>(WGDEVICE_A_FLAGS, c.replace_peers ? WGDEVICE_F_REPLACE_PEERS : 0);
      if (c.private_key) m.attr(WGDEVICE_A_PRIVATE_KEY, c.private_key->data(), WG_KEY_LEN);
      if (c.listen_port) m.attr_value<std::uint16_t>(WGDEVICE_A_LISTEN_PORT, *c.listen_port);
      if (c.fwmark) m.attr_value<std::uint32_t>(WGDEVICE_A_FWMARK, *c.fwmark);
    }
    return m;
  };
  Msg m = start(true);
  bool peers_open = false;
  auto close_and_flush = [&](bool in_peer, bool in_ips) {
    if (in_ips) m.nest_end();
    if (in_peer) m.nest_end();
    if (peers_open) m.nest_end();
    peers_open = false;
    out.push_back(m.finish());
    m = start(false);
  };
  for (const auto& p : c.peers) {
    if (m.size() + kPeerHeaderMax + kAllowedIpMax + 12 > max_message) close_and_flush(false, false);
    if (!peers_open) {
      m.nest_begin(WGDEVICE_A_PEERS);
      peers_open = true;
    }
    auto peer_header = [&](bool first_fragment) {
      m.nest_begin(0);
      m.attr(WGPEER_A_PUBLIC_KEY, p.public_key.data(), WG_KEY_LEN);
      std::uint32_t flags = 0;
      if (p.remove) flags |= WGPEER_F_REMOVE_ME;
      // Later fragments only add allowed IPs to the peer the first one created or updated.
      if (!first_fragment || p.update_only) flags |= WGPEER_F_UPDATE_ONLY;
      if (first_fragment && p.replace_allowed_ips) flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
      m.attr_value<std::uint32_t>(WGPEER_A_FLAGS, flags);
      if (!first_fragment) return;
      if (p.preshared_key) m.attr(WGPEER_A_PRESHARED_KEY, p.preshared_key->data(), WG_KEY_LEN);
      if (p.endpoint) put_endpoint(m, *p.endpoint);
      if (p.keepalive_s) {
        m.attr_value<std::uint16_t>(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, *p.keepalive_s);
      }
    };
    peer_header(true);
    if (!p.remove && !p.allowed_ips.empty()) {
      m.nest_begin(WGPEER_A_ALLOWEDIPS);
      for (const auto& ip : p.allowed_ips) {
        if (m.size() + kAllowedIpMax + 12 > max_message) {
          close_and_flush(true, true);
          m.nest_begin(WGDEVICE_A_PEERS);
          peers_open = true;
          peer_header(false);
          m.nest_begin(WGPEER_A_ALLOWEDIPS);
        }
        put_allowed_ip(m, ip);
      }
      m.nest_end();
    }
    m.nest_end();
  }
  if (peers_open) m.nest_end();
  out.push_back(m.finish());
  return out;
}

// ---- the socket ----------------------------------------------------------------------------

Result<KernelDevices> KernelDevices::open() {
  auto nl = linuxnet::Rtnl::open_generic();
  if (!nl.is_ok()) return nl.status();
  const std::uint32_t seq = nl.value().next_seq();
  auto r = nl.value().request(encode_get_family(WG_GENL_NAME, seq), seq);
  if (!r.is_ok()) {
    return unavailable(
        "this kernel has no WireGuard (the generic netlink family 'wireguard' is unknown: " +
        r.status().message() + "); use backend: userspace (wireguard-go)");
  }
  for (const auto& m : r.value()) {
    auto id = decode_family_id(m);
    if (id.is_ok()) return KernelDevices(std::move(nl).value(), id.value());
  }
  return unavailable("generic netlink: no id for the family 'wireguard'");
}

Result<DeviceState> KernelDevices::get(const std::string& ifname) {
  const std::uint32_t seq = nl_.next_seq();
  auto msgs = nl_.dump(encode_get_device(family_, ifname, seq), seq);
  if (!msgs.is_ok()) return Status(msgs.status().code(), ifname + ": " + msgs.status().message());
  auto device = decode_device(msgs.value());
  for (auto& m : msgs.value()) {  // a dump carries the private key
    if (!m.payload.empty()) ::explicit_bzero(m.payload.data(), m.payload.size());
  }
  return device;
}

Status KernelDevices::set(const std::string& ifname, const DeviceChange& change) {
  auto reqs = encode_set_device(family_, ifname, change, 0);
  const Status s = nl_.batch(reqs);
  for (auto& r : reqs) {  // the first carries the private key
    if (!r.empty()) ::explicit_bzero(r.data(), r.size());
  }
  if (!s.is_ok()) return Status(s.code(), ifname + ": " + s.message());
  return Status::ok();
}

}  // namespace patronus::wg::genl
