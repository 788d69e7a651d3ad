#include "vici.hpp"

#include "patronus/util/enum_table.hpp"
#include "patronus/util/wipe.hpp"

namespace patronus::vici {

namespace {

enum Element : std::uint8_t {
  kSectionStart = 1,
  kSectionEnd = 2,
  kKeyValue = 3,
  kListStart = 4,
  kListItem = 5,
  kListEnd = 6,
};

Status too_long(const std::string& what, std::size_t n, std::size_t max) {
  return invalid_argument("vici: " + what + " is " + std::to_string(n) + " bytes, at most " +
                          std::to_string(max));
}

void put8(std::string& out, std::size_t v) {
  out.push_back(static_cast<char>(v & 0xff));
}
void put16(std::string& out, std::size_t v) {
  put8(out, v >> 8);
  put8(out, v);
}

Status put_name(std::string& out, const std::string& name, const char* what) {
  if (name.size() > 255)
    return too_long(std::string(what) + " '" + name.substr(0, 32) + "...'", name.size(), 255);
  put8(out, name.size());
  out += name;
  return Status::ok();
}

Status put_value(std::string& out, const std::string& value, const std::string& key) {
  if (value.size() > 65535) return too_long("the value of '" + key + "'", value.size(), 65535);
  put16(out, value.size());
  out += value;
  return Status::ok();
}

Status encode_message(std::string& out, const Message& m, int depth) {
  if (depth > kMaxDepth) return invalid_argument("vici: sections nested deeper than 32");
  for (const auto& [key, v] : m.items) {
    switch (v.kind) {
      case Value::Kind::kString:
        put8(out, kKeyValue);
        if (auto s = put_name(out, key, "key"); !s.is_ok()) return s;
        if (auto s = put_value(out, v.str, key); !s.is_ok()) return s;
        break;
      case Value::Kind::kList:
        put8(out, kListStart);
        if (auto s = put_name(out, key, "list name"); !s.is_ok()) return s;
        for (const auto& item : v.list) {
          put8(out, kListItem);
          if (auto s = put_value(out, item, key); !s.is_ok()) return s;
        }
        put8(out, kListEnd);
        break;
      case Value::Kind::kSection:
        put8(out, kSectionStart);
        if (auto s = put_name(out, key, "section name"); !s.is_ok()) return s;
        if (v.section) {
          if (auto s = encode_message(out, *v.section, depth + 1); !s.is_ok()) return s;
        }
        put8(out, kSectionEnd);
        break;
    }
  }
  return Status::ok();
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool done() const { return pos_ == b_.size(); }
  std::size_t pos() const { return pos_; }
  Status fail(const std::string& what) const {
    return invalid_argument("vici: " + what + " at byte " + std::to_string(pos_));
  }
  Result<std::uint8_t> u8() {
    if (pos_ + 1 > b_.size()) return fail("truncated");
    return static_cast<std::uint8_t>(b_[pos_++]);
  }
  Result<std::string> bytes(std::size_t n) {
    if (n > b_.size() - pos_) return fail("a length of " + std::to_string(n) + " past the end");
    std::string s(b_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  Result<std::string> name() {
    auto n = u8();
    if (!n.is_ok()) return n.status();
    return bytes(n.value());
  }
  Result<std::string> value() {
    auto hi = u8();
    if (!hi.is_ok()) return hi.status();
    auto lo = u8();
    if (!lo.is_ok()) return lo.status();
    return bytes((std::size_t{hi.value()} << 8) | lo.value());
  }

 private:
  std::string_view b_;
  std::size_t pos_ = 0;
};

// Elements until the end of the input (depth 0) or a SECTION_END (depth > 0).
Status decode_message(Reader& r, Message& m, int depth, std::size_t& elements) {
  while (!r.done()) {
    if (++elements > kMaxElements) return r.fail("more than 100000 elements");
    auto type = r.u8();
    if (!type.is_ok()) return type.status();
    switch (type.value()) {
      case kSectionStart: {
        if (depth + 1 > kMaxDepth) return r.fail("sections nested deeper than 32");
        auto name = r.name();
        if (!name.is_ok()) return name.status();
        Message& child = m.section(std::move(name).value());
        if (auto s = decode_message(r, child, depth + 1, elements); !s.is_ok()) return s;
        break;
      }
      case kSectionEnd:
        if (depth == 0) return r.fail("SECTION_END outside a section");
        return Status::ok();
      case kKeyValue: {
        auto key = r.name();
        if (!key.is_ok()) return key.status();
        auto value = r.value();
        if (!value.is_ok()) return value.status();
        m.set(std::move(key).value(), std::move(value).value());
        break;
      }
      case kListStart: {
        auto name = r.name();
        if (!name.is_ok()) return name.status();
        std::vector<std::string> items;
        while (true) {
          if (++elements > kMaxElements) return r.fail("more than 100000 elements");
          auto t = r.u8();
          if (!t.is_ok()) return r.fail("an unterminated list");
          if (t.value() == kListEnd) break;
          if (t.value() != kListItem) {
            return r.fail("element type " + std::to_string(t.value()) + " inside a list");
          }
          auto item = r.value();
          if (!item.is_ok()) return item.status();
          items.push_back(std::move(item).value());
        }
        m.set_list(std::move(name).value(), std::move(items));
        break;
      }
      case kListItem:
      case kListEnd:
        return r.fail("a list element outside a list");
      default:
        return r.fail("unknown element type " + std::to_string(type.value()));
    }
  }
  if (depth > 0) return r.fail("an unterminated section");
  return Status::ok();
}

void describe_into(std::string& out, const Message& m) {
  out += "{";
  bool first = true;
  for (const auto& [k, v] : m.items) {
    out += first ? "" : ", ";
    first = false;
    out += k + ": ";
    switch (v.kind) {
      case Value::Kind::kString:
        out += v.str;
        break;
      case Value::Kind::kList: {
        out += "[";
        for (std::size_t i = 0; i < v.list.size(); ++i) out += (i ? ", " : "") + v.list[i];
        out += "]";
        break;
      }
      case Value::Kind::kSection:
        if (v.section) describe_into(out, *v.section);
        break;
    }
  }
  out += "}";
}

}  // namespace

Message& Message::set(std::string key, std::string value) {
  Value v;
  v.str = std::move(value);
  items.emplace_back(std::move(key), std::move(v));
  return *this;
}

Message& Message::set_list(std::string key, std::vector<std::string> values) {
  Value v;
  v.kind = Value::Kind::kList;
  v.list = std::move(values);
  items.emplace_back(std::move(key), std::move(v));
  return *this;
}

Message& Message::section(std::string key) {
  Value v;
  v.kind = Value::Kind::kSection;
  v.section = std::make_shared<Message>();
  items.emplace_back(std::move(key), std::move(v));
  return *items.back().second.section;
}

const Value* Message::find(std::string_view key) const {
  for (const auto& [k, v] : items) {
    if (k == key) return &v;
  }
  return nullptr;
}

std::optional<std::string> Message::get(std::string_view key) const {
  const Value* v = find(key);
  if (v == nullptr || v->kind != Value::Kind::kString) return std::nullopt;
  return v->str;
}

const Message* Message::child(std::string_view key) const {
  const Value* v = find(key);
  return v != nullptr && v->kind == Value::Kind::kSection ? v->section.get() : nullptr;
}

bool is_named(PacketType t) {
  return t == PacketType::kCmdRequest || t == PacketType::kEventRegister ||
         t == PacketType::kEventUnregister || t == PacketType::kEvent;
}

const char* to_string(PacketType t) {
  static constexpr EnumTable<PacketType, 8> kNames{{
      {"CMD_REQUEST", PacketType::kCmdRequest},
      {"CMD_RESPONSE", PacketType::kCmdResponse},
      {"CMD_UNKNOWN", PacketType::kCmdUnknown},
      {"EVENT_REGISTER", PacketType::kEventRegister},
      {"EVENT_UNREGISTER", PacketType::kEventUnregister},
      {"EVENT_CONFIRM", PacketType::kEventConfirm},
      {"EVENT_UNKNOWN", PacketType::kEventUnknown},
      {"EVENT", PacketType::kEvent},
  }};
  return enum_name(t, kNames);
}

void wipe(Message& m) {
  for (auto& [key, v] : m.items) {
    util::wipe(v.str);
    for (auto& x : v.list) util::wipe(x);
    if (v.section) wipe(*v.section);
  }
  m.items.clear();
}

Result<std::string> encode(const Packet& p) {
  // Reserved so that a request (a load-shared carries a PSK) is never copied by a reallocation:
  // the one buffer is wiped below.
  std::string body;
  body.reserve(4096);
  put8(body, static_cast<std::uint8_t>(p.type));
  if (is_named(p.type)) {
    if (auto s = put_name(body, p.name, "packet name"); !s.is_ok()) return s;
  }
  if (auto s = encode_message(body, p.message, 0); !s.is_ok()) return s;
  if (body.size() > kMaxSegment) return too_long("the segment", body.size(), kMaxSegment);
  std::string out;
  out.reserve(4 + body.size());
  put8(out, body.size() >> 24);
  put8(out, body.size() >> 16);
  put16(out, body.size() & 0xffff);
  out += body;
  util::wipe(body);
  return out;
}

Result<Packet> decode(std::string_view segment) {
  Reader r(segment);
  auto type = r.u8();
  if (!type.is_ok()) return r.fail("an empty packet");
  if (type.value() > static_cast<std::uint8_t>(PacketType::kEvent)) {
    return invalid_argument("vici: unknown packet type " + std::to_string(type.value()));
  }
  Packet p;
  p.type = static_cast<PacketType>(type.value());
  if (is_named(p.type)) {
    auto name = r.name();
    if (!name.is_ok()) return name.status();
    p.name = std::move(name).value();
  }
  std::size_t elements = 0;
  if (auto s = decode_message(r, p.message, 0, elements); !s.is_ok()) return s;
  return p;
}

Result<std::optional<std::string>> Framer::next() {
  if (buf_.size() < 4) return std::optional<std::string>();
  const auto b = [&](std::size_t i) {
    return static_cast<std::size_t>(static_cast<std::uint8_t>(buf_[i]));
  };
  const std::size_t len = (b(0) << 24) | (b(1) << 16) | (b(2) << 8) | b(3);
  if (len > kMaxSegment) return too_long("a segment", len, kMaxSegment);
  if (buf_.size() < 4 + len) return std::optional<std::string>();
  std::string seg = buf_.substr(4, len);
  buf_.erase(0, 4 + len);
  return std::optional<std::string>(std::move(seg));
}

std::string describe(const Message& m) {
  std::string out;
  describe_into(out, m);
  return out;
}

}  // namespace patronus::vici
