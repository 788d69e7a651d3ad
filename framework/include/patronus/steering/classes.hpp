// Traffic classes and the rules that put a flow into one. A class has a priority, the scorer
// instance that judges paths for it, its thresholds (SLA), hysteresis, hold-down and whether its
// flows are balanced across near-equal paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "patronus/model/address.hpp"
#include "patronus/model/types.hpp"
#include "patronus/util/status.hpp"

namespace YAML {
class Node;
}

namespace patronus::steering {

struct ClassSpec {
  std::string name;  // [a-z0-9-], unique
  model::Priority priority = model::Priority::kNormal;
  std::string scorer;  // scorer plugin instance; "" = the runtime's default scorer
  // Thresholds a path must meet to carry the class.
  double min_score = 0;
  std::optional<double> max_loss_pct, max_latency_ms, max_jitter_ms;
  double hysteresis = 10;                      // score points (see docs/adr/0008-site-runtime.md)
  std::int64_t hold_down_ns = 10'000'000'000;  // a recovered path must stay good this long
  bool balance = false;                        // spread flows over near-equal paths
  double balance_margin = 10;                  // "near-equal": within this many points of the best
};

struct PortRange {
  std::uint16_t first = 0, last = 65535;
  bool contains(std::uint16_t p) const { return p >= first && p <= last; }
};

// A classification rule: every given field must match. Rules are tried in order.
struct ClassRule {
  std::string class_name;
  std::optional<std::uint8_t> protocol;  // IANA number
  std::optional<PortRange> dst_ports, src_ports;
  std::optional<std::uint8_t> dscp;  // 0..63
  std::vector<model::IpPrefix> dst_prefixes, src_prefixes;
};

struct ClassSet {
  std::vector<ClassSpec> classes;
  std::vector<ClassRule> rules;
  std::string default_class;  // flows that match no rule
};

// The default set: voice (critical: EF / RTP and SIP over UDP, E-model scorer when present),
// video (high: AF4x, WebRTC media), interactive (normal: SSH, RDP, DNS), bulk (low: CS1, FTP,
// rsync; balanced) and default (best-effort). `voice_scorer` names the scorer instance voice uses
// ("" = the default scorer).
ClassSet default_classes(const std::string& voice_scorer);

// Checks names, references and ranges; the error names the field ("classes[2].min_score").
Status validate(const ClassSet& set);

// The index of the class a flow falls into: the first rule that matches (every given field),
// else the default class (0 if the set names none).
int classify_index(const ClassSet& set, const model::FlowKey& key, std::uint8_t dscp);

// Parses the `classes:`/`rules:`/`default_class:` YAML of a daemon config or a scenario.
// An absent section keeps the defaults.
Result<ClassSet> parse_classes_yaml(const std::string& yaml_text, const std::string& voice_scorer);
// The same from a node of a larger document (the daemon's `runtime.classes:`): errors carry the
// document's line numbers; a null node is the default set.
Result<ClassSet> parse_classes(const YAML::Node& root, const std::string& voice_scorer);

}  // namespace patronus::steering
