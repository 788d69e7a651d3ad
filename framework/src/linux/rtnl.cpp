#include "rtnl.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>

namespace patronus::linuxnet {

namespace {

// Newer than the uapi headers of Debian 12 (linux/fib_rules.h of 6.13: after FRA_DPORT_RANGE).
constexpr std::uint16_t kFraDscp = 25;

constexpr std::size_t kAlign = 4;
constexpr std::size_t align(std::size_t n) {
  return (n + kAlign - 1) & ~(kAlign - 1);
}

std::uint16_t flags_of(Op op) {
  switch (op) {
    case Op::kAdd:
      return NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
    case Op::kReplace:
      return NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
    case Op::kDelete:
      return NLM_F_REQUEST | NLM_F_ACK;
  }
  return NLM_F_REQUEST | NLM_F_ACK;
}

template <typename T>
bool read_value(const NlAttr& a, T* out) {
  if (a.size != sizeof(T)) return false;
  std::memcpy(out, a.data, sizeof(T));
  return true;
}

Result<model::IpAddress> read_ip(const NlAttr& a, bool ipv6) {
  if (!ipv6 && a.size == 4) {
    std::uint32_t be = 0;
    std::memcpy(&be, a.data, 4);
    return model::IpAddress::v4(ntohl(be));
  }
  if (ipv6 && a.size == 16) {
    std::array<std::uint8_t, 16> b{};
    std::memcpy(b.data(), a.data, 16);
    return model::IpAddress::v6(b);
  }
  return invalid_argument("an address attribute of " + std::to_string(a.size) + " bytes");
}

Status errno_status(const std::string& what, int err) {
  return unavailable(what + ": " + std::strerror(err));
}

}  // namespace

Result<std::vector<NlMessage>> split_messages(const std::uint8_t* data, std::size_t size,
                                              std::size_t max_messages) {
  std::vector<NlMessage> out;
  std::size_t off = 0;
  while (off < size) {
    if (size - off < sizeof(nlmsghdr)) {
      return invalid_argument("netlink: " + std::to_string(size - off) +
                              " trailing bytes, less than a header");
    }
    nlmsghdr h{};
    std::memcpy(&h, data + off, sizeof h);
    if (h.nlmsg_len < sizeof h || h.nlmsg_len > size - off) {
      return invalid_argument("netlink: message at offset " + std::to_string(off) + " claims " +
                              std::to_string(h.nlmsg_len) + " bytes, " +
                              std::to_string(size - off) + " left");
    }
    if (out.size() >= max_messages) {
      return invalid_argument("netlink: more than " + std::to_string(max_messages) + " messages");
    }
    NlMessage m;
    m.type = h.nlmsg_type;
    m.flags = h.nlmsg_flags;
    m.seq = h.nlmsg_seq;
    m.pid = h.nlmsg_pid;
    m.payload.assign(data + off + sizeof h, data + off + h.nlmsg_len);
    out.push_back(std::move(m));
    off += align(h.nlmsg_len);
  }
  return out;
}

Result<std::vector<NlAttr>> parse_attrs(const std::vector<std::uint8_t>& payload, std::size_t skip,
                                        std::size_t max_attrs) {
  if (payload.size() < skip) {
    return invalid_argument("netlink: a payload of " + std::to_string(payload.size()) +
                            " bytes is shorter than its " + std::to_string(skip) + "-byte header");
  }
  const std::size_t start = std::min(align(skip), payload.size());
  return parse_attrs(payload.data() + start, payload.size() - start, max_attrs);
}

Result<std::vector<NlAttr>> parse_attrs(const std::uint8_t* data, std::size_t size,
                                        std::size_t max_attrs) {
  std::vector<NlAttr> out;
  std::size_t off = 0;
  while (off + sizeof(rtattr) <= size) {
    rtattr a{};
    std::memcpy(&a, data + off, sizeof a);
    if (a.rta_len < sizeof a || a.rta_len > size - off) {
      return invalid_argument("netlink: attribute at offset " + std::to_string(off) + " claims " +
                              std::to_string(a.rta_len) + " bytes, " + std::to_string(size - off) +
                              " left");
    }
    if (out.size() >= max_attrs) {
      return invalid_argument("netlink: more than " + std::to_string(max_attrs) + " attributes");
    }
    out.push_back({static_cast<std::uint16_t>(a.rta_type & NLA_TYPE_MASK), data + off + sizeof a,
                   a.rta_len - sizeof a});
    off += align(a.rta_len);
  }
  return out;
}

NlBuilder::NlBuilder(std::uint16_t type, std::uint16_t flags, std::uint32_t seq) {
  nlmsghdr h{};
  h.nlmsg_type = type;
  h.nlmsg_flags = flags;
  h.nlmsg_seq = seq;
  append(&h, sizeof h);
}

void NlBuilder::attr(std::uint16_t type, const void* data, std::size_t size) {
  rtattr a{};
  a.rta_type = type;
  a.rta_len = static_cast<unsigned short>(RTA_LENGTH(size));
  append(&a, sizeof a);
  append(data, size);
}

void NlBuilder::attr_ip(std::uint16_t type, const model::IpAddress& ip) {
  if (ip.is_v4()) {
    const std::uint32_t be = htonl(ip.v4_host_order());
    attr(type, &be, 4);
  } else {
    const auto b = ip.bytes();
    attr(type, b.data(), b.size());
  }
}

void NlBuilder::nest_begin(std::uint16_t type) {
  nests_.push_back(buf_.size());
  rtattr a{};
  a.rta_type = static_cast<unsigned short>(type | NLA_F_NESTED);
  append(&a, sizeof a);
}

void NlBuilder::nest_end() {
  const std::size_t start = nests_.back();
  nests_.pop_back();
  const auto len = static_cast<unsigned short>(buf_.size() - start);
  std::memcpy(buf_.data() + start, &len, sizeof len);  // rta_len comes first
}

std::vector<std::uint8_t> NlBuilder::finish() {
  auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
  h->nlmsg_len = static_cast<std::uint32_t>(buf_.size());
  return std::move(buf_);
}

void NlBuilder::append(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  if (buf_.capacity() < align(buf_.size() + n)) {
    // Grown by hand: the old buffer is wiped, not freed as it is (a WireGuard request carries
    // the private key).
    std::vector<std::uint8_t> grown;
    grown.reserve(std::max<std::size_t>({buf_.capacity() * 2, align(buf_.size() + n), 256}));
    grown.assign(buf_.begin(), buf_.end());
    if (!buf_.empty()) ::explicit_bzero(buf_.data(), buf_.size());  // data() may be null if empty
    buf_.swap(grown);
  }
  buf_.insert(buf_.end(), b, b + n);
  buf_.resize(align(buf_.size()), 0);
}

std::vector<std::uint8_t> encode_route(Op op, const Route& r, std::uint32_t seq) {
  NlBuilder b(op == Op::kDelete ? RTM_DELROUTE : RTM_NEWROUTE, flags_of(op), seq);
  rtmsg rt{};
  rt.rtm_family = r.dst.is_v4() ? AF_INET : AF_INET6;
  rt.rtm_dst_len = static_cast<unsigned char>(r.dst.length());
  rt.rtm_table = static_cast<unsigned char>(r.table < 256 ? r.table : 0u);  // RT_TABLE_UNSPEC
  rt.rtm_protocol = r.protocol;
  rt.rtm_scope = r.gateway || r.type != RTN_UNICAST ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
  rt.rtm_type = r.type;
  b.fixed(rt);
  b.attr_value<std::uint32_t>(RTA_TABLE, r.table);
  if (r.dst.length() > 0) b.attr_ip(RTA_DST, r.dst.network());
  if (r.oif) b.attr_value<std::uint32_t>(RTA_OIF, r.oif);
  if (r.gateway) b.attr_ip(RTA_GATEWAY, *r.gateway);
  if (r.metric) b.attr_value<std::uint32_t>(RTA_PRIORITY, r.metric);
  return b.finish();
}

std::vector<std::uint8_t> encode_rule(Op op, const Rule& r, std::uint32_t seq) {
  NlBuilder b(op == Op::kDelete ? RTM_DELRULE : RTM_NEWRULE, flags_of(op), seq);
  fib_rule_hdr h{};
  h.family = r.ipv6 ? AF_INET6 : AF_INET;
  h.table = static_cast<std::uint8_t>(r.table < 256 ? r.table : 0u);  // RT_TABLE_UNSPEC
  h.action = FR_ACT_TO_TBL;
  if (r.dst) h.dst_len = static_cast<std::uint8_t>(r.dst->length());
  if (r.src) h.src_len = static_cast<std::uint8_t>(r.src->length());
  b.fixed(h);
  if (r.dst && r.dst->length() > 0) b.attr_ip(FRA_DST, r.dst->network());
  if (r.src && r.src->length() > 0) b.attr_ip(FRA_SRC, r.src->network());
  b.attr_value<std::uint32_t>(FRA_PRIORITY, r.priority);
  b.attr_value<std::uint32_t>(FRA_TABLE, r.table);
  b.attr_value<std::uint8_t>(FRA_PROTOCOL, r.protocol);
  if (r.fwmark) b.attr_value<std::uint32_t>(FRA_FWMARK, *r.fwmark);
  if (r.fwmask) b.attr_value<std::uint32_t>(FRA_FWMASK, *r.fwmask);
  if (r.ip_proto) b.attr_value<std::uint8_t>(FRA_IP_PROTO, *r.ip_proto);
  if (r.dport) {
    const fib_rule_port_range range{r.dport->first, r.dport->second};
    b.attr(FRA_DPORT_RANGE, &range, sizeof range);
  }
  if (r.sport) {
    const fib_rule_port_range range{r.sport->first, r.sport->second};
    b.attr(FRA_SPORT_RANGE, &range, sizeof range);
  }
  if (r.dscp) b.attr_value<std::uint8_t>(kFraDscp, *r.dscp);
  return b.finish();
}

std::vector<std::uint8_t> encode_dump(std::uint16_t type, bool ipv6, std::uint32_t seq) {
  NlBuilder b(type, NLM_F_REQUEST | NLM_F_DUMP, seq);
  if (type == RTM_GETRULE) {
    fib_rule_hdr h{};
    h.family = ipv6 ? AF_INET6 : AF_INET;
    b.fixed(h);
  } else {
    rtmsg rt{};
    rt.rtm_family = ipv6 ? AF_INET6 : AF_INET;
    b.fixed(rt);
  }
  return b.finish();
}

std::vector<std::uint8_t> encode_address(Op op, int ifindex, const model::IpAddress& address,
                                         int length, std::uint32_t seq) {
  const std::uint16_t type = op == Op::kDelete ? RTM_DELADDR : RTM_NEWADDR;
  NlBuilder b(type, flags_of(op), seq);
  ifaddrmsg m{};
  m.ifa_family = address.is_v4() ? AF_INET : AF_INET6;
  m.ifa_prefixlen = static_cast<std::uint8_t>(length);
  m.ifa_index = static_cast<std::uint32_t>(ifindex);
  m.ifa_scope = RT_SCOPE_UNIVERSE;
  b.fixed(m);
  b.attr_ip(IFA_LOCAL, address);
  b.attr_ip(IFA_ADDRESS, address);
  return b.finish();
}

std::vector<std::uint8_t> encode_link_state(int ifindex, bool up, std::uint32_t mtu,
                                            std::uint32_t seq) {
  NlBuilder b(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
  ifinfomsg m{};
  m.ifi_family = AF_UNSPEC;
  m.ifi_index = ifindex;
  m.ifi_flags = up ? IFF_UP : 0;
  m.ifi_change = IFF_UP;
  b.fixed(m);
  if (mtu != 0) b.attr_value<std::uint32_t>(IFLA_MTU, mtu);
  return b.finish();
}

std::vector<std::uint8_t> encode_link_delete(int ifindex, std::uint32_t seq) {
  NlBuilder b(RTM_DELLINK, NLM_F_REQUEST | NLM_F_ACK, seq);
  ifinfomsg m{};
  m.ifi_family = AF_UNSPEC;
  m.ifi_index = ifindex;
  b.fixed(m);
  return b.finish();
}

namespace {
// RTM_NEWLINK for a new link of `kind`, left inside IFLA_LINKINFO for the kind's data.
NlBuilder link_create(const std::string& name, const std::string& kind, std::uint32_t seq) {
  NlBuilder b(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq);
  ifinfomsg m{};
  m.ifi_family = AF_UNSPEC;
  b.fixed(m);
  b.attr(IFLA_IFNAME, name.c_str(), name.size() + 1);
  b.nest_begin(IFLA_LINKINFO);
  b.attr(IFLA_INFO_KIND, kind.c_str(), kind.size() + 1);
  return b;
}
}  // namespace

std::vector<std::uint8_t> encode_link_create(const std::string& name, const std::string& kind,
                                             std::uint32_t seq) {
  NlBuilder b = link_create(name, kind, seq);
  b.nest_end();
  return b.finish();
}

std::vector<std::uint8_t> encode_xfrm_link_create(const std::string& name, std::uint32_t if_id,
                                                  std::uint32_t underlay_ifindex,
                                                  std::uint32_t seq) {
  constexpr std::uint16_t kXfrmLink = 1, kXfrmIfId = 2;  // IFLA_XFRM_LINK, IFLA_XFRM_IF_ID
  NlBuilder b = link_create(name, "xfrm", seq);
  b.nest_begin(IFLA_INFO_DATA);
  if (underlay_ifindex != 0) b.attr_value<std::uint32_t>(kXfrmLink, underlay_ifindex);
  b.attr_value<std::uint32_t>(kXfrmIfId, if_id);
  b.nest_end();
  b.nest_end();
  return b.finish();
}

Result<Route> decode_route(const NlMessage& m) {
  if (m.type != RTM_NEWROUTE) return invalid_argument("netlink: not a route message");
  if (m.payload.size() < sizeof(rtmsg)) return invalid_argument("netlink: short route message");
  rtmsg rt{};
  std::memcpy(&rt, m.payload.data(), sizeof rt);
  const bool v6 = rt.rtm_family == AF_INET6;
  if (!v6 && rt.rtm_family != AF_INET) return invalid_argument("netlink: route family");
  if (rt.rtm_dst_len > (v6 ? 128 : 32)) return invalid_argument("netlink: route prefix length");
  auto attrs = parse_attrs(m.payload, sizeof rt);
  if (!attrs.is_ok()) return attrs.status();
  Route r;
  r.table = rt.rtm_table;
  r.protocol = rt.rtm_protocol;
  r.type = rt.rtm_type;
  model::IpAddress dst = v6 ? model::IpAddress::v6({}) : model::IpAddress::v4(0);
  for (const auto& a : attrs.value()) {
    switch (a.type) {
      case RTA_TABLE:
        if (!read_value(a, &r.table)) return invalid_argument("netlink: RTA_TABLE size");
        break;
      case RTA_DST: {
        auto ip = read_ip(a, v6);
        if (!ip.is_ok()) return ip.status();
        dst = ip.value();
        break;
      }
      case RTA_OIF:
        if (!read_value(a, &r.oif)) return invalid_argument("netlink: RTA_OIF size");
        break;
      case RTA_GATEWAY: {
        auto ip = read_ip(a, v6);
        if (!ip.is_ok()) return ip.status();
        r.gateway = ip.value();
        break;
      }
      case RTA_PRIORITY:
        if (!read_value(a, &r.metric)) return invalid_argument("netlink: RTA_PRIORITY size");
        break;
      default:
        break;
    }
  }
  r.dst = model::IpPrefix(dst, rt.rtm_dst_len);
  if (r.type != RTN_UNICAST) r.oif = 0;  // IPv6 reject routes come back on the loopback device
  return r;
}

Result<Rule> decode_rule(const NlMessage& m) {
  if (m.type != RTM_NEWRULE) return invalid_argument("netlink: not a rule message");
  if (m.payload.size() < sizeof(fib_rule_hdr)) return invalid_argument("netlink: short rule");
  fib_rule_hdr h{};
  std::memcpy(&h, m.payload.data(), sizeof h);
  auto attrs = parse_attrs(m.payload, sizeof h);
  if (!attrs.is_ok()) return attrs.status();
  Rule r;
  r.ipv6 = h.family == AF_INET6;
  if (!r.ipv6 && h.family != AF_INET) return invalid_argument("netlink: rule family");
  if (h.dst_len > (r.ipv6 ? 128 : 32) || h.src_len > (r.ipv6 ? 128 : 32)) {
    return invalid_argument("netlink: rule prefix length");
  }
  r.table = h.table;
  r.protocol = 0;
  for (const auto& a : attrs.value()) {
    std::uint32_t u32 = 0;
    std::uint8_t u8 = 0;
    switch (a.type) {
      case FRA_PRIORITY:
        if (!read_value(a, &r.priority)) return invalid_argument("netlink: FRA_PRIORITY size");
        break;
      case FRA_TABLE:
        if (!read_value(a, &r.table)) return invalid_argument("netlink: FRA_TABLE size");
        break;
      case FRA_PROTOCOL:
        if (!read_value(a, &r.protocol)) return invalid_argument("netlink: FRA_PROTOCOL size");
        break;
      case FRA_FWMARK:
        if (!read_value(a, &u32)) return invalid_argument("netlink: FRA_FWMARK size");
        r.fwmark = u32;
        break;
      case FRA_FWMASK:
        if (!read_value(a, &u32)) return invalid_argument("netlink: FRA_FWMASK size");
        r.fwmask = u32;
        break;
      case FRA_IP_PROTO:
        if (!read_value(a, &u8)) return invalid_argument("netlink: FRA_IP_PROTO size");
        r.ip_proto = u8;
        break;
      case kFraDscp:
        if (!read_value(a, &u8) || u8 > 63) return invalid_argument("netlink: FRA_DSCP");
        r.dscp = u8;
        break;
      case FRA_DPORT_RANGE:
      case FRA_SPORT_RANGE: {
        fib_rule_port_range range{};
        if (!read_value(a, &range)) return invalid_argument("netlink: port range size");
        (a.type == FRA_DPORT_RANGE ? r.dport : r.sport) = std::make_pair(range.start, range.end);
        break;
      }
      case FRA_DST:
      case FRA_SRC: {
        auto ip = read_ip(a, r.ipv6);
        if (!ip.is_ok()) return ip.status();
        if (a.type == FRA_DST) {
          r.dst = model::IpPrefix(ip.value(), h.dst_len);
        } else {
          r.src = model::IpPrefix(ip.value(), h.src_len);
        }
        break;
      }
      default:
        break;
    }
  }
  return r;
}

Status decode_ack(const NlMessage& m) {
  if (m.type != NLMSG_ERROR) return invalid_argument("netlink: expected an acknowledgement");
  if (m.payload.size() < sizeof(nlmsgerr)) return invalid_argument("netlink: short error");
  nlmsgerr e{};
  std::memcpy(&e, m.payload.data(), sizeof e);
  if (e.error == 0) return Status::ok();
  std::string why;
  if (m.flags & NLM_F_ACK_TLVS) {  // extended ack; the request is not echoed (NETLINK_CAP_ACK)
    auto tlvs = parse_attrs(m.payload, sizeof e, 16);
    if (tlvs.is_ok()) {
      for (const auto& a : tlvs.value()) {
        if (a.type != NLMSGERR_ATTR_MSG || a.size == 0) continue;
        const char* text = reinterpret_cast<const char*>(a.data);
        why = " (" + std::string(text, strnlen(text, a.size)) + ")";
      }
    }
  }
  return unavailable("the kernel refused request " + std::to_string(e.msg.nlmsg_seq) + ": " +
                     std::strerror(-e.error) + why);
}

// ---- the socket ----------------------------------------------------------------------------

Result<Rtnl> Rtnl::open() {
  return open_protocol(NETLINK_ROUTE);
}

Result<Rtnl> Rtnl::open_generic() {
  return open_protocol(NETLINK_GENERIC);
}

Result<Rtnl> Rtnl::open_protocol(int protocol) {
  const int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return errno_status("netlink socket", errno);
  Rtnl r(fd);
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    return errno_status("netlink bind", errno);
  }
  const int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
  timeval tv{};
  tv.tv_sec = 2;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return r;
}

Result<Rtnl> Rtnl::open_in_netns(const std::string& path) {
  const int ns = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (ns < 0) return errno_status(path, errno);
  // A thread of its own enters the namespace; the socket stays in it after the thread ends.
  Result<Rtnl> out = unavailable("not opened");
  std::thread t([&] {
    if (setns(ns, CLONE_NEWNET) != 0) {
      out = errno_status("setns " + path, errno);
      return;
    }
    out = open();
  });
  t.join();
  ::close(ns);
  return out;
}

Rtnl::Rtnl(Rtnl&& o) noexcept : fd_(o.fd_), seq_(o.seq_) {
  o.fd_ = -1;
}

Rtnl& Rtnl::operator=(Rtnl&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.fd_;
    seq_ = o.seq_;
    o.fd_ = -1;
  }
  return *this;
}

Rtnl::~Rtnl() {
  if (fd_ >= 0) ::close(fd_);
}

Status Rtnl::send(const std::vector<std::uint8_t>& bytes) {
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  const ssize_t n = sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
                           sizeof kernel);
  if (n != static_cast<ssize_t>(bytes.size())) return errno_status("netlink send", errno);
  return Status::ok();
}

Status Rtnl::await_acks(std::uint32_t first, std::uint32_t last) {
  std::vector<std::uint8_t> buf(1 << 16);
  Status first_error = Status::ok();
  std::uint32_t acked = 0;
  const std::uint32_t want = last - first + 1;
  while (acked < want) {
    const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return errno_status("netlink receive", errno);
    auto msgs = split_messages(buf.data(), static_cast<std::size_t>(n));
    if (!msgs.is_ok()) return msgs.status();
    for (const auto& m : msgs.value()) {
      if (m.seq < first || m.seq > last || m.type != NLMSG_ERROR) continue;
      ++acked;
      const Status st = decode_ack(m);
      if (!st.is_ok() && first_error.is_ok()) first_error = st;
    }
  }
  return first_error;
}

Status Rtnl::batch(const std::vector<std::vector<std::uint8_t>>& requests) {
  if (requests.empty()) return Status::ok();
  std::vector<std::uint8_t> all;
  std::uint32_t first = 0, last = 0;
  for (std::size_t i = 0; i < requests.size(); ++i) {
    std::vector<std::uint8_t> r = requests[i];
    auto* h = reinterpret_cast<nlmsghdr*>(r.data());
    h->nlmsg_seq = next_seq();
    if (i == 0) first = h->nlmsg_seq;
    last = h->nlmsg_seq;
    all.insert(all.end(), r.begin(), r.end());
  }
  if (auto st = send(all); !st.is_ok()) return st;
  return await_acks(first, last);
}

Status Rtnl::route(Op op, const Route& r) {
  return batch({encode_route(op, r, 0)});
}

Status Rtnl::rule(Op op, const Rule& r) {
  return batch({encode_rule(op, r, 0)});
}

Status Rtnl::address(Op op, int ifindex, const model::IpAddress& address, int length) {
  return batch({encode_address(op, ifindex, address, length, 0)});
}

Status Rtnl::link_state(int ifindex, bool up, std::uint32_t mtu) {
  return batch({encode_link_state(ifindex, up, mtu, 0)});
}

Status Rtnl::delete_link(int ifindex) {
  return batch({encode_link_delete(ifindex, 0)});
}

Status Rtnl::create_link(const std::string& name, const std::string& kind) {
  return batch({encode_link_create(name, kind, 0)});
}

Status Rtnl::create_xfrm_link(const std::string& name, std::uint32_t if_id,
                              std::uint32_t underlay_ifindex) {
  return batch({encode_xfrm_link_create(name, if_id, underlay_ifindex, 0)});
}

Result<std::vector<NlMessage>> Rtnl::dump(const std::vector<std::uint8_t>& request,
                                          std::uint32_t seq) {
  if (auto st = send(request); !st.is_ok()) return st;
  return collect(seq, true);
}

Result<std::vector<NlMessage>> Rtnl::request(const std::vector<std::uint8_t>& request,
                                             std::uint32_t seq) {
  if (auto st = send(request); !st.is_ok()) return st;
  return collect(seq, false);
}

Result<std::vector<NlMessage>> Rtnl::collect(std::uint32_t seq, bool dump) {
  const std::size_t max = dump ? (1u << 20) : 1024;
  std::vector<NlMessage> out;
  std::vector<std::uint8_t> buf(1 << 16);
  // The kernel's answers may hold a secret (a WireGuard device's private key): the receive buffer
  // is wiped however this returns.
  struct Wiped {
    std::vector<std::uint8_t>& b;
    ~Wiped() { ::explicit_bzero(b.data(), b.size()); }
  } wiped{buf};
  for (;;) {
    const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return errno_status("netlink receive", errno);
    auto msgs = split_messages(buf.data(), static_cast<std::size_t>(n));
    if (!msgs.is_ok()) return msgs.status();
    for (auto& m : msgs.value()) {
      if (m.seq != seq) continue;
      if (dump && m.type == NLMSG_DONE) {
        // Generic netlink dumps (wireguard's among them) end with DONE carrying an errno.
        std::int32_t err = 0;
        if (m.payload.size() >= sizeof err) std::memcpy(&err, m.payload.data(), sizeof err);
        if (err < 0) {
          return unavailable("the kernel ended the dump with an error: " +
                             std::string(std::strerror(-err)));
        }
        return out;
      }
      if (m.type == NLMSG_ERROR) {
        // An error ends either; an acknowledgement ends a request (a dump's is not the end).
        const Status st = decode_ack(m);
        if (!st.is_ok()) return st;
        if (!dump) return out;
        continue;
      }
      if (out.size() >= max) {
        return resource_exhausted("netlink: over " + std::to_string(max) + " answers");
      }
      out.push_back(std::move(m));
    }
  }
}

namespace {

// Every message of a dump decoded; the first undecodable one fails the whole dump.
template <typename T, typename Decode, typename Keep>
Result<std::vector<T>> decode_all(const std::vector<NlMessage>& msgs, Decode decode, Keep keep) {
  std::vector<T> out;
  for (const auto& m : msgs) {
    auto r = decode(m);
    if (!r.is_ok()) return r.status();
    if (keep(r.value())) out.push_back(std::move(r).value());
  }
  return out;
}

}  // namespace

Result<std::vector<Route>> Rtnl::routes(bool ipv6, std::uint32_t table) {
  const std::uint32_t seq = next_seq();
  auto msgs = dump(encode_dump(RTM_GETROUTE, ipv6, seq), seq);
  if (!msgs.is_ok()) return msgs.status();
  return decode_all<Route>(msgs.value(), decode_route,
                           [&](const Route& r) { return table == 0 || r.table == table; });
}

Result<std::vector<Rule>> Rtnl::rules(bool ipv6) {
  const std::uint32_t seq = next_seq();
  auto msgs = dump(encode_dump(RTM_GETRULE, ipv6, seq), seq);
  if (!msgs.is_ok()) return msgs.status();
  return decode_all<Rule>(msgs.value(), decode_rule, [](const Rule&) { return true; });
}

}  // namespace patronus::linuxnet
