// A plugin's metric name arrives through the ABI from code the host does not trust: parse_series
// must take any bytes, and what it accepts must print back (in the exposition's syntax) to text
// that parses to the same series, within its bounds.
#include <cstdlib>
#include <string>

#include "exposition.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace m = patronus::metrics;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto s = m::parse_series(text);
  if (!s.is_ok()) return 0;
  if (!m::valid_metric_name(s.value().name) || s.value().labels.size() > m::kMaxPluginLabels) {
    std::abort();
  }
  std::string again = s.value().name;
  if (!s.value().labels.empty()) {
    again += '{';
    for (std::size_t i = 0; i < s.value().labels.size(); ++i) {
      const auto& [k, v] = s.value().labels[i];
      if (!m::valid_label_name(k)) std::abort();
      again += (i ? "," : "") + k + "=\"" + m::escape_label_value(v) + "\"";
    }
    again += '}';
  }
  auto back = m::parse_series(again);
  if (again.size() <= m::kMaxSeriesText && (!back.is_ok() || back.value().name != s.value().name ||
                                            back.value().labels != s.value().labels)) {
    std::abort();
  }
  // The exposition takes it as a family with the host's label added.
  m::Exposition e;
  if (!e.family("patronus_plugin_" + s.value().name, m::Type::kGauge, "fuzz").is_ok()) {
    std::abort();
  }
  m::Labels l{{"plugin_instance", "x"}};
  l.insert(l.end(), s.value().labels.begin(), s.value().labels.end());
  if (!e.sample(l, 1).is_ok()) std::abort();
  return 0;
}
