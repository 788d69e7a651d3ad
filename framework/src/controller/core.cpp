#include "patronus/controller/core.hpp"

#include <sodium.h>

#include <algorithm>

#include "patronus/model/types.hpp"

namespace patronus::controller {

namespace {

// Tokens are kept as their BLAKE2b hash: a copy of the state does not enrol anything.
std::string token_hash(const std::string& token) {
  unsigned char digest[32];
  crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(token.data()),
                     token.size(), nullptr, 0);
  char hex[sizeof digest * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, digest, sizeof digest);
  return hex;
}

}  // namespace

Core::Core(env::Env& env, Outbox& outbox, CoreOptions options)
    : env_(env), outbox_(outbox), options_(options) {}

Core::~Core() {
  if (flush_timer_ != 0) env_.cancel(flush_timer_);
}

Status Core::add_site(FleetSite site) {
  if (auto s = model::validate_name("site", site.name, 63); !s.is_ok()) return s;
  if (sites_.count(site.name)) return invalid_argument("site '" + site.name + "' exists already");
  if (sites_.size() >= options_.max_sites) {
    return resource_exhausted("sites: the bound of " + std::to_string(options_.max_sites) +
                              " is reached");
  }
  model::Site m;
  m.name = site.name;
  m.endpoints = site.endpoints;
  if (auto s = model::validate_site(m); !s.is_ok()) return s;
  site.public_keys.assign(site.endpoints.size(), "");  // they come from the site
  Site s;
  const std::string name = site.name;
  s.fleet = std::move(site);
  sites_.emplace(name, std::move(s));
  touch(name);
  return Status::ok();
}

Status Core::remove_site(const std::string& name) {
  const auto it = sites_.find(name);
  if (it == sites_.end()) return not_found("no site '" + name + "'");
  if (it->second.session) sessions_.erase(*it->second.session);
  sites_.erase(it);
  for (auto t = tokens_.begin(); t != tokens_.end();) {
    t = t->second.site == name ? tokens_.erase(t) : std::next(t);
  }
  touch(name);
  return Status::ok();
}

void Core::set_settings(FleetSettings settings) {
  settings_ = std::move(settings);
  touch("");
}

Result<std::string> Core::create_token(const std::string& site, std::int64_t ttl_ns) {
  const auto it = sites_.find(site);
  if (it == sites_.end()) return not_found("no site '" + site + "' (add it first)");
  if (it->second.enrolled) return failed_precondition("site '" + site + "' is enrolled already");
  const std::int64_t now = env_.now_ns();
  for (auto t = tokens_.begin(); t != tokens_.end();) {
    t = t->second.expires_ns <= now ? tokens_.erase(t) : std::next(t);
  }
  if (tokens_.size() >= options_.max_tokens) {
    return resource_exhausted("tokens: " + std::to_string(options_.max_tokens) +
                              " are outstanding");
  }
  if (ttl_ns < 0) return invalid_argument("ttl: must not be negative");
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);  // from the OS, never the Env's (seedable) generator
  char text[sodium_base64_ENCODED_LEN(sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
  sodium_bin2base64(text, sizeof text, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  sodium_memzero(raw, sizeof raw);
  const std::string token = std::string("ptk_") + text;
  tokens_[token_hash(token)] = {site, now + (ttl_ns == 0 ? options_.default_token_ttl_ns : ttl_ns)};
  return token;
}

Status Core::enrol(const std::string& token, const std::string& site,
                   const std::array<std::uint8_t, 32>& identity,
                   const std::vector<std::string>& endpoint_keys) {
  const std::int64_t now = env_.now_ns();
  if (now - bad_window_start_ns_ >= options_.bad_token_window_ns) {
    bad_window_start_ns_ = now;
    bad_tokens_ = 0;
  }
  if (bad_tokens_ >= options_.max_bad_tokens) {
    ++counters_.tokens_rate_limited;
    return resource_exhausted("enrolment: too many wrong tokens; try again later");
  }
  auto refuse = [&](const std::string& why) {
    ++bad_tokens_;
    ++counters_.tokens_refused;
    return failed_precondition("enrolment refused: " + why);
  };
  const auto t = tokens_.find(token_hash(token));
  if (t == tokens_.end()) return refuse("the token is unknown or was used already");
  if (t->second.expires_ns <= now) {
    tokens_.erase(t);
    return refuse("the token expired");
  }
  if (t->second.site != site) return refuse("the token is for another site");
  auto it = sites_.find(site);
  if (it == sites_.end()) return refuse("the site was removed");
  Site& s = it->second;
  if (endpoint_keys.size() != s.fleet.endpoints.size()) {
    return invalid_argument("enrolment: " + std::to_string(endpoint_keys.size()) +
                            " endpoint keys for " + std::to_string(s.fleet.endpoints.size()) +
                            " endpoints");
  }
  for (std::size_t i = 0; i < endpoint_keys.size(); ++i) {
    auto k = mesh::key_from_base64(endpoint_keys[i], "endpoint_keys[" + std::to_string(i) + "]");
    if (!k.is_ok()) return k.status();
  }
  tokens_.erase(t);  // burnt
  s.enrolled = true;
  s.identity = identity;
  s.fleet.public_keys = endpoint_keys;
  touch(site);
  return Status::ok();
}

Status Core::connect(SessionId session, const std::string& site,
                     const std::array<std::uint8_t, 32>& identity, const std::string& have_hash) {
  auto it = sites_.find(site);
  if (it == sites_.end() || !it->second.enrolled ||
      sodium_memcmp(it->second.identity.data(), identity.data(), identity.size()) != 0) {
    ++counters_.connects_refused;
    return failed_precondition("site '" + site + "' is not enrolled with this identity");
  }
  if (sessions_.size() >= options_.max_sessions && !sessions_.count(session)) {
    return resource_exhausted("sessions: the bound of " + std::to_string(options_.max_sessions) +
                              " is reached");
  }
  Site& s = it->second;
  if (s.session && *s.session != session) sessions_.erase(*s.session);  // the newer one wins
  s.session = session;
  sessions_[session] = site;
  s.last_seen_ns = env_.now_ns();
  s.applied_hash = have_hash;
  // Resumed: nothing is sent when the site runs what it should.
  if (!s.hash.empty() && have_hash != s.hash) push(s);
  return Status::ok();
}

Status Core::acknowledge(SessionId session, std::uint64_t version, const std::string& hash,
                         const std::string& error) {
  Site* s = site_of(session);
  if (s == nullptr) return not_found("no session " + std::to_string(session));
  s->last_seen_ns = env_.now_ns();
  if (version > s->version) {
    return invalid_argument("acknowledged version " + std::to_string(version) +
                            " was never sent (latest " + std::to_string(s->version) + ")");
  }
  s->applied_version = version;
  s->applied_hash = hash;
  if (version < s->version) return Status::ok();  // an older push; the newer one is on its way
  if (hash == s->hash && error.empty()) {
    s->resends = 0;
    s->drift = false;
    return Status::ok();
  }
  // It runs something else than it was sent: send it again, a bounded number of times.
  if (s->resends >= options_.max_resends) {
    s->drift = true;
    return Status::ok();
  }
  ++s->resends;
  ++counters_.resends;
  push(*s);
  return Status::ok();
}

void Core::disconnect(SessionId session) {
  const auto it = sessions_.find(session);
  if (it == sessions_.end()) return;
  if (auto s = sites_.find(it->second); s != sites_.end() && s->second.session == session) {
    s->second.session.reset();
  }
  sessions_.erase(it);
}

Core::Site* Core::site_of(SessionId session) {
  const auto it = sessions_.find(session);
  if (it == sessions_.end()) return nullptr;
  const auto s = sites_.find(it->second);
  return s == sites_.end() ? nullptr : &s->second;
}

void Core::touch(const std::string& site) {
  if (!site.empty()) touched_.insert(site);
  const std::int64_t now = env_.now_ns();
  if (burst_started_ns_ < 0) burst_started_ns_ = now;
  const std::int64_t at =
      std::min(now + options_.debounce_ns, burst_started_ns_ + options_.max_wait_ns);
  if (flush_timer_ != 0) env_.cancel(flush_timer_);
  flush_timer_ = env_.schedule(std::max<std::int64_t>(0, at - now), [this] {
    flush_timer_ = 0;
    flush();
  });
}

void Core::flush() {
  if (flush_timer_ != 0) env_.cancel(flush_timer_);
  flush_timer_ = 0;
  burst_started_ns_ = -1;
  std::vector<FleetSite> fleet;
  fleet.reserve(sites_.size());
  for (const auto& [name, s] : sites_) {
    if (s.enrolled) fleet.push_back(s.fleet);
  }
  std::set<std::string> touched;
  touched.swap(touched_);
  auto changed = compiler_.update(fleet, settings_, touched);
  ++counters_.compiles;
  if (!changed.is_ok()) {
    // The fleet cannot be compiled as it is (a topology without its hubs, ...): the sites keep
    // what they run; the next change tries again.
    return;
  }
  counters_.configs_compiled += compiler_.stats().compiled;
  for (const auto& name : changed.value()) {
    auto it = sites_.find(name);
    if (it == sites_.end()) continue;
    Site& s = it->second;
    ++s.version;
    s.hash = *compiler_.hash(name);
    s.resends = 0;
    s.drift = false;
    if (s.session) push(s);
  }
}

void Core::push(Site& s) {
  const site::SiteConfig* config = compiler_.config(s.fleet.name);
  if (config == nullptr || !s.session) return;
  v1::ToSite m;
  auto* p = m.mutable_config();
  p->set_version(s.version);
  p->set_hash(s.hash);
  *p->mutable_config() = *config;
  p->mutable_config()->set_generation(s.version);
  outbox_.send(*s.session, m);
  ++counters_.pushes;
}

std::optional<SiteStatus> Core::status(const std::string& site) const {
  const auto it = sites_.find(site);
  if (it == sites_.end()) return std::nullopt;
  const Site& s = it->second;
  SiteStatus v;
  v.name = site;
  v.enrolled = s.enrolled;
  v.in_mesh = compiler_.config(site) != nullptr;
  v.connected = s.session.has_value();
  v.version = s.version;
  v.hash = s.hash;
  v.applied_version = s.applied_version;
  v.applied_hash = s.applied_hash;
  v.drift = s.drift;
  v.last_seen_ns = s.last_seen_ns;
  return v;
}

std::vector<SiteStatus> Core::statuses() const {
  std::vector<SiteStatus> out;
  for (const auto& [name, s] : sites_) out.push_back(*status(name));
  return out;
}

}  // namespace patronus::controller
