// netpolicy: Kubernetes NetworkPolicy enforcement for patronusd, through the policy kind of the
// plugin ABI. load() replaces the policy set and inventory (validated completely first; on error
// the previous set stays in force); evaluate() classifies one flow with the compiled classifier.
#include <memory>

#include "patronus/model/address.hpp"
#include "patronus/netpolicy/v1/netpolicy.pb.h"
#include "patronus/policy/classifier.hpp"
#include "patronus/policy/parse.hpp"
#include "patronus/sdk/plugin.hpp"

namespace {

using patronus::sdk::Error;
namespace pol = patronus::policy;

class NetPolicy final : public patronus::sdk::PolicyPlugin {
 public:
  using PolicyPlugin::PolicyPlugin;

  void configure(const std::uint8_t* data, std::size_t size) override {
    patronus::netpolicy::v1::Config c;
    if (!c.ParseFromArray(data, static_cast<int>(size))) throw Error("config: not a valid message");
    max_bytes_ = c.has_max_document_bytes() ? c.max_document_bytes() : (64u << 20);
  }

  void load(const char* document, std::size_t size) override {
    if (size > max_bytes_) {
      throw Error("document is " + std::to_string(size) + " bytes; max_document_bytes is " +
                      std::to_string(max_bytes_),
                  PATRONUS_ERR_INVALID_ARGUMENT);
    }
    auto m = pol::parse_manifests(std::string(document, size), "policy document");
    if (!m.is_ok()) throw Error(m.status().message(), PATRONUS_ERR_INVALID_ARGUMENT);
    auto policies = std::move(m.value().policies);
    classifier_ = std::make_unique<pol::Classifier>(std::move(policies),
                                                    pol::make_inventory(std::move(m).value()));
  }

  std::uint32_t evaluate(const patronus_flow_tuple& flow) override {
    if (!classifier_) throw Error("no policy document loaded", PATRONUS_ERR_FAILED_PRECONDITION);
    pol::Protocol proto;
    switch (flow.protocol) {
      case 6:
        proto = pol::Protocol::kTcp;
        break;
      case 17:
        proto = pol::Protocol::kUdp;
        break;
      case 132:
        proto = pol::Protocol::kSctp;
        break;
      default:
        throw Error("protocol " + std::to_string(flow.protocol) +
                        " is not governed by NetworkPolicy (TCP, UDP, SCTP only)",
                    PATRONUS_ERR_INVALID_ARGUMENT);
    }
    auto src = patronus::model::SocketAddress::from_abi(flow.src);
    auto dst = patronus::model::SocketAddress::from_abi(flow.dst);
    if (!src.is_ok() || !dst.is_ok()) {
      throw Error("flow: bad address family", PATRONUS_ERR_INVALID_ARGUMENT);
    }
    return classifier_->allowed_ips(src.value().ip(), dst.value().ip(), proto, dst.value().port())
               ? PATRONUS_VERDICT_ALLOW
               : PATRONUS_VERDICT_DENY;
  }

 private:
  std::uint64_t max_bytes_ = 64u << 20;
  std::unique_ptr<pol::Classifier> classifier_;
};

}  // namespace

PATRONUS_SDK_PLUGIN(NetPolicy, "netpolicy", "1.0.0", "patronus.netpolicy.v1.Config",
                    patronus_embedded_schema, patronus_embedded_schema_size)
