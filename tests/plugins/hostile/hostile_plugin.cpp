// Plugin files that would take down any host that maps them (tests/core/plugin_scanner_test.cpp):
// their static initialisers run at dlopen, before the host could look at a descriptor.
//   HOSTILE_TWIN   a scorer from twin/v1/config.proto with NO .patronus.schema section (built by
//                  hand, as a vendor without patronus_add_plugin would): the second of two such
//                  files aborts inside libprotobuf ("File already exists in database");
//   HOSTILE_SEGV   dereferences a null pointer;
//   HOSTILE_ABORT  says why on stderr, then abort();
//   HOSTILE_HANG   never returns;
//   HOSTILE_EXIT   calls exit(3).
#include <unistd.h>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "patronus/sdk/plugin.hpp"

#ifdef HOSTILE_TWIN
#include <google/protobuf/descriptor.pb.h>

#include "twin/v1/config.pb.h"
#endif

namespace {

#if defined(HOSTILE_SEGV)
int crash() {
  // The compiler cannot know the pointer is null, so this is a real load, not a trap.
  volatile int* p = reinterpret_cast<volatile int*>(std::getenv("PATRONUS_TEST_NEVER_SET_X"));
  std::fputs("hostile-segv: reading through a null pointer\n", stderr);
  return *p;
}
const int kInit = crash();
#elif defined(HOSTILE_ABORT)
int give_up() {
  std::fputs("hostile-abort: this plugin cannot live here, aborting\n", stderr);
  std::abort();
}
const int kInit = give_up();
#elif defined(HOSTILE_HANG)
int hang() {
  std::fputs("hostile-hang: waiting forever\n", stderr);
  for (;;) ::pause();
}
const int kInit = hang();
#elif defined(HOSTILE_EXIT)
int leave() {
  std::fputs("hostile-exit: exiting with status 3\n", stderr);
  std::exit(3);
}
const int kInit = leave();
#endif

class Scorer final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;
  void configure(const std::uint8_t* data, std::size_t size) override {
#ifdef HOSTILE_TWIN
    twin::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) {
      throw patronus::sdk::Error("config: not a valid message");
    }
    bias_ = c.bias();
#else
    (void)data, (void)size;
#endif
  }
  patronus_score score(const patronus_metrics_window&) override {
    patronus_score s{};
    s.struct_size = sizeof s;
    s.score = 50 + bias_;
    s.state = PATRONUS_PATH_UP;
    return s;
  }

 private:
  double bias_ = 0;
};

#ifdef HOSTILE_TWIN
// The schema from the generated code at run time: nothing in the file says which .proto it has.
const std::string& schema() {
  static const std::string bytes = [] {
    google::protobuf::FileDescriptorSet set;
    twin::v1::Config::descriptor()->file()->CopyTo(set.add_file());
    return set.SerializeAsString();
  }();
  return bytes;
}
#endif

}  // namespace

#ifdef HOSTILE_TWIN
PATRONUS_SDK_PLUGIN(Scorer, HOSTILE_NAME, "1.0.0", "twin.v1.Config",
                    reinterpret_cast<const std::uint8_t*>(schema().data()),
                    static_cast<std::uint32_t>(schema().size()))
#else
PATRONUS_SDK_PLUGIN(Scorer, HOSTILE_NAME, "1.0.0", nullptr, nullptr, 0)
#endif
