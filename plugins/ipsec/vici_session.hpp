// One VICI connection's protocol state, without I/O: commands and event registrations are
// queued and answered in order (charon answers a connection's requests one after the other),
// events are dispatched as they come. The owner moves bytes: take_output() to the socket,
// feed() from it. The plugin drives it from the host's fd watches (never blocking); the blocking
// client drives it with poll().
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "vici.hpp"

namespace patronus::vici {

inline constexpr std::size_t kMaxPending = 256;

class Session {
 public:
  using Reply = std::function<void(Result<Message>)>;
  using EventFn = std::function<void(const Packet&)>;

  explicit Session(EventFn on_event = {}) : on_event_(std::move(on_event)) {}

  // Queues a command; `done` gets charon's response message (or why there is none). Refused
  // (nothing queued) when kMaxPending requests wait or the command cannot be encoded.
  Status command(const std::string& name, const Message& args, Reply done);
  // Registers for an event; `done` gets OK or why not (an unknown event).
  Status subscribe(const std::string& event, std::function<void(Status)> done);

  // Bytes to write, in order (the caller writes them all, or keeps the rest and writes it first).
  std::string take_output();
  bool has_output() const { return !out_.empty(); }
  // Bytes read. An error means the stream is corrupt: close the connection, then fail_all().
  Status feed(std::string_view bytes);
  // The connection is gone: every waiting request gets `why`.
  void fail_all(const Status& why);
  std::size_t pending() const { return pending_.size(); }

 private:
  struct Pending {
    bool is_command = true;
    std::string name;
    Reply reply;                          // commands
    std::function<void(Status)> confirm;  // registrations
  };
  Status queue(Packet p, Pending pending);
  Status dispatch(Packet p);

  EventFn on_event_;
  std::deque<Pending> pending_;
  std::string out_;
  Framer framer_;
};

}  // namespace patronus::vici
