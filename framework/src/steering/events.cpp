#include "patronus/steering/events.hpp"

#include "proto_json.hpp"

namespace patronus::steering {

std::string event_type(const Event& e) {
  switch (e.what_case()) {
    case Event::kPath:
      return e.path().up() ? "path.up" : "path.down";
    case Event::kLiveness:
      return e.liveness().up() ? "path.liveness_up" : "path.liveness_down";
    case Event::kTunnel:
      return e.tunnel().up() ? "tunnel.up" : "tunnel.down";
    case Event::kPlugin:
      return e.plugin().type();
    case Event::WHAT_NOT_SET:
      return "";
    default:
      // runtime.<member name>: site_added, path_added, scorer_error, ...
      return "runtime." + e.GetDescriptor()->FindFieldByNumber(e.what_case())->name();
  }
}

std::string event_json(const Event& e) {
  if (e.what_case() == Event::kPlugin) return e.plugin().json();
  if (e.what_case() == Event::WHAT_NOT_SET) return "{}";
  const auto* f = e.GetDescriptor()->FindFieldByNumber(e.what_case());
  return proto_to_json(e.GetReflection()->GetMessage(e, f));
}

bool is_warning(const Event& e) {
  switch (e.what_case()) {
    case Event::kTimerRefused:
    case Event::kPluginMetricsFull:
    case Event::kScorerError:
    case Event::kScorerRecovered:
    case Event::kDataplaneError:
    case Event::kRateError:
    case Event::kFlowTableFull:
      return true;
    default:
      return false;
  }
}

}  // namespace patronus::steering
