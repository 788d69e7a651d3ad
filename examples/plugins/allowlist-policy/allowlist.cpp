// acme-allowlist: a policy plugin whose document is an allow list, one rule per line:
//
//   # comment
//   allow tcp 10.20.0.0/16 443
//   allow udp 0.0.0.0/0 53-54
//   allow any fd00::/8 *
//
// A flow is allowed when a rule matches its protocol, its destination address and destination
// port; everything else is denied. A document with any bad line is refused whole (the error names
// the line) and the previous list stays in force.
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "patronus/sdk/addr.hpp"
#include "patronus/sdk/plugin.hpp"

namespace {

using patronus::sdk::Error;

constexpr std::size_t kMaxRules = 100000;

struct Rule {
  int protocol = -1;  // -1: any
  patronus_addr prefix{};
  unsigned length = 0;
  unsigned lo = 0, hi = 65535;
};

bool in_prefix(const patronus_addr& a, const Rule& r) {
  if (a.family != r.prefix.family) return false;
  for (unsigned bit = 0; bit < r.length; ++bit) {
    const unsigned byte = bit / 8, mask = 0x80u >> (bit % 8);
    if ((a.bytes[byte] & mask) != (r.prefix.bytes[byte] & mask)) return false;
  }
  return true;
}

bool parse_uint(const std::string& s, unsigned max, unsigned* out) {
  if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *out = static_cast<unsigned>(std::strtoul(s.c_str(), nullptr, 10));
  return *out <= max;
}

Rule parse_rule(const std::string& line, std::size_t number) {
  std::istringstream in(line);
  std::string verb, proto, prefix, ports, extra;
  in >> verb >> proto >> prefix >> ports >> extra;
  const std::string where = "line " + std::to_string(number) + ": ";
  if (verb != "allow" || ports.empty() || !extra.empty()) {
    throw Error(where + "expected 'allow PROTOCOL PREFIX PORTS'");
  }
  Rule r;
  if (proto == "tcp") {
    r.protocol = 6;
  } else if (proto == "udp") {
    r.protocol = 17;
  } else if (proto == "sctp") {
    r.protocol = 132;
  } else if (proto != "any") {
    throw Error(where + "protocol '" + proto + "' is not tcp, udp, sctp or any");
  }
  const auto slash = prefix.find('/');
  auto ip = patronus::sdk::parse_ip(prefix.substr(0, slash));
  const unsigned max_len = ip && ip->family == PATRONUS_AF_INET6 ? 128 : 32;
  if (!ip || slash == std::string::npos ||
      !parse_uint(prefix.substr(slash + 1), max_len, &r.length)) {
    throw Error(where + "'" + prefix + "' is not an address/length prefix");
  }
  r.prefix = *ip;
  if (ports != "*") {
    const auto dash = ports.find('-');
    const bool ok = dash == std::string::npos
                        ? parse_uint(ports, 65535, &r.lo) && parse_uint(ports, 65535, &r.hi)
                        : parse_uint(ports.substr(0, dash), 65535, &r.lo) &&
                              parse_uint(ports.substr(dash + 1), 65535, &r.hi);
    if (!ok || r.lo > r.hi) throw Error(where + "'" + ports + "' is not a port or range");
  }
  return r;
}

class Allowlist final : public patronus::sdk::PolicyPlugin {
 public:
  using PolicyPlugin::PolicyPlugin;

  void load(const char* document, std::size_t size) override {
    std::vector<Rule> rules;
    std::istringstream in(std::string(document, size));
    std::string line;
    for (std::size_t number = 1; std::getline(in, line); ++number) {
      const auto start = line.find_first_not_of(" \t\r");
      if (start == std::string::npos || line[start] == '#') continue;
      if (rules.size() >= kMaxRules) throw Error("more than 100000 rules");
      rules.push_back(parse_rule(line, number));
    }
    rules_ = std::move(rules);  // only a whole, valid document replaces the list
  }

  std::uint32_t evaluate(const patronus_flow_tuple& f) override {
    for (const auto& r : rules_) {
      if ((r.protocol < 0 || r.protocol == f.protocol) && in_prefix(f.dst, r) &&
          f.dst.port >= r.lo && f.dst.port <= r.hi) {
        return PATRONUS_VERDICT_ALLOW;
      }
    }
    return PATRONUS_VERDICT_DENY;
  }

 private:
  std::vector<Rule> rules_;
};

}  // namespace

PATRONUS_SDK_PLUGIN(Allowlist, "acme-allowlist", "1.0.0", nullptr, nullptr, 0)
