// A scorer whose Protobuf file or message name is taken by the shipped scoring plugin
// (tests/core/plugin_host_test.cpp, ProtoCollision*). Loading it after `scoring` in the same
// process would abort inside libprotobuf; the host must refuse it first.
#include "patronus/sdk/plugin.hpp"
#include CLASH_PB_H

namespace {

class ClashScorer final : public patronus::sdk::ScorerPlugin {
 public:
  using ScorerPlugin::ScorerPlugin;
  void configure(const std::uint8_t* data, std::size_t size) override {
    CLASH_CONFIG c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) {
      throw patronus::sdk::Error("config: not a valid message");
    }
    bias_ = c.bias();
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

}  // namespace

PATRONUS_SDK_PLUGIN(ClashScorer, CLASH_NAME, "1.0.0", CLASH_TYPE, patronus_embedded_schema,
                    patronus_embedded_schema_size)
