#include "yaml_fields.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <cmath>
#include <sstream>

namespace patronus::yamlf {

std::string at(const YAML::Node& n) {
  const auto m = n.Mark();
  return m.line >= 0 ? "line " + std::to_string(m.line + 1) + ": " : "";
}

std::string join(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

Status check_keys(const YAML::Node& map, const std::set<std::string>& allowed,
                  const std::string& path) {
  std::set<std::string> seen;
  for (const auto& kv : map) {
    const std::string k = kv.first.IsScalar() ? kv.first.Scalar() : std::string("<non-scalar>");
    if (!seen.insert(k).second) {
      return invalid_argument(at(kv.first) + join(path, k) + ": given twice");
    }
    if (!allowed.count(k)) {
      std::string list;
      for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
      return invalid_argument(at(kv.first) + join(path, k) + ": unknown key (allowed: " + list +
                              ")");
    }
  }
  return Status::ok();
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    for (std::size_t k = 1; k <= n; ++k) {
      if (i + k >= s.size()) return false;
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values beyond Unicode are invalid.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

Result<std::string> string_field(const YAML::Node& map, const char* key, const std::string& path,
                                 bool required) {
  const YAML::Node n = map[key];
  const std::string p = join(path, key);
  if (!n) {
    if (required) return invalid_argument(at(map) + p + ": required");
    return std::string();
  }
  if (!n.IsScalar() || n.Scalar().empty()) {
    return invalid_argument(at(n) + p + ": expected a non-empty string");
  }
  if (!valid_utf8(n.Scalar())) return invalid_argument(at(n) + p + ": not valid UTF-8 text");
  return n.Scalar();
}

Result<double> number(const YAML::Node& n, const std::string& path, double min, double max) {
  double v = 0;
  if (!n.IsScalar() || !YAML::convert<double>::decode(n, v) || !std::isfinite(v) || v < min ||
      v > max) {
    return invalid_argument(at(n) + path + ": expected a number from " + std::to_string(min) +
                            " to " + std::to_string(max));
  }
  return v;
}

Result<std::int64_t> integer(const YAML::Node& n, const std::string& path, std::int64_t min,
                             std::int64_t max) {
  std::int64_t v = 0;
  if (!n.IsScalar() || !YAML::convert<std::int64_t>::decode(n, v) || v < min || v > max) {
    return invalid_argument(at(n) + path + ": expected an integer from " + std::to_string(min) +
                            " to " + std::to_string(max));
  }
  return v;
}

Result<bool> boolean(const YAML::Node& n, const std::string& path) {
  bool v = false;
  if (!n.IsScalar() || !YAML::convert<bool>::decode(n, v)) {
    return invalid_argument(at(n) + path + ": expected true or false");
  }
  return v;
}

namespace {

struct Limit : std::exception {};

class Counter : public YAML::EventHandler {
 public:
  Counter(std::size_t max_events, std::size_t max_aliases)
      : max_events_(max_events), max_aliases_(max_aliases) {}
  void OnDocumentStart(const YAML::Mark&) override { tick(); }
  void OnDocumentEnd() override { tick(); }
  void OnNull(const YAML::Mark&, YAML::anchor_t) override { tick(); }
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {
    tick();
    if (++aliases > max_aliases_) {
      exceeded = "aliases";
      throw Limit();
    }
  }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    tick();
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    tick();
  }
  void OnSequenceEnd() override { tick(); }
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    tick();
  }
  void OnMapEnd() override { tick(); }
  std::size_t events = 0, aliases = 0;
  const char* exceeded = "";

 private:
  void tick() {
    if (++events > max_events_) {
      exceeded = "events";
      throw Limit();
    }
  }
  std::size_t max_events_, max_aliases_;
};

}  // namespace

Status check_yaml_stream(const std::string& text, std::size_t max_documents, std::size_t max_events,
                         std::size_t max_aliases) {
  std::istringstream in(text);
  Counter counter(max_events, max_aliases);
  try {
    YAML::Parser parser(in);
    std::size_t docs = 0;
    while (parser.HandleNextDocument(counter)) {
      if (++docs > max_documents) {
        return invalid_argument("more than " + std::to_string(max_documents) + " YAML documents");
      }
    }
  } catch (const Limit&) {
    return invalid_argument(
        std::string("too many YAML ") + counter.exceeded + " (at most " +
        std::to_string(std::string(counter.exceeded) == "events" ? max_events : max_aliases) + ")");
  } catch (const YAML::Exception& e) {
    return invalid_argument(std::string("not valid YAML: ") + e.what());
  }
  return Status::ok();
}

}  // namespace patronus::yamlf
