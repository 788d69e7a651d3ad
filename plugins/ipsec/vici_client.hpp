// A blocking VICI client over charon's unix socket, with a deadline per call: for tests and
// tools that configure a charon the way a third party would. It is a Session (the protocol state
// the plugin drives from the host's event loop) moved by poll().
#pragma once

#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "vici_session.hpp"

namespace patronus::vici {

class BlockingClient {
 public:
  static Result<BlockingClient> connect(const std::string& socket_path,
                                        std::chrono::milliseconds timeout);
  BlockingClient(BlockingClient&& o) noexcept;
  BlockingClient& operator=(BlockingClient&& o) noexcept;
  ~BlockingClient();

  // A command and its response. Events that arrive meanwhile (registered ones, or the stream a
  // command produces) go to `on_event` (without one, they wait for next_event()).
  Result<Message> call(const std::string& command, const Message& args,
                       const std::function<void(const Packet&)>& on_event = {});
  Status subscribe(const std::string& event);
  // The next event within the timeout (an error on timeout or a closed socket).
  Result<Packet> next_event(std::chrono::milliseconds timeout);

 private:
  BlockingClient(int fd, std::chrono::milliseconds timeout);
  // Writes what the session has to say, then reads until `done()` or the deadline.
  Status pump(const std::function<bool()>& done, std::chrono::milliseconds timeout);
  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  // Heap-held: the session's event callback points back at this object's queue and handler.
  struct State {
    std::function<void(const Packet&)> on_event;
    std::deque<Packet> events;  // at most kMaxQueuedEvents
    Session session;
  };
  std::unique_ptr<State> st_;
};

// A command's response that says success=no, as an error carrying charon's errmsg.
Status check_success(const std::string& command, const Message& response);

}  // namespace patronus::vici
