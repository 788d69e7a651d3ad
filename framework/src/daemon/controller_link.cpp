#include "controller_link.hpp"

#include "patronus/controller/core.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>

#include "channel.hpp"
#include "patronus/site/site_config.hpp"
#include "patronus/util/file.hpp"

namespace patronus::daemon {

namespace {

constexpr const char* kLastConfig = "last-config.pb";
constexpr const char* kEnrolled = "enrolled";

// A small file of the site's own state: absent is kNotFound, anything else unreadable an error.
Result<std::string> read_small(const std::string& path, std::size_t max) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) return not_found(path + ": absent");
  auto text = read_text_file(path, max);
  if (!text.is_ok() && text.status().code() == Code::kNotFound) {
    return unavailable(text.status().message());  // there, but not readable
  }
  return text;
}

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::size_t i = 0;
  while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
  return s.substr(i);
}

}  // namespace

struct ControllerLink::Impl {
  Impl(boost::asio::io_context& io, core::ControllerSection section, std::string site,
       mesh::KeyDirectory keys, Hooks hooks)
      : io(io),
        section(std::move(section)),
        site(std::move(site)),
        keys(std::move(keys)),
        hooks(std::move(hooks)),
        report_timer(io),
        soon_timer(io) {}
  boost::asio::io_context& io;
  core::ControllerSection section;
  std::string site;
  mesh::KeyDirectory keys;
  Hooks hooks;
  std::unique_ptr<channel::Client> client;
  boost::asio::steady_timer report_timer;
  boost::asio::steady_timer soon_timer;
  bool soon_pending = false;
  std::optional<ctl::ConfigPush> last;  // applied
  bool enrolled = false;
  bool welcomed = false;
  std::string last_failure;  // said once until it changes

  void log(int level, const std::string& m) const {
    if (hooks.log) hooks.log(level, "controller: " + m);
  }
  void send(const ctl::FromSite& m) { client->send(m.SerializeAsString()); }

  void on_connected() {
    last_failure.clear();
    welcomed = false;
    ctl::FromSite m;
    if (enrolled) {
      auto* h = m.mutable_hello();
      h->set_site(site);
      if (last) {
        h->set_have_version(last->version());
        h->set_have_hash(last->hash());
      }
      log(1, "connected to " + section.address);
    } else {
      auto token = section.token_file.empty()
                       ? Result<std::string>(not_found("no controller.token_file"))
                       : read_small(section.token_file, 4096);
      if (!token.is_ok() || trim(token.value()).empty()) {
        log(3, "site '" + site + "' is not enrolled and has no token (" +
                   (token.is_ok() ? section.token_file + " is empty" : token.status().message()) +
                   "): create one with `patronus controller token create --site " + site +
                   " --out FILE` and name FILE in controller.token_file; not retrying");
        client->hold();
        return;
      }
      m.mutable_enrol()->set_token(trim(token.value()));
      m.mutable_enrol()->set_site(site);
      log(1, "connected to " + section.address + "; enrolling site '" + site + "'");
    }
    send(m);
    schedule_report();
  }

  void on_message(std::string_view bytes) {
    ctl::ToSite m;
    if (!m.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      log(2, "a message from the controller does not parse; ignored");
      return;
    }
    switch (m.what_case()) {
      case ctl::ToSite::kWelcome:
        return on_welcome(m.welcome());
      case ctl::ToSite::kConfig:
        return on_config(m.config());
      case ctl::ToSite::kRotate:
        return on_rotate(m.rotate());
      case ctl::ToSite::kRefused: {
        // A site the controller no longer knows by this identity (removed, then added again
        // with a new token): it enrols again if it has a token, instead of giving up.
        const bool unknown_now =
            enrolled && m.refused().permanent() &&
            (m.refused().reason().find("is not enrolled") != std::string::npos ||
             m.refused().reason().find("was removed") != std::string::npos);
        if (unknown_now) {
          enrolled = false;
          ::unlink((section.state_dir + "/" + kEnrolled).c_str());
          auto token = section.token_file.empty() ? Result<std::string>(not_found(""))
                                                  : read_small(section.token_file, 4096);
          if (token.is_ok() && !trim(token.value()).empty()) {
            log(2, "refused by the controller: " + m.refused().reason() +
                       "; enrolling again with " + section.token_file);
            return;  // the session ends; the next one enrols
          }
        }
        log(3, "refused by the controller: " + m.refused().reason() +
                   (m.refused().permanent() ? " (not retrying: fix the config and restart)" : ""));
        if (m.refused().permanent()) client->hold();
        return;
      }
      default:
        return;
    }
  }

  void on_welcome(const ctl::Welcome& w) {
    if (!enrolled) {
      enrolled = true;
      if (auto s = write_file_atomic(section.state_dir + "/" + kEnrolled, site + "\n", 0600);
          !s.is_ok()) {
        log(3, "cannot record the enrolment: " + s.message());
      }
      log(1, "site '" + site + "' enrolled (the token is used up; its file can go)");
    }
    welcomed = true;
    if (w.endpoints_size() > 64) return log(2, "the controller names more than 64 endpoints");
    ctl::FromSite m;
    for (const auto& e : w.endpoints()) {
      auto pair = keys.load_or_create(site, e);  // made here; only the public half leaves
      if (!pair.is_ok()) {
        log(3, "endpoint '" + e + "': " + pair.status().message());
        continue;
      }
      auto* k = m.mutable_keys()->add_keys();
      k->set_endpoint(e);
      k->set_public_key(mesh::key_to_base64(pair.value().public_key));
      // A rotation staged before this session (the controller restarted) is said again.
      if (auto next = keys.load_next(site, e); next.is_ok() && next.value()) {
        k->set_next_public_key(mesh::key_to_base64(next.value()->public_key));
      }
    }
    if (m.has_keys()) send(m);
    if (w.pending_approval()) {
      log(1, "waiting for an operator: `patronus controller sites approve " + site + "`");
    }
  }

  // ADR 0013 driven by the controller: stage makes (or finds) the next key and reports it;
  // commit makes it the key and reports that. The private halves stay in keys_dir.
  void on_rotate(const ctl::KeyRotation& r) {
    ctl::FromSite m;
    auto* k = m.mutable_keys()->add_keys();
    k->set_endpoint(r.endpoint());
    if (!r.commit()) {
      auto current = keys.load_or_create(site, r.endpoint());
      auto next = keys.stage_next(site, r.endpoint());
      if (!current.is_ok() || !next.is_ok()) {
        return log(3, "key rotation of '" + r.endpoint() +
                          "': " + (current.is_ok() ? next.status() : current.status()).message());
      }
      k->set_public_key(mesh::key_to_base64(current.value().public_key));
      k->set_next_public_key(mesh::key_to_base64(next.value().public_key));
      log(1, "key rotation of '" + r.endpoint() + "': next key staged (" +
                 keys.next_key_path(site, r.endpoint()) + "), its public half sent");
    } else {
      auto now = keys.commit_next(site, r.endpoint());
      if (!now.is_ok()) {
        return log(3, "key rotation of '" + r.endpoint() + "': commit: " + now.status().message());
      }
      k->set_public_key(mesh::key_to_base64(now.value().public_key));
      log(1, "key rotation of '" + r.endpoint() +
                 "': committed (every peer acknowledged a config with the next key)");
    }
    send(m);
  }

  void on_config(const ctl::ConfigPush& push) {
    ctl::FromSite ack;
    auto* a = ack.mutable_ack();
    a->set_version(push.version());
    Status st = controller::check_push(push, site);
    if (st.is_ok() && !(last && last->hash() == push.hash())) st = hooks.apply(push);
    if (st.is_ok()) {
      last = push;
      if (auto s = write_file_atomic(section.state_dir + "/" + kLastConfig,
                                     push.SerializeAsString(), 0600);
          !s.is_ok()) {
        log(3,
            "the applied config could not be stored (a restart without the controller "
            "would start from the previous one): " +
                s.message());
      }
      a->set_hash(push.hash());
      log(1, "applied version " + std::to_string(push.version()) + " (" +
                 push.hash().substr(0, 12) + ")");
    } else {
      a->set_hash(last ? last->hash() : "");
      a->set_error(st.message());
      log(3, "version " + std::to_string(push.version()) + " not applied: " + st.message());
    }
    send(ack);
    send_report();
  }

  void send_report() {
    if (!client->connected() || !welcomed || !hooks.report) return;
    ctl::FromSite m;
    *m.mutable_report() = hooks.report();
    if (last) {
      m.mutable_report()->set_applied_version(last->version());
      m.mutable_report()->set_applied_hash(last->hash());
    }
    send(m);
  }

  void schedule_report() {
    report_timer.expires_after(std::chrono::milliseconds(section.report_interval_ms));
    report_timer.async_wait([this](const boost::system::error_code& ec) {
      if (ec || !client->connected()) return;
      send_report();
      schedule_report();
    });
  }
};

Result<std::optional<ctl::ConfigPush>> ControllerLink::load_last(const std::string& state_dir) {
  auto bytes = read_small(state_dir + "/" + kLastConfig, 64 * 1024 * 1024);
  if (!bytes.is_ok()) {
    if (bytes.status().code() == Code::kNotFound) return std::optional<ctl::ConfigPush>();
    return bytes.status();
  }
  ctl::ConfigPush p;
  if (!p.ParseFromString(bytes.value()) || site::content_hash(p.config()) != p.hash()) {
    return failed_precondition(state_dir + "/" + kLastConfig +
                               ": does not parse or hash to its hash (remove it; the controller "
                               "sends the config again)");
  }
  return std::optional<ctl::ConfigPush>(std::move(p));
}

ControllerLink::ControllerLink(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

ControllerLink::~ControllerLink() {
  impl_->report_timer.cancel();
  impl_->soon_timer.cancel();
  if (impl_->client) impl_->client->stop();
}

Result<std::unique_ptr<ControllerLink>> ControllerLink::create(
    boost::asio::io_context& io, const core::ControllerSection& section, const std::string& site,
    mesh::KeyDirectory keys, Hooks hooks, std::uint64_t seed) {
  auto pin = channel::parse_pin(section.pin);
  if (!pin.is_ok()) return invalid_argument("controller.pin: " + pin.status().message());
  auto identity =
      channel::load_or_create_identity(section.state_dir, "site", "patronus-site-" + site);
  if (!identity.is_ok()) {
    return Status(identity.status().code(), "controller.state_dir: " + identity.status().message());
  }
  auto impl = std::make_unique<Impl>(io, section, site, std::move(keys), std::move(hooks));
  auto enrolled = read_small(section.state_dir + "/" + kEnrolled, 1024);
  impl->enrolled = enrolled.is_ok() && trim(enrolled.value()) == site;
  auto last = load_last(section.state_dir);
  if (!last.is_ok()) return last.status();
  impl->last = last.value();
  Impl* raw = impl.get();
  channel::Client::Handlers h;
  h.connected = [raw] { raw->on_connected(); };
  h.message = [raw](std::string_view m) { raw->on_message(m); };
  h.disconnected = [raw](const std::string& why, std::int64_t retry_ms) {
    raw->report_timer.cancel();
    // Each new reason is said once; the same failure again (a controller that stays down) is not.
    if (why != raw->last_failure) {
      raw->log(2, why + (retry_ms >= 0 ? "; the site keeps running what it has and retries "
                                         "(backoff with jitter, at most 60 s)"
                                       : ""));
      raw->last_failure = why;
    }
  };
  channel::ClientOptions options;
  options.seed = seed;
  impl->client = std::make_unique<channel::Client>(
      io, section.address, pin.value(), std::move(identity).value(), std::move(h), options);
  return std::unique_ptr<ControllerLink>(new ControllerLink(std::move(impl)));
}

void ControllerLink::start() {
  impl_->client->start();
}

void ControllerLink::report_soon() {
  Impl* i = impl_.get();
  if (i->soon_pending || !i->client->connected()) return;
  i->soon_pending = true;
  i->soon_timer.expires_after(std::chrono::milliseconds(200));
  i->soon_timer.async_wait([i](const boost::system::error_code& ec) {
    if (ec) return;
    i->soon_pending = false;
    i->send_report();
  });
}
bool ControllerLink::connected() const {
  return impl_->client->connected();
}
bool ControllerLink::enrolled() const {
  return impl_->enrolled;
}

}  // namespace patronus::daemon
