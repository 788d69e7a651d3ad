// Health for a daemon's HTTP listener: the event loop's heartbeat (a 100 ms timer that records how
// late it ran) and the /livez and /readyz answers built from named checks, as Kubernetes prints
// them (`?verbose` lists each check). Private.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "server.hpp"

namespace boost::asio {
class io_context;
}

namespace patronus::http {

// A loop whose 100 ms timer runs this late is not live.
inline constexpr double kLivenessLagS = 5.0;

class Heartbeat {
 public:
  // Starts beating on `io`. `on_beat` (optional) runs on each beat: systemd's watchdog.
  explicit Heartbeat(boost::asio::io_context& io, std::function<void()> on_beat = {});
  ~Heartbeat();
  Heartbeat(const Heartbeat&) = delete;
  Heartbeat& operator=(const Heartbeat&) = delete;
  // How late the loop is: the last beat's lateness, or, when a beat is overdue now (the loop is
  // busy and the timer has not run), how overdue it is.
  double lag_s() const;
  bool late() const { return lag_s() > kLivenessLagS; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct HealthCheck {
  std::string name;  // "event_loop", "config_applied"
  bool ok = false;
  std::string detail;  // why not (shown with ?verbose)
};

// The answer to GET /livez or /readyz (`what`: "livez" or "readyz"): 200 "ok" when every check
// passes, else 503 naming the first failure; with ?verbose, one line per check.
Response health_response(const Request& r, const std::string& what,
                         const std::vector<HealthCheck>& checks);

// A plain-text answer (an error a human reads: curl, a probe's log).
Response text_response(int status, std::string body);

// systemd's notification socket ($NOTIFY_SOCKET): "READY=1", "WATCHDOG=1", "STOPPING=1". False
// when not run by systemd (or the send failed); never blocks.
bool sd_notify(const std::string& state);
// The watchdog interval systemd asked for ($WATCHDOG_USEC for this pid), or 0.
std::chrono::microseconds sd_watchdog_interval();

}  // namespace patronus::http
