// Strong id types: a SiteId cannot be passed where a PathId is expected.
#pragma once

#include <cstdint>
#include <functional>
#include <ostream>

namespace patronus::model {

template <typename Tag>
class StrongId {
 public:
  constexpr StrongId() = default;
  constexpr explicit StrongId(std::uint64_t v) : v_(v) {}
  constexpr std::uint64_t value() const { return v_; }
  constexpr bool valid() const { return v_ != 0; }
  friend constexpr bool operator==(StrongId a, StrongId b) { return a.v_ == b.v_; }
  friend constexpr bool operator!=(StrongId a, StrongId b) { return a.v_ != b.v_; }
  friend constexpr bool operator<(StrongId a, StrongId b) { return a.v_ < b.v_; }
  friend std::ostream& operator<<(std::ostream& os, StrongId id) { return os << id.v_; }

 private:
  std::uint64_t v_ = 0;  // 0: not assigned
};

using SiteId = StrongId<struct SiteIdTag>;
using EndpointId = StrongId<struct EndpointIdTag>;
using PathId = StrongId<struct PathIdTag>;
using FlowId = StrongId<struct FlowIdTag>;
using PolicyId = StrongId<struct PolicyIdTag>;

}  // namespace patronus::model

template <typename Tag>
struct std::hash<patronus::model::StrongId<Tag>> {
  std::size_t operator()(patronus::model::StrongId<Tag> id) const noexcept {
    return std::hash<std::uint64_t>{}(id.value());
  }
};
