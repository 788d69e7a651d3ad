#include "vici_session.hpp"

#include <algorithm>

#include "patronus/util/wipe.hpp"

namespace patronus::vici {

Status Session::queue(Packet p, Pending pending) {
  if (pending_.size() >= kMaxPending) {
    return Status(Code::kResourceExhausted,
                  "vici: " + std::to_string(kMaxPending) + " requests already wait for charon");
  }
  auto bytes = encode(p);
  wipe(p.message);  // a load-shared request carries a PSK
  if (!bytes.is_ok()) return bytes.status();
  if (out_.capacity() < out_.size() + bytes.value().size()) {
    // Grown by hand so the old buffer (which may hold an earlier secret) is wiped, not freed.
    std::string grown;
    grown.reserve(std::max(out_.capacity() * 2, out_.size() + bytes.value().size()));
    grown.append(out_);
    util::wipe(out_);
    out_.swap(grown);
  }
  out_ += bytes.value();
  util::wipe(bytes.value());
  pending_.push_back(std::move(pending));
  return Status::ok();
}

Status Session::command(const std::string& name, const Message& args, Reply done) {
  Packet p;
  p.type = PacketType::kCmdRequest;
  p.name = name;
  p.message = args;
  Pending w;
  w.name = name;
  w.reply = std::move(done);
  return queue(std::move(p), std::move(w));
}

Status Session::subscribe(const std::string& event, std::function<void(Status)> done) {
  Packet p;
  p.type = PacketType::kEventRegister;
  p.name = event;
  Pending w;
  w.is_command = false;
  w.name = event;
  w.confirm = std::move(done);
  return queue(std::move(p), std::move(w));
}

std::string Session::take_output() {
  std::string out;
  out.swap(out_);
  return out;
}

Status Session::dispatch(Packet p) {
  if (p.type == PacketType::kEvent) {
    if (on_event_) on_event_(p);
    return Status::ok();
  }
  const bool command_answer =
      p.type == PacketType::kCmdResponse || p.type == PacketType::kCmdUnknown;
  const bool register_answer =
      p.type == PacketType::kEventConfirm || p.type == PacketType::kEventUnknown;
  if (!command_answer && !register_answer) {
    return invalid_argument(std::string("vici: charon sent ") + to_string(p.type) +
                            ", which only a client sends");
  }
  if (pending_.empty() || pending_.front().is_command != command_answer) {
    return invalid_argument(std::string("vici: an unexpected ") + to_string(p.type) +
                            (pending_.empty()
                                 ? " (nothing was asked)"
                                 : " while waiting for the answer to " + pending_.front().name));
  }
  Pending w = std::move(pending_.front());
  pending_.pop_front();
  switch (p.type) {
    case PacketType::kCmdResponse:
      if (w.reply) w.reply(std::move(p.message));
      break;
    case PacketType::kCmdUnknown:
      if (w.reply) {
        w.reply(Status(Code::kUnimplemented, "vici: charon does not know the command " + w.name));
      }
      break;
    case PacketType::kEventConfirm:
      if (w.confirm) w.confirm(Status::ok());
      break;
    default:
      if (w.confirm) {
        w.confirm(Status(Code::kUnimplemented, "vici: charon has no event " + w.name));
      }
  }
  return Status::ok();
}

Status Session::feed(std::string_view bytes) {
  framer_.feed(bytes);
  while (true) {
    auto seg = framer_.next();
    if (!seg.is_ok()) return seg.status();
    if (!seg.value()) return Status::ok();
    auto p = decode(*seg.value());
    if (!p.is_ok()) return p.status();
    if (auto s = dispatch(std::move(p).value()); !s.is_ok()) return s;
  }
}

void Session::fail_all(const Status& why) {
  std::deque<Pending> waiting;
  waiting.swap(pending_);
  for (auto& w : waiting) {
    if (w.is_command && w.reply) w.reply(why);
    if (!w.is_command && w.confirm) w.confirm(why);
  }
}

}  // namespace patronus::vici
