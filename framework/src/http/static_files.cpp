#include "static_files.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace patronus::http {

namespace fs = std::filesystem;

std::string content_type_of(const std::string& name) {
  static const std::map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".txt", "text/plain; charset=utf-8"},
      {".map", "application/json"},
  };
  const auto dot = name.rfind('.');
  if (dot == std::string::npos) return "application/octet-stream";
  const auto it = kTypes.find(name.substr(dot));
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

namespace {

Result<std::string> read_whole(const fs::path& p, std::size_t limit) {
  const int fd = ::open(p.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return unavailable(p.string() + ": cannot open");
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      ::close(fd);
      return unavailable(p.string() + ": read failed");
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > limit) {
      ::close(fd);
      return resource_exhausted(p.string() + ": the dashboard's files exceed their bound");
    }
  }
  ::close(fd);
  return out;
}

std::string etag_of(const std::string& body) {
  unsigned char h[16];
  crypto_generichash(h, sizeof h, reinterpret_cast<const unsigned char*>(body.data()), body.size(),
                     nullptr, 0);
  static const char* hex = "0123456789abcdef";
  std::string t = "\"";
  for (unsigned char c : h) {
    t += hex[c >> 4];
    t += hex[c & 15];
  }
  return t + "\"";
}

}  // namespace

Result<std::unique_ptr<StaticFiles>> StaticFiles::load(const std::string& dir,
                                                       std::size_t max_files,
                                                       std::size_t max_bytes) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return not_found("dashboard: " + dir +
                     " is not a directory (build it: cmake --build build "
                     "--target patronus-ui, or set api.ui_dir)");
  }
  auto out = std::unique_ptr<StaticFiles>(new StaticFiles());
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return unavailable("dashboard: " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return unavailable("dashboard: " + dir + ": " + ec.message());
    const auto name = it->path().filename().string();
    if (!name.empty() && name[0] == '.') {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    if (out->files_.size() >= max_files) {
      return resource_exhausted("dashboard: " + dir + " has more than " +
                                std::to_string(max_files) + " files");
    }
    auto body = read_whole(it->path(), max_bytes - out->bytes_);
    if (!body.is_ok()) return body.status();
    const std::string url = "/" + fs::relative(it->path(), dir, ec).generic_string();
    File f;
    f.type = content_type_of(name);
    f.etag = etag_of(body.value());
    f.body = std::move(body).value();
    out->bytes_ += f.body.size();
    out->files_.emplace(url, std::move(f));
  }
  if (!out->files_.count("/index.html")) {
    return not_found("dashboard: " + dir + " has no index.html (not a dashboard build)");
  }
  return out;
}

void StaticFiles::secure(Response& r) {
  // Scripts, styles and connections only from this origin; no inline script or style element,
  // no eval, no plugin, no frame, no form posting elsewhere.
  r.headers.emplace_back("Content-Security-Policy",
                         "default-src 'none'; script-src 'self'; style-src 'self'; "
                         "img-src 'self' data:; font-src 'self'; connect-src 'self'; "
                         "manifest-src 'self'; base-uri 'none'; form-action 'self'; "
                         "frame-ancestors 'none'");
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.headers.emplace_back("X-Frame-Options", "DENY");
  r.headers.emplace_back("Referrer-Policy", "no-referrer");
  r.headers.emplace_back("Cross-Origin-Opener-Policy", "same-origin");
  r.headers.emplace_back("Cross-Origin-Resource-Policy", "same-origin");
}

std::optional<Response> StaticFiles::get(const Request& r) const {
  if (r.method != "GET") return std::nullopt;
  const std::string path = r.path == "/" ? "/index.html" : r.path;
  const auto it = files_.find(path);
  if (it == files_.end()) return std::nullopt;
  Response res;
  secure(res);
  res.headers.emplace_back("ETag", it->second.etag);
  res.headers.emplace_back("Cache-Control", path.rfind("/assets/", 0) == 0
                                                ? "public, max-age=31536000, immutable"
                                                : "no-cache");
  if (const auto inm = r.header("if-none-match"); inm && *inm == it->second.etag) {
    res.status = 304;
    res.content_type.clear();
    return res;
  }
  res.content_type = it->second.type;
  res.body = it->second.body;
  return res;
}

}  // namespace patronus::http
