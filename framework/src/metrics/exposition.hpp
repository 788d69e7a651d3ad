// Prometheus text exposition (format 0.0.4), built on each scrape from the daemon's own state: no
// global registry, so what is exported is exactly what the code reads at that moment. Families
// carry HELP and TYPE once; names and labels are checked, values formatted as Prometheus parses
// them; the number of series a scrape may hold is bounded.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "patronus/util/status.hpp"

namespace patronus::metrics {

enum class Type { kCounter, kGauge, kHistogram };

using Labels = std::vector<std::pair<std::string, std::string>>;

class Exposition {
 public:
  explicit Exposition(std::size_t max_series = 100000) : max_series_(max_series) {}

  // Starts a family. The name must match [a-zA-Z_:][a-zA-Z0-9_:]* and, for a counter, end in
  // _total (promtool's rule); a family name may appear once per scrape.
  Status family(std::string_view name, Type type, std::string_view help);
  // One sample of the current counter or gauge family.
  Status sample(const Labels& labels, double value);
  // One histogram of the current histogram family: `bounds` ascending (the +Inf bucket is
  // added), `counts[i]` observations <= bounds[i] (not cumulative; this makes them so), `sum`.
  Status histogram(const Labels& labels, const std::vector<double>& bounds,
                   const std::vector<std::uint64_t>& counts, std::uint64_t over, double sum);

  // Series left out because the scrape reached its bound (reported by the caller as a metric).
  std::uint64_t dropped() const { return dropped_; }
  const std::string& text() const { return out_; }

 private:
  Status labels_ok(const Labels& labels) const;
  void line(std::string_view name, const Labels& labels,
            const std::pair<std::string, std::string>* extra, double value);
  std::string out_;
  std::string current_;
  Type type_ = Type::kGauge;
  std::vector<std::string> seen_;
  std::size_t series_ = 0, max_series_;
  std::uint64_t dropped_ = 0;
};

// A label value escaped (backslash, double quote, newline) and a HELP text escaped (backslash,
// newline), as the format requires.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// A sample value as Prometheus parses it: +Inf, -Inf, NaN, or the shortest round-trip decimal.
std::string format_value(double v);
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);

// A plugin's metric name (the ABI's `metric` host service): a Prometheus metric name, optionally
// followed by its own labels in the exposition's syntax, `dropped_total{reason="forged"}`. At
// most kMaxPluginLabels labels; names and values bounded; `plugin_instance` (the host's), and
// `instance`, `job` and `le` (Prometheus') are refused.
// Errors say what is wrong; nothing else is accepted (no spaces, no value).
struct Series {
  std::string name;
  Labels labels;
};
inline constexpr std::size_t kMaxPluginLabels = 8;
inline constexpr std::size_t kMaxSeriesText = 512;
Result<Series> parse_series(std::string_view text);

// Fixed buckets, observed one value at a time (seconds): what a histogram family needs.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {}
  void observe(double v) {
    sum_ += v;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      if (v <= bounds_[i]) {
        ++counts_[i];
        return;
      }
    }
    ++over_;
  }
  const std::vector<double>& bounds() const { return bounds_; }
  const std::vector<std::uint64_t>& counts() const { return counts_; }
  std::uint64_t over() const { return over_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<std::uint64_t> counts_;
  std::uint64_t over_ = 0;
  double sum_ = 0;
};

// The content type of this format.
inline constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace patronus::metrics
