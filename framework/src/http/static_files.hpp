// A directory of static files (the dashboard's build) served from memory: read once at start,
// each with its content type, a strong ETag, and the headers a browser needs to keep the page
// to itself (a strict Content-Security-Policy, no sniffing, no framing, no referrer).
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>

#include "patronus/util/status.hpp"
#include "server.hpp"

namespace patronus::http {

class StaticFiles {
 public:
  // Reads every regular file under `dir` (no symlinks followed, no dot files). Fails when `dir`
  // has no index.html, more than `max_files` files or more than `max_bytes` in all.
  static Result<std::unique_ptr<StaticFiles>> load(const std::string& dir,
                                                   std::size_t max_files = 512,
                                                   std::size_t max_bytes = 32u << 20);

  // GET of `path` ("/" is index.html). Files under /assets/ carry content hashes in
  // their names and are cached for a year; everything else must be revalidated (ETag, 304).
  // nullopt: not a file here.
  std::optional<Response> get(const Request& r) const;

  // The headers every dashboard response carries.
  static void secure(Response& r);
  std::size_t files() const { return files_.size(); }
  std::size_t bytes() const { return bytes_; }

 private:
  struct File {
    std::string type, body, etag;
  };
  std::map<std::string, File> files_;  // by URL path ("/index.html")
  std::size_t bytes_ = 0;
};

// The content type a file name's extension says ("application/octet-stream" when unknown).
std::string content_type_of(const std::string& name);

}  // namespace patronus::http
