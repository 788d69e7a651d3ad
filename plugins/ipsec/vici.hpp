// strongSwan's VICI protocol (charon's control socket), spoken directly: Debian ships libvici
// without a header, and the protocol is small (src/libcharon/plugins/vici/README.md upstream).
//
// Transport: segments, each a 32-bit big-endian length then that many bytes (at most 512 KiB).
// Packet: a type byte, a name (u8 length + bytes) for the named types, then a message.
// Message: a sequence of elements: SECTION_START (1, u8-length name), SECTION_END (2),
// KEY_VALUE (3, u8-length key, u16-length value), LIST_START (4, u8-length name),
// LIST_ITEM (5, u16-length value), LIST_END (6).
//
// Decoding is defensive: every length is checked against what is left, nesting and element counts
// are bounded, sections and lists must close, nothing follows the message; errors name the byte
// offset.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "patronus/util/status.hpp"

namespace patronus::vici {

inline constexpr std::size_t kMaxSegment = 512 * 1024;
inline constexpr int kMaxDepth = 32;
inline constexpr std::size_t kMaxElements = 100000;

struct Message;

// A value: a string, a list of strings, or a section (a nested message).
struct Value {
  enum class Kind : std::uint8_t { kString, kList, kSection };
  Kind kind = Kind::kString;
  std::string str;
  std::vector<std::string> list;
  std::shared_ptr<Message> section;
};

// An ordered message (VICI keeps order; keys may repeat in events, the first one wins for find).
struct Message {
  std::vector<std::pair<std::string, Value>> items;

  Message& set(std::string key, std::string value);
  Message& set_list(std::string key, std::vector<std::string> values);
  Message& section(std::string key);  // appends an empty section and returns it

  const Value* find(std::string_view key) const;
  // The string at `key`, or nullopt (absent or not a string).
  std::optional<std::string> get(std::string_view key) const;
  const Message* child(std::string_view key) const;  // a section, or nullptr
};

enum class PacketType : std::uint8_t {
  kCmdRequest = 0,
  kCmdResponse = 1,
  kCmdUnknown = 2,
  kEventRegister = 3,
  kEventUnregister = 4,
  kEventConfirm = 5,
  kEventUnknown = 6,
  kEvent = 7,
};
bool is_named(PacketType t);
const char* to_string(PacketType t);

struct Packet {
  PacketType type = PacketType::kCmdRequest;
  std::string name;  // named types only
  Message message;
};

// The packet as one transport segment, length header included. Fails on a name, key or value
// longer than its length field, or a segment over kMaxSegment.
Result<std::string> encode(const Packet& p);
// One segment's payload (without the length header).
Result<Packet> decode(std::string_view segment);

// Splits a byte stream into segments.
class Framer {
 public:
  void feed(std::string_view bytes) { buf_.append(bytes); }
  // The next whole segment's payload, nullopt if more bytes are needed, an error on a length
  // over kMaxSegment (the stream cannot be resynchronised: close it).
  Result<std::optional<std::string>> next();

 private:
  std::string buf_;
};

// Overwrites every string of the message (and its sections) and empties it: for requests that
// carried a secret.
void wipe(Message& m);

// A message as text, for logs and errors (secrets are the caller's business: never pass one).
std::string describe(const Message& m);

}  // namespace patronus::vici
