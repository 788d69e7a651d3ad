// Secrets out of memory once used: a string's whole buffer (up to its capacity, not only its
// size) is overwritten in a way the compiler may not drop (explicit_bzero), then emptied. For
// the buffers that carried a private key or a PSK to wireguard-go, the kernel or charon.
#pragma once

#include <string.h>

#include <string>

namespace patronus::util {

inline void wipe(std::string& s) {
  s.resize(s.capacity());
  ::explicit_bzero(s.data(), s.size());
  s.clear();
}

}  // namespace patronus::util
