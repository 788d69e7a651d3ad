// A blocking VICI client over charon's unix socket, with a deadline per call: for tests and
// tools that configure a charon the way a third party would (the plugin itself drives charon
// without blocking, on the host's event loop).
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "vici.hpp"

namespace patronus::vici {

class BlockingClient {
 public:
  static Result<BlockingClient> connect(const std::string& socket_path,
                                        std::chrono::milliseconds timeout);
  BlockingClient(BlockingClient&& o) noexcept;
  BlockingClient& operator=(BlockingClient&& o) noexcept;
  ~BlockingClient();

  // A command and its response. Events that arrive meanwhile (registered ones, or the stream a
  // command produces) go to `on_event`.
  Result<Message> call(const std::string& command, const Message& args,
                       const std::function<void(const Packet&)>& on_event = {});
  Status subscribe(const std::string& event);
  // The next event within the timeout (an error on timeout or a closed socket).
  Result<Packet> next_event(std::chrono::milliseconds timeout);

 private:
  BlockingClient(int fd, std::chrono::milliseconds timeout) : fd_(fd), timeout_(timeout) {}
  Status send(const Packet& p);
  Result<Packet> receive(std::chrono::milliseconds timeout);
  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  Framer framer_;
};

// A command's response that says success=no, as an error carrying charon's errmsg.
Status check_success(const std::string& command, const Message& response);

}  // namespace patronus::vici
