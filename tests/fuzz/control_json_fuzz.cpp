// The control API's JSON on hostile bytes: a request line as the daemon's socket reads it, a
// reply as the CLI reads it. Whatever parses must print and parse back to the same message.
#include <cstdlib>
#include <string>

#include "control.hpp"

namespace {

template <typename M>
void round_trip(const std::string& text) {
  M m;
  if (!patronus::control::from_json(text, &m).is_ok()) return;
  const std::string again = patronus::control::to_json(m);
  M back;
  if (!patronus::control::from_json(again, &back).is_ok()) std::abort();
  // NaN scores print as null and parse back unset; everything else must survive unchanged.
  if (patronus::control::to_json(back) != again) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  round_trip<patronus::control::api::Request>(text);
  round_trip<patronus::control::api::Response>(text);
  return 0;
}
