// patronusd's side of the site channel (docs/guides/controller.md): enrols once with the token,
// then dials the controller with its own identity, reports its endpoints' public keys, applies
// every config pushed to it (through the daemon's hook: SiteHost::apply), stores the last one it
// applied (the site starts from it without the controller), acknowledges the version and hash it
// runs, and reports its paths. A lost controller changes nothing on the site: the link retries
// with backoff and jitter. Private to the daemon.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "patronus/controller/v1/controller.pb.h"
#include "patronus/core/daemon_config.hpp"
#include "patronus/mesh/keys.hpp"
#include "patronus/util/status.hpp"

namespace boost::asio {
class io_context;
}

namespace patronus::daemon {

namespace ctl = ::patronus::controller::v1;

class ControllerLink {
 public:
  struct Hooks {
    // Applies the controller's config; the error is acknowledged to the controller.
    std::function<Status(const ctl::ConfigPush&)> apply;
    std::function<ctl::Report()> report;
    std::function<void(int level, const std::string& message)> log;  // 1 info, 2 warn, 3 error
  };
  // The site's identity is made in section.state_dir on first use (its private key never leaves
  // it); `keys` holds the endpoints' WireGuard keys.
  static Result<std::unique_ptr<ControllerLink>> create(boost::asio::io_context& io,
                                                        const core::ControllerSection& section,
                                                        const std::string& site,
                                                        mesh::KeyDirectory keys, Hooks hooks,
                                                        std::uint64_t seed);
  ~ControllerLink();
  ControllerLink(const ControllerLink&) = delete;
  ControllerLink& operator=(const ControllerLink&) = delete;

  // The config last applied from the controller, as stored in `state_dir` (nullopt: none yet).
  static Result<std::optional<ctl::ConfigPush>> load_last(const std::string& state_dir);

  void start();
  // A report within 200 ms (a path changed state); several calls make one report.
  void report_soon();
  bool connected() const;
  bool enrolled() const;

  struct Impl;

 private:
  explicit ControllerLink(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace patronus::daemon
