// rtnetlink, spoken directly (never by running `ip`): the routes and policy rules the Linux
// Dataplane installs. Messages are built and parsed here; parsing is defensive (every length is
// checked against what is left, every count is bounded) because a dump can be large and this is
// the kernel's answer, not ours.
//
// Everything Patronus installs carries its protocol number (kRtprotPatronus, for routes and
// rules), so a restart can find and reconcile its own state and a clean stop removes exactly it.
//
// The socket is synchronous: the kernel handles a NETLINK_ROUTE request inside sendmsg(), so the
// acknowledgement is queued when send returns; a receive timeout only guards against a kernel
// that does not answer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "patronus/model/address.hpp"
#include "patronus/util/status.hpp"

namespace patronus::linuxnet {

// Values >= RTPROT_STATIC (4) are not interpreted by the kernel; 0x50 ('P') is not taken by any
// routing daemon in rtnetlink.h or /etc/iproute2/rt_protos.
inline constexpr std::uint8_t kRtprotPatronus = 0x50;

// One message of a netlink stream: its header fields and payload (after the 16-byte header).
struct NlMessage {
  std::uint16_t type = 0, flags = 0;
  std::uint32_t seq = 0, pid = 0;
  std::vector<std::uint8_t> payload;
};

// Splits a buffer into messages; refuses truncated or inconsistent lengths. At most max_messages.
Result<std::vector<NlMessage>> split_messages(const std::uint8_t* data, std::size_t size,
                                              std::size_t max_messages = 1 << 16);

struct NlAttr {
  std::uint16_t type = 0;  // NLA_TYPE_MASK applied
  const std::uint8_t* data = nullptr;
  std::size_t size = 0;
};
// The attributes after a fixed header of `skip` bytes.
Result<std::vector<NlAttr>> parse_attrs(const std::vector<std::uint8_t>& payload, std::size_t skip,
                                        std::size_t max_attrs = 4096);
// The attributes in [data, data + size) (a nested attribute's payload); every length checked
// against what is left.
Result<std::vector<NlAttr>> parse_attrs(const std::uint8_t* data, std::size_t size,
                                        std::size_t max_attrs = 4096);

// Builds one request: header, fixed family header, attributes (nested ones too).
class NlBuilder {
 public:
  NlBuilder(std::uint16_t type, std::uint16_t flags, std::uint32_t seq);
  template <typename T>
  void fixed(const T& t) {
    append(&t, sizeof t);
  }
  void attr(std::uint16_t type, const void* data, std::size_t size);
  template <typename T>
  void attr_value(std::uint16_t type, T v) {
    attr(type, &v, sizeof v);
  }
  void attr_ip(std::uint16_t type, const model::IpAddress& ip);
  // A nested attribute (NLA_F_NESTED set): what is added until nest_end() is inside it.
  void nest_begin(std::uint16_t type);
  void nest_end();
  std::size_t size() const { return buf_.size(); }
  std::vector<std::uint8_t> finish();

 private:
  void append(const void* p, std::size_t n);
  std::vector<std::uint8_t> buf_;
  std::vector<std::size_t> nests_;
};

struct Route {
  std::uint32_t table = 0;
  model::IpPrefix dst;
  std::uint32_t oif = 0;  // output interface index
  std::optional<model::IpAddress> gateway;
  std::uint32_t metric = 0;
  std::uint8_t protocol = kRtprotPatronus;
  std::uint8_t type = 1;  // RTN_UNICAST; 7 RTN_UNREACHABLE (no oif, no gateway)
  friend bool operator==(const Route& a, const Route& b) {
    return a.table == b.table && a.dst == b.dst && a.oif == b.oif && a.gateway == b.gateway &&
           a.metric == b.metric && a.protocol == b.protocol && a.type == b.type;
  }
  // A host route (/32 or /128) to `ip` out of an interface, in the main table unless told: how a
  // transport sends a peer's overlay address through that peer's own tunnel.
  static Route to_host(const model::IpAddress& ip, std::uint32_t ifindex,
                       std::uint32_t table = 254) {
    Route r;
    r.table = table;
    r.dst = model::IpPrefix(ip, ip.is_v4() ? 32 : 128);
    r.oif = ifindex;
    return r;
  }
};

struct Rule {
  bool ipv6 = false;
  std::uint32_t priority = 0;
  std::uint32_t table = 0;
  std::optional<std::uint32_t> fwmark, fwmask;
  std::optional<model::IpPrefix> dst, src;                              // of the rule's family
  std::optional<std::uint8_t> ip_proto;                                 // 6 tcp, 17 udp
  std::optional<std::pair<std::uint16_t, std::uint16_t>> dport, sport;  // inclusive ranges
  // DSCP (0..63) as FRA_DSCP (attribute 25, kernels 6.13 and later; Debian 12's headers predate
  // it). An IPv4 rule's legacy TOS field takes only the four TOS bits ("Invalid tos" for EF), so
  // on older kernels classes by DSCP are marked at LAN ingress and matched by fwmark instead.
  std::optional<std::uint8_t> dscp;
  std::uint8_t protocol = kRtprotPatronus;
  friend bool operator==(const Rule& a, const Rule& b) {
    return a.ipv6 == b.ipv6 && a.priority == b.priority && a.table == b.table &&
           a.fwmark == b.fwmark && a.fwmask == b.fwmask && a.dst == b.dst && a.src == b.src &&
           a.ip_proto == b.ip_proto && a.dport == b.dport && a.sport == b.sport &&
           a.dscp == b.dscp && a.protocol == b.protocol;
  }
};

enum class Op { kAdd, kReplace, kDelete };

// Requests (with NLM_F_ACK), sequence number `seq`.
std::vector<std::uint8_t> encode_route(Op op, const Route& r, std::uint32_t seq);
std::vector<std::uint8_t> encode_rule(Op op, const Rule& r, std::uint32_t seq);
std::vector<std::uint8_t> encode_dump(std::uint16_t type, bool ipv6, std::uint32_t seq);

// Interfaces: an address (host bits kept) with its prefix length on a link (replace: idempotent), a
// link's up/down state and MTU (mtu 0: unchanged), and deleting a link.
std::vector<std::uint8_t> encode_address(Op op, int ifindex, const model::IpAddress& address,
                                         int length, std::uint32_t seq);
std::vector<std::uint8_t> encode_link_state(int ifindex, bool up, std::uint32_t mtu,
                                            std::uint32_t seq);
std::vector<std::uint8_t> encode_link_delete(int ifindex, std::uint32_t seq);
// A new link of a kind (IFLA_INFO_KIND, e.g. "wireguard"); it must not exist yet.
std::vector<std::uint8_t> encode_link_create(const std::string& name, const std::string& kind,
                                             std::uint32_t seq);
// A route-based IPsec interface (IFLA_INFO_KIND "xfrm", IFLA_XFRM_IF_ID): SAs and policies with
// the same if_id send and receive through it. `underlay_ifindex` 0: none (Linux >= 5.x allows it).
std::vector<std::uint8_t> encode_xfrm_link_create(const std::string& name, std::uint32_t if_id,
                                                  std::uint32_t underlay_ifindex,
                                                  std::uint32_t seq);

Result<Route> decode_route(const NlMessage& m);
Result<Rule> decode_rule(const NlMessage& m);
// NLMSG_ERROR: OK for an acknowledgement, else the kernel's error (errno named, with the
// kernel's own message when it sent one).
Status decode_ack(const NlMessage& m);

class Rtnl {
 public:
  static Result<Rtnl> open();
  // The same synchronous socket on generic netlink (NETLINK_GENERIC): families such as
  // "wireguard" answer inside sendmsg() too, and a dump's later parts are produced as it is read.
  static Result<Rtnl> open_generic();
  // A socket in the network namespace at `path` (e.g. /var/run/netns/NAME); the calling thread
  // stays where it is.
  static Result<Rtnl> open_in_netns(const std::string& path);
  Rtnl(Rtnl&& o) noexcept;
  Rtnl& operator=(Rtnl&& o) noexcept;
  Rtnl(const Rtnl&) = delete;
  Rtnl& operator=(const Rtnl&) = delete;
  ~Rtnl();

  Status route(Op op, const Route& r);
  Status rule(Op op, const Rule& r);
  Status address(Op op, int ifindex, const model::IpAddress& address, int length);
  Status link_state(int ifindex, bool up, std::uint32_t mtu);
  Status delete_link(int ifindex);
  Status create_link(const std::string& name, const std::string& kind);
  Status create_xfrm_link(const std::string& name, std::uint32_t if_id,
                          std::uint32_t underlay_ifindex);
  // Routes of `table` (every table for 0) of one family; rules of one family.
  Result<std::vector<Route>> routes(bool ipv6, std::uint32_t table);
  Result<std::vector<Rule>> rules(bool ipv6);
  // Several requests in one send; the first failure is returned (the kernel stops at none: each
  // request is acknowledged on its own).
  Status batch(const std::vector<std::vector<std::uint8_t>>& requests);
  std::uint32_t next_seq() { return ++seq_; }
  // Sends a dump request (its sequence `seq`) and returns every message of the answer up to
  // NLMSG_DONE; an error acknowledgement, or a DONE carrying an error, is that error.
  Result<std::vector<NlMessage>> dump(const std::vector<std::uint8_t>& request, std::uint32_t seq);
  // Sends one request with NLM_F_ACK (sequence `seq`) and returns the messages answering it
  // before its acknowledgement; an error acknowledgement is that error.
  Result<std::vector<NlMessage>> request(const std::vector<std::uint8_t>& request,
                                         std::uint32_t seq);

 private:
  static Result<Rtnl> open_protocol(int protocol);
  // The answers to `seq`: a dump's until DONE, a request's until its acknowledgement.
  Result<std::vector<NlMessage>> collect(std::uint32_t seq, bool dump);
  explicit Rtnl(int fd) : fd_(fd) {}
  Status send(const std::vector<std::uint8_t>& bytes);
  // Reads until every sequence in [first, last] is acknowledged, or a dump ends.
  Status await_acks(std::uint32_t first, std::uint32_t last);

  int fd_ = -1;
  std::uint32_t seq_ = 0;
};

}  // namespace patronus::linuxnet
