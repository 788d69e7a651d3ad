// test-transport: a transport double for virtual-time runtime tests. It builds nothing; a path's
// tunnel is UP exactly when the path's keepalive is non-zero, so a test takes a tunnel down by
// updating the path (path_up on a known id, as the ABI allows) with keepalive 0. Every path's
// state is reported right after each change (from a timer: never inside the host's call) and
// again every 100 ms, as a real transport reports its read-back state.
#include <map>

#include "patronus/sdk/plugin.hpp"

namespace {

class TestTransport final : public patronus::sdk::TransportPlugin {
 public:
  using TransportPlugin::TransportPlugin;
  void start() override { tick(); }
  void path_up(const patronus_path_desc& p) override {
    if (p.interface_name == nullptr || p.interface_name[0] == '\0') {
      throw patronus::sdk::Error("path without an interface", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    up_[p.path_id] = p.keepalive_s != 0;
    host().schedule(0, [this] { report_all(); });
  }
  void path_down(std::uint64_t path_id) override { up_.erase(path_id); }

 private:
  void tick() {
    report_all();
    host().schedule(100'000'000, [this] { tick(); });
  }
  void report_all() {
    for (const auto& [id, up] : up_) {
      patronus_tunnel_status t{};
      t.struct_size = sizeof t;
      t.path_id = id;
      t.state = up ? PATRONUS_TUNNEL_UP : PATRONUS_TUNNEL_DOWN;
      t.diagnostic = up ? PATRONUS_TUNNEL_DIAG_NONE : PATRONUS_TUNNEL_DIAG_NO_HANDSHAKE;
      host().report_tunnel(t);
    }
  }
  std::map<std::uint64_t, bool> up_;
};

}  // namespace

PATRONUS_SDK_PLUGIN(TestTransport, "test-transport", "0.0.1", nullptr, nullptr, 0)
