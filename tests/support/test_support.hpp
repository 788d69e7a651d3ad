// Helpers shared by the tests: build paths, unique temp dirs, running a command, free ports.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace patronus::test {

std::string bin_dir();           // build/bin
std::string plugin_dir();        // build/plugins
std::string test_plugin_dir();   // build/test-plugins
std::string clash_plugin_dir();  // build/clash-plugins: Protobuf names taken by `scoring`
// build/hostile-plugins: files whose loading crashes, aborts, hangs or exits the process
// (libpatronus-hostile-{twin-a,twin-b,segv,abort,hang,exit}.so)
std::string hostile_plugin_dir();
std::string source_dir();  // the repository

// A fresh directory unique to this process and call, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs argv (no shell; argv[0] is looked up in PATH) with stdin closed; waits for it.
CommandResult run(const std::vector<std::string>& argv);

// A UDP port on 127.0.0.1 that was free a moment ago (bound to port 0, then released).
std::uint16_t free_udp_port();

std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& text);
bool file_exists(const std::string& path);

}  // namespace patronus::test
