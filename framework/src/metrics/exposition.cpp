#include "exposition.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace patronus::metrics {

namespace {

bool name_char(char c, bool first, bool colon) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
         (!first && c >= '0' && c <= '9');
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

bool valid_metric_name(std::string_view name) {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, true)) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;  // __ is Prometheus' own
  for (std::size_t i = 0; i < name.size(); ++i) {
    if (!name_char(name[i], i == 0, false)) return false;
  }
  return true;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

Status Exposition::family(std::string_view name, Type type, std::string_view help) {
  if (!valid_metric_name(name)) {
    return invalid_argument("metric name '" + std::string(name) + "' is not a Prometheus name");
  }
  if (type == Type::kCounter && !ends_with(name, "_total")) {
    return invalid_argument("counter '" + std::string(name) + "' must end in _total");
  }
  if (std::find(seen_.begin(), seen_.end(), name) != seen_.end()) {
    return invalid_argument("metric family '" + std::string(name) + "' given twice");
  }
  seen_.emplace_back(name);
  current_ = std::string(name);
  type_ = type;
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += type == Type::kCounter ? " counter\n"
          : type == Type::kGauge ? " gauge\n"
                                 : " histogram\n";
  return Status::ok();
}

Status Exposition::labels_ok(const Labels& labels) const {
  for (const auto& [k, v] : labels) {
    if (!valid_label_name(k)) {
      return invalid_argument("label name '" + k + "' of " + current_ + " is not valid");
    }
  }
  return Status::ok();
}

void Exposition::line(std::string_view name, const Labels& labels,
                      const std::pair<std::string, std::string>* extra, double value) {
  out_ += name;
  if (!labels.empty() || extra != nullptr) {
    out_ += '{';
    bool first = true;
    auto put = [&](const std::string& k, const std::string& v) {
      if (!first) out_ += ',';
      first = false;
      out_ += k;
      out_ += "=\"";
      out_ += escape_label_value(v);
      out_ += '"';
    };
    for (const auto& [k, v] : labels) put(k, v);
    if (extra) put(extra->first, extra->second);
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

Status Exposition::sample(const Labels& labels, double value) {
  if (current_.empty()) return failed_precondition("a sample before its family");
  if (type_ == Type::kHistogram) return failed_precondition(current_ + " is a histogram");
  if (auto s = labels_ok(labels); !s.is_ok()) return s;
  if (series_ >= max_series_) {
    ++dropped_;
    return Status::ok();
  }
  ++series_;
  line(current_, labels, nullptr, value);
  return Status::ok();
}

Status Exposition::histogram(const Labels& labels, const std::vector<double>& bounds,
                             const std::vector<std::uint64_t>& counts, std::uint64_t over,
                             double sum) {
  if (current_.empty() || type_ != Type::kHistogram) {
    return failed_precondition("a histogram outside a histogram family");
  }
  if (bounds.size() != counts.size())
    return invalid_argument("histogram: bounds and counts differ");
  if (!std::is_sorted(bounds.begin(), bounds.end())) {
    return invalid_argument("histogram: bounds must ascend");
  }
  for (const auto& [k, v] : labels) {
    if (k == "le") return invalid_argument("histogram: 'le' is the bucket label");
  }
  if (auto s = labels_ok(labels); !s.is_ok()) return s;
  if (series_ + bounds.size() + 3 > max_series_) {
    ++dropped_;
    return Status::ok();
  }
  series_ += bounds.size() + 3;
  std::uint64_t cumulative = 0;
  const std::string bucket = current_ + "_bucket";
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += counts[i];
    const std::pair<std::string, std::string> le{"le", format_value(bounds[i])};
    line(bucket, labels, &le, static_cast<double>(cumulative));
  }
  cumulative += over;
  const std::pair<std::string, std::string> inf{"le", "+Inf"};
  line(bucket, labels, &inf, static_cast<double>(cumulative));
  line(current_ + "_sum", labels, nullptr, sum);
  line(current_ + "_count", labels, nullptr, static_cast<double>(cumulative));
  return Status::ok();
}

Result<Series> parse_series(std::string_view text) {
  if (text.size() > kMaxSeriesText) {
    return invalid_argument("metric '" + std::string(text.substr(0, 64)) + "...' is longer than " +
                            std::to_string(kMaxSeriesText) + " bytes");
  }
  const auto open = text.find('{');
  Series s;
  s.name = std::string(text.substr(0, open));
  if (!valid_metric_name(s.name) || s.name.find(':') != std::string::npos) {
    return invalid_argument("metric name '" + s.name +
                            "' is not a Prometheus name ([a-zA-Z_][a-zA-Z0-9_]*)");
  }
  if (open == std::string_view::npos) return s;
  if (text.back() != '}') return invalid_argument("metric '" + s.name + "': labels end with '}'");
  std::string_view rest = text.substr(open + 1, text.size() - open - 2);
  while (!rest.empty()) {
    const auto eq = rest.find('=');
    if (eq == std::string_view::npos) {
      return invalid_argument("metric '" + s.name + "': a label without '=\"value\"'");
    }
    std::string key(rest.substr(0, eq));
    if (!valid_label_name(key)) {
      return invalid_argument("metric '" + s.name + "': label name '" + key + "' is not valid");
    }
    if (key == "plugin_instance" || key == "instance" || key == "job" || key == "le") {
      return invalid_argument("metric '" + s.name + "': label '" + key + "' is the host's");
    }
    for (const auto& [k, v] : s.labels) {
      if (k == key) return invalid_argument("metric '" + s.name + "': label '" + key + "' twice");
    }
    rest.remove_prefix(eq + 1);
    if (rest.empty() || rest.front() != '"') {
      return invalid_argument("metric '" + s.name + "': label '" + key + "' needs a quoted value");
    }
    rest.remove_prefix(1);
    std::string value;
    bool closed = false;
    while (!rest.empty()) {
      const char c = rest.front();
      rest.remove_prefix(1);
      if (c == '"') {
        closed = true;
        break;
      }
      if (c == '\\') {
        if (rest.empty()) break;
        const char e = rest.front();
        rest.remove_prefix(1);
        if (e == 'n')
          value += '\n';
        else if (e == '\\' || e == '"')
          value += e;
        else
          return invalid_argument("metric '" + s.name + "': label '" + key + "' has a bad escape");
      } else {
        value += c;
      }
    }
    if (!closed) {
      return invalid_argument("metric '" + s.name + "': label '" + key + "' value is not closed");
    }
    s.labels.emplace_back(std::move(key), std::move(value));
    if (s.labels.size() > kMaxPluginLabels) {
      return invalid_argument("metric '" + s.name + "': more than " +
                              std::to_string(kMaxPluginLabels) + " labels");
    }
    if (rest.empty()) break;
    if (rest.front() != ',') {
      return invalid_argument("metric '" + s.name + "': labels are separated by ','");
    }
    rest.remove_prefix(1);
  }
  return s;
}

}  // namespace patronus::metrics
