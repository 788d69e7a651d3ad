#include "patronus/controller/core.hpp"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "patronus/mesh/keys.hpp"
#include "patronus/model/types.hpp"
#include "patronus/policy/parse.hpp"

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

fleet::Endpoint endpoint_record(const model::Endpoint& e) {
  fleet::Endpoint r;
  r.set_name(e.name);
  r.set_address(e.address.to_string());
  r.set_type(model::to_string(e.type));
  r.set_cost_per_gb(e.cost_per_gb);
  if (e.bandwidth_mbps) r.set_bandwidth_mbps(*e.bandwidth_mbps);
  return r;
}

}  // namespace

// A site's fields from its record; errors name the field ("sites[0].endpoints[1].address").
namespace {
std::string strip_where(const std::string& m, const std::string& prefix) {
  return m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : m;
}
}  // namespace

Result<FleetSite> fleet_site_of(const fleet::Site& r, const std::string& where) {
  FleetSite s;
  s.name = r.name();
  if (auto st = model::validate_name(where + ".name", s.name, 63); !st.is_ok()) return st;
  if (r.endpoints_size() == 0) return invalid_argument(where + ".endpoints: at least one");
  for (int i = 0; i < r.endpoints_size(); ++i) {
    const auto& e = r.endpoints(i);
    const std::string at = where + ".endpoints[" + std::to_string(i) + "]";
    model::Endpoint m;
    m.name = e.name();
    auto addr = model::SocketAddress::parse(e.address());
    if (!addr.is_ok()) return invalid_argument(at + ".address: " + addr.status().message());
    m.address = addr.value();
    auto type = model::parse_interface_type(e.type().empty() ? "wan" : e.type());
    if (!type.is_ok()) return invalid_argument(at + ".type: " + type.status().message());
    m.type = type.value();
    if (!(e.cost_per_gb() >= 0)) return invalid_argument(at + ".cost_per_gb: must be >= 0");
    m.cost_per_gb = e.cost_per_gb();
    if (e.has_bandwidth_mbps()) {
      if (!(e.bandwidth_mbps() > 0)) return invalid_argument(at + ".bandwidth_mbps: must be > 0");
      m.bandwidth_mbps = e.bandwidth_mbps();
    }
    s.endpoints.push_back(std::move(m));
  }
  for (int i = 0; i < r.subnets_size(); ++i) {
    auto p = model::IpPrefix::parse(r.subnets(i));
    if (!p.is_ok()) {
      return invalid_argument(where + ".subnets[" + std::to_string(i) +
                              "]: " + p.status().message());
    }
    s.subnets.push_back(p.value());
  }
  model::Site m;
  m.name = s.name;
  m.endpoints = s.endpoints;
  if (auto st = model::validate_site(m); !st.is_ok()) {
    return invalid_argument(where + ": " + st.message());
  }
  s.public_keys.assign(s.endpoints.size(), "");
  s.next_public_keys.assign(s.endpoints.size(), "");
  for (int i = 0; i < r.public_keys_size() && i < static_cast<int>(s.endpoints.size()); ++i) {
    s.public_keys[static_cast<std::size_t>(i)] = r.public_keys(i);
  }
  for (int i = 0; i < r.next_public_keys_size() && i < static_cast<int>(s.endpoints.size()); ++i) {
    s.next_public_keys[static_cast<std::size_t>(i)] = r.next_public_keys(i);
  }
  return s;
}

namespace {

// Two sites cannot share an endpoint address or a LAN: peers would reach the wrong one.
Status overlap(const FleetSite& site, const FleetSite& other) {
  for (const auto& e : site.endpoints) {
    for (const auto& o : other.endpoints) {
      if (e.address == o.address) {
        return invalid_argument("endpoint '" + e.name + "': " + e.address.to_string() +
                                " is site '" + other.name + "' endpoint '" + o.name + "'");
      }
    }
  }
  for (const auto& p : site.subnets) {
    for (const auto& o : other.subnets) {
      if (p.contains(o.network()) || o.contains(p.network())) {
        return invalid_argument("subnet " + p.to_string() + " overlaps site '" + other.name +
                                "' subnet " + o.to_string());
      }
    }
  }
  return Status::ok();
}

}  // namespace

Core::Core(env::Env& env, Outbox& outbox, CoreOptions options, FleetStore* store)
    : env_(env), outbox_(outbox), options_(options), store_(store) {}

Status check_push(const v1::ConfigPush& push, const std::string& site) {
  if (push.config().site() != site) {
    return invalid_argument("the config is for site '" + push.config().site() + "'");
  }
  if (site::content_hash(push.config()) != push.hash()) {
    return invalid_argument("the config does not hash to " + push.hash());
  }
  return Status::ok();
}

Core::~Core() {
  if (flush_timer_ != 0) env_.cancel(flush_timer_);
}

Status Core::add_site(FleetSite site) {
  if (auto s = model::validate_name("site", site.name, 63); !s.is_ok()) return s;
  if (sites_.count(site.name)) return already_exists("site '" + site.name + "' exists already");
  if (sites_.size() >= options_.max_sites) {
    return resource_exhausted("sites: the bound of " + std::to_string(options_.max_sites) +
                              " is reached");
  }
  model::Site m;
  m.name = site.name;
  m.endpoints = site.endpoints;
  if (auto s = model::validate_site(m); !s.is_ok()) return s;
  for (const auto& [other_name, other] : sites_) {
    if (auto st = overlap(site, other.fleet); !st.is_ok()) return st;
  }
  site.public_keys.assign(site.endpoints.size(), "");  // they come from the site
  site.next_public_keys.assign(site.endpoints.size(), "");
  Site s;
  const std::string name = site.name;
  s.fleet = std::move(site);
  s.approved = !options_.require_approval;
  FleetBatch b;
  b.put_sites.push_back(record(s));
  if (auto st = persist(b); !st.is_ok()) return st;
  sites_.emplace(name, std::move(s));
  touch(name);
  return Status::ok();
}

Status Core::remove_site(const std::string& name) {
  const auto it = sites_.find(name);
  if (it == sites_.end()) return not_found("no site '" + name + "'");
  FleetBatch b;
  b.delete_sites.push_back(name);
  for (const auto& [hash, t] : tokens_) {
    if (t.site == name) b.delete_tokens.push_back(hash);
  }
  if (auto st = persist(b); !st.is_ok()) return st;
  if (it->second.session) {
    const SessionId session = *it->second.session;
    sessions_.erase(session);
    v1::ToSite m;
    m.mutable_refused()->set_reason("site '" + name + "' was removed from the fleet");
    m.mutable_refused()->set_permanent(true);
    outbox_.send(session, m);
    outbox_.close(session);
  }
  if (it->second.report)
    reported_paths_ -= static_cast<std::size_t>(it->second.report->paths_size());
  sites_.erase(it);
  rotations_.erase(name);
  for (const auto& h : b.delete_tokens) tokens_.erase(h);
  touch(name);
  return Status::ok();
}

Status Core::update_site(FleetSite site) {
  const auto it = sites_.find(site.name);
  if (it == sites_.end()) return not_found("no site '" + site.name + "'");
  const auto& old = it->second.fleet.endpoints;
  if (site.endpoints.size() != old.size()) {
    return invalid_argument("endpoints: the site has " + std::to_string(old.size()) +
                            " endpoints; an update keeps them (the site's own file names them)");
  }
  for (std::size_t i = 0; i < old.size(); ++i) {
    if (site.endpoints[i].name != old[i].name) {
      return invalid_argument("endpoints[" + std::to_string(i) + "].name: '" + old[i].name +
                              "' is expected here (an update keeps the endpoints, in order)");
    }
  }
  for (const auto& [other_name, other] : sites_) {
    if (other_name == site.name) continue;
    if (auto st = overlap(site, other.fleet); !st.is_ok()) return st;
  }
  Site next = it->second;
  site.public_keys = next.fleet.public_keys;
  site.next_public_keys = next.fleet.next_public_keys;
  next.fleet = std::move(site);
  FleetBatch b;
  b.put_sites.push_back(record(next));
  if (auto st = persist(b); !st.is_ok()) return st;
  it->second = std::move(next);
  touch(it->first);
  return Status::ok();
}

Status Core::approve(const std::string& name) {
  const auto it = sites_.find(name);
  if (it == sites_.end()) return not_found("no site '" + name + "'");
  if (it->second.approved) return Status::ok();
  Site next = it->second;
  next.approved = true;
  FleetBatch b;
  b.put_sites.push_back(record(next));
  if (auto st = persist(b); !st.is_ok()) return st;
  it->second.approved = true;
  if (it->second.session) welcome(*it->second.session, it->second);
  touch(name);
  return Status::ok();
}

void Core::set_settings(FleetSettings settings) {
  settings_ = std::move(settings);
  touch("");
}

void Core::recompile_all() {
  compiler_.invalidate();
  touch("");
}

Result<std::string> Core::create_token(const std::string& site, std::int64_t ttl_ns,
                                       std::int64_t* expires_unix_ns) {
  const auto it = sites_.find(site);
  if (it == sites_.end()) return not_found("no site '" + site + "' (add it first)");
  if (it->second.enrolled) return failed_precondition("site '" + site + "' is enrolled already");
  const std::int64_t now = env_.wall_ns();
  FleetBatch b;
  for (auto t = tokens_.begin(); t != tokens_.end();) {
    if (t->second.expires_ns <= now) b.delete_tokens.push_back(t->first);
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
  const Token t{site, now + (ttl_ns == 0 ? options_.default_token_ttl_ns : ttl_ns)};
  fleet::Token r;
  r.set_hash(token_hash(token));
  r.set_site(site);
  r.set_expires_unix_ns(t.expires_ns);
  b.put_tokens.push_back(r);
  if (auto st = persist(b); !st.is_ok()) return st;
  tokens_[r.hash()] = t;
  if (expires_unix_ns != nullptr) *expires_unix_ns = t.expires_ns;
  return token;
}

Status Core::enrol(const std::string& token, const std::string& site,
                   const std::array<std::uint8_t, 32>& identity,
                   const std::vector<std::string>& endpoint_keys) {
  std::int64_t now = env_.now_ns();
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
  now = env_.wall_ns();
  if (t->second.expires_ns <= now) {
    FleetBatch gone;
    gone.delete_tokens.push_back(t->first);
    (void)persist(gone);
    tokens_.erase(t);
    return refuse("the token expired");
  }
  if (t->second.site != site) return refuse("the token is for another site");
  auto it = sites_.find(site);
  if (it == sites_.end()) return refuse("the site was removed");
  Site& s = it->second;
  if (!endpoint_keys.empty() && endpoint_keys.size() != s.fleet.endpoints.size()) {
    return invalid_argument("enrolment: " + std::to_string(endpoint_keys.size()) +
                            " endpoint keys for " + std::to_string(s.fleet.endpoints.size()) +
                            " endpoints");
  }
  for (std::size_t i = 0; i < endpoint_keys.size(); ++i) {
    auto k = mesh::key_from_base64(endpoint_keys[i], "endpoint_keys[" + std::to_string(i) + "]");
    if (!k.is_ok()) return k.status();
  }
  Site next = s;
  next.enrolled = true;
  next.identity = identity;
  if (!endpoint_keys.empty()) next.fleet.public_keys = endpoint_keys;
  FleetBatch b;
  b.put_sites.push_back(record(next));
  b.delete_tokens.push_back(t->first);  // burnt
  if (auto st = persist(b); !st.is_ok()) return st;
  tokens_.erase(t);
  s = std::move(next);
  touch(site);
  return Status::ok();
}

Status Core::receive(SessionId session, const Identity& identity, const v1::FromSite& m) {
  Status st = Status::ok();
  bool hello = false;
  switch (m.what_case()) {
    case v1::FromSite::kEnrol:
      if (sessions_.count(session)) {
        st = failed_precondition("enrol: the session is already a site's");
        break;
      }
      st = enrol(m.enrol().token(), m.enrol().site(), identity, {});
      if (st.is_ok()) st = connect(session, m.enrol().site(), identity, "");
      hello = true;
      break;
    case v1::FromSite::kHello:
      if (sessions_.count(session)) {
        st = failed_precondition("hello: the session is already a site's");
        break;
      }
      st = connect(session, m.hello().site(), identity, m.hello().have_hash(),
                   m.hello().have_version());
      hello = true;
      break;
    case v1::FromSite::kKeys:
      st = report_keys(session, m.keys());
      break;
    case v1::FromSite::kAck:
      st = acknowledge(session, m.ack().version(), m.ack().hash(), m.ack().error());
      break;
    case v1::FromSite::kReport:
      st = report(session, m.report());
      break;
    default:
      st = invalid_argument("an empty or unknown message");
  }
  if (st.is_ok()) return st;
  ++counters_.messages_refused;
  // A session that fails its first message (or speaks out of turn) is closed; whether another
  // attempt can succeed is said (a wrong token cannot; a full table or the store can).
  v1::ToSite r;
  r.mutable_refused()->set_reason(st.message());
  r.mutable_refused()->set_permanent(hello && st.code() == Code::kFailedPrecondition);
  outbox_.send(session, r);
  disconnect(session);
  outbox_.close(session);
  return st;
}

Status Core::report_keys(SessionId session, const v1::Keys& keys) {
  Site* s = site_of(session);
  if (s == nullptr) return failed_precondition("keys: the session has not said which site it is");
  if (keys.keys_size() > static_cast<int>(s->fleet.endpoints.size())) {
    return invalid_argument("keys: more keys than the site has endpoints");
  }
  Site next = *s;
  for (int i = 0; i < keys.keys_size(); ++i) {
    const auto& k = keys.keys(i);
    const auto e = std::find_if(s->fleet.endpoints.begin(), s->fleet.endpoints.end(),
                                [&](const model::Endpoint& x) { return x.name == k.endpoint(); });
    if (e == s->fleet.endpoints.end()) {
      return invalid_argument("keys[" + std::to_string(i) + "]: site '" + s->fleet.name +
                              "' has no endpoint '" + k.endpoint() + "'");
    }
    if (auto v = mesh::key_from_base64(k.public_key(), "keys[" + std::to_string(i) + "]");
        !v.is_ok()) {
      return v.status();
    }
    const auto at = static_cast<std::size_t>(e - s->fleet.endpoints.begin());
    next.fleet.next_public_keys.resize(next.fleet.endpoints.size());
    if (!k.next_public_key().empty()) {
      if (auto v = mesh::key_from_base64(k.next_public_key(),
                                         "keys[" + std::to_string(i) + "].next_public_key");
          !v.is_ok()) {
        return v.status();
      }
      if (k.next_public_key() == k.public_key()) {
        return invalid_argument("keys[" + std::to_string(i) + "]: the next key is the key");
      }
    }
    next.fleet.public_keys[at] = k.public_key();
    next.fleet.next_public_keys[at] = k.next_public_key();
  }
  bool newly_staged = false;
  if (auto r = rotations_.find(s->fleet.name); r != rotations_.end()) {
    const auto e =
        std::find_if(s->fleet.endpoints.begin(), s->fleet.endpoints.end(),
                     [&](const model::Endpoint& x) { return x.name == r->second.endpoint; });
    const auto at = static_cast<std::size_t>(e - s->fleet.endpoints.begin());
    if (!r->second.staged && !next.fleet.next_public_keys[at].empty()) {
      r->second.staged = true;
      newly_staged = true;
    }
    if (r->second.committing && next.fleet.next_public_keys[at].empty()) {
      rotations_.erase(r);  // committed: the new key is the key; its next compile reaches all
    }
  }
  if (next.fleet.public_keys == s->fleet.public_keys &&
      next.fleet.next_public_keys == s->fleet.next_public_keys) {
    // The same next key as before (staged by an earlier rotation that did not finish): the peers
    // may have it already; a compile records which versions to wait for.
    if (newly_staged) touch(s->fleet.name);
    return Status::ok();
  }
  FleetBatch b;
  b.put_sites.push_back(record(next));
  if (auto st = persist(b); !st.is_ok()) return st;
  s->fleet.public_keys = next.fleet.public_keys;
  s->fleet.next_public_keys = next.fleet.next_public_keys;
  touch(s->fleet.name);
  return Status::ok();
}

Status Core::report(SessionId session, const v1::Report& r) {
  Site* s = site_of(session);
  if (s == nullptr) return failed_precondition("report: the session has not said which site it is");
  const auto max = static_cast<int>(options_.max_report_items);
  if (r.paths_size() > max || r.classes_size() > max) {
    return resource_exhausted("report: more than " + std::to_string(max) + " paths or classes");
  }
  if (r.decisions_size() > 64) return resource_exhausted("report: more than 64 decisions");
  for (const auto& p : r.paths()) {
    if (p.liveness_size() > 8) {
      return resource_exhausted("report: path " + std::to_string(p.id()) +
                                " has more than 8 liveness sessions");
    }
  }
  for (const auto& d : r.decisions()) {
    if (d.candidates_size() > 16) {
      return resource_exhausted("report: a decision has more than 16 candidates");
    }
  }
  // A site speaks for itself: only paths of its current config (by id) are kept. Others are a
  // report sent before it applied a new config (a path just removed), or a lie: dropped.
  const site::SiteConfig* config = compiler_.config(s->fleet.name);
  std::set<std::uint64_t> own;
  if (config) {
    for (const auto& p : config->plan().paths()) own.insert(p.id());
  }
  s->last_seen_ns = env_.now_ns();
  std::map<std::uint64_t, std::string> previous;  // path id -> state
  if (s->report) {
    for (const auto& p : s->report->paths()) previous[p.id()] = p.state();
  }
  if (s->report) reported_paths_ -= static_cast<std::size_t>(s->report->paths_size());
  s->report = r;
  auto* paths = s->report->mutable_paths();
  const auto kept = std::remove_if(paths->begin(), paths->end(),
                                   [&](const v1::PathReport& p) { return own.count(p.id()) == 0; });
  counters_.report_paths_dropped += static_cast<std::uint64_t>(paths->end() - kept);
  paths->erase(kept, paths->end());
  fleet::PathCounts counts;
  counts.set_unix_ns(env_.wall_ns());
  for (const auto& p : s->report->paths()) {
    if (p.state() == "up")
      counts.set_up(counts.up() + 1);
    else if (p.state() == "degraded")
      counts.set_degraded(counts.degraded() + 1);
    else
      counts.set_down(counts.down() + 1);
  }
  for (const auto& p : s->report->paths()) {
    const auto was = previous.find(p.id());
    if (was != previous.end() && was->second == p.state()) continue;
    fleet::FleetEvent e;
    e.set_kind("path.state");
    e.set_site(s->fleet.name);
    e.set_path(p.name());
    e.set_state(p.state());
    if (was != previous.end()) e.set_previous(was->second);
    emit(std::move(e));
  }
  s->history.push_back(counts);
  while (s->history.size() > kHistory) s->history.pop_front();
  record_samples(*s);
  for (const auto& d : r.decisions()) {
    fleet::FleetEvent e;
    e.set_kind("decision");
    e.set_site(s->fleet.name);
    *e.mutable_decision() = decision_view(s->fleet.name, d);
    emit(std::move(e));
    s->decisions.push_back(d);
    while (s->decisions.size() > kDecisions) s->decisions.pop_front();
  }
  s->report->clear_decisions();  // kept once, in the bounded log
  return Status::ok();
}

void Core::record_samples(Site& s) {
  reported_paths_ += static_cast<std::size_t>(s.report->paths_size());
  const std::size_t keep = std::clamp<std::size_t>(
      kPathSampleBudget / std::max<std::size_t>(1, reported_paths_), kMinPathSamples, kHistory);
  const auto measured = [](bool has, double v) {
    return has ? static_cast<float>(v) : std::numeric_limits<float>::quiet_NaN();
  };
  std::map<std::uint64_t, std::deque<Site::Sample>> next;
  for (const auto& p : s.report->paths()) {
    auto& q = next[p.id()];
    if (auto it = s.path_samples.find(p.id()); it != s.path_samples.end())
      q = std::move(it->second);
    Site::Sample x;
    x.unix_ns = env_.wall_ns();
    x.state = p.state() == "up" ? 2 : p.state() == "degraded" ? 1 : 0;
    x.score = measured(p.has_score(), p.score());
    x.rtt_ms = measured(p.has_rtt_ms(), p.rtt_ms());
    x.jitter_ms = measured(p.has_jitter_ms(), p.jitter_ms());
    x.loss_pct = measured(p.has_loss_pct(), p.loss_pct());
    q.push_back(x);
    while (q.size() > keep) q.pop_front();
  }
  s.path_samples = std::move(next);  // paths no longer reported leave with their samples
}

std::optional<std::vector<v1::ClassReport>> Core::selections(const std::string& site) const {
  const auto it = sites_.find(site);
  if (it == sites_.end()) return std::nullopt;
  if (!it->second.report) return std::vector<v1::ClassReport>{};
  return std::vector<v1::ClassReport>(it->second.report->classes().begin(),
                                      it->second.report->classes().end());
}

std::optional<std::vector<fleet::PathHistory>> Core::path_history(const std::string& site) const {
  const auto it = sites_.find(site);
  if (it == sites_.end()) return std::nullopt;
  std::vector<fleet::PathHistory> out;
  if (!it->second.report) return out;
  static constexpr const char* kStates[] = {"down", "degraded", "up"};
  for (const auto& p : it->second.report->paths()) {
    fleet::PathHistory h;
    h.set_id(p.id());
    h.set_name(p.name());
    if (const auto q = it->second.path_samples.find(p.id()); q != it->second.path_samples.end()) {
      for (const auto& x : q->second) {
        auto* v = h.add_samples();
        v->set_unix_ns(x.unix_ns);
        v->set_state(kStates[x.state]);
        if (!std::isnan(x.score)) v->set_score(x.score);
        if (!std::isnan(x.rtt_ms)) v->set_rtt_ms(x.rtt_ms);
        if (!std::isnan(x.jitter_ms)) v->set_jitter_ms(x.jitter_ms);
        if (!std::isnan(x.loss_pct)) v->set_loss_pct(x.loss_pct);
      }
    }
    out.push_back(std::move(h));
  }
  return out;
}

fleet::DecisionView Core::decision_view(const std::string& site, const v1::DecisionReport& d) {
  fleet::DecisionView v;
  v.set_site(site);
  v.set_unix_ns(d.unix_ns());
  v.set_class_name(d.class_name());
  v.set_remote_site(d.remote_site());
  v.set_from_path(d.from_path());
  v.set_to_path(d.to_path());
  v.set_reason(d.reason());
  v.set_why(d.why());
  if (d.has_fault_age_ms()) v.set_fault_age_ms(d.fault_age_ms());
  v.set_flows_moved(d.flows_moved());
  *v.mutable_candidates() = d.candidates();
  return v;
}

fleet::Decisions Core::decision_views(const std::string& site, std::uint32_t limit) const {
  fleet::Decisions out;
  if (limit == 0) limit = 50;
  std::vector<fleet::DecisionView> all;
  for (const auto& [name, s] : sites_) {
    if (!site.empty() && name != site) continue;
    for (const auto& d : s.decisions) all.push_back(decision_view(name, d));
  }
  std::sort(all.begin(), all.end(), [](const fleet::DecisionView& a, const fleet::DecisionView& b) {
    return a.unix_ns() > b.unix_ns();
  });
  for (std::size_t i = 0; i < all.size() && i < limit; ++i) *out.add_decisions() = all[i];
  return out;
}

Status Core::connect(SessionId session, const std::string& site,
                     const std::array<std::uint8_t, 32>& identity, const std::string& have_hash,
                     std::uint64_t have_version) {
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
  // What it says it runs counts as acknowledged when it is what it should run.
  s.applied_version = have_hash == s.hash ? std::min(have_version, s.version) : 0;
  fleet::FleetEvent e;
  e.set_kind("site.connected");
  e.set_site(site);
  emit(std::move(e));
  welcome(session, s);
  // Resumed: nothing is sent when the site runs what it should.
  if (s.approved && !s.hash.empty() && have_hash != s.hash) push(s);
  // A rotation the site's last session left halfway is driven on from where it stopped: the
  // stage or the commit again (both are idempotent on the site), or the wait for the peers.
  if (const auto r = rotations_.find(site); r != rotations_.end()) {
    if (!r->second.staged || r->second.committing) {
      v1::ToSite m;
      m.mutable_rotate()->set_endpoint(r->second.endpoint);
      m.mutable_rotate()->set_commit(r->second.committing);
      outbox_.send(session, m);
    } else {
      advance_rotations();
    }
  }
  return Status::ok();
}

void Core::welcome(SessionId session, const Site& s) {
  v1::ToSite m;
  auto* w = m.mutable_welcome();
  for (const auto& e : s.fleet.endpoints) w->add_endpoints(e.name);
  w->set_pending_approval(!s.approved);
  outbox_.send(session, m);
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
  s->last_error = error;
  auto said = [&](const std::string& kind, const std::string& state, const std::string& message) {
    fleet::FleetEvent e;
    e.set_kind(kind);
    e.set_site(s->fleet.name);
    e.set_state(state);
    e.set_message(message);
    emit(std::move(e));
  };
  if (!error.empty()) {
    // It refused the config (and still runs what it ran): sending it again cannot help. The
    // operator sees the error; the next change of the site's config is sent as usual.
    s->applied_hash = hash;
    if (version == s->version) s->drift = true;
    said("site.apply_failed", "drift", "version " + std::to_string(version) + ": " + error);
    return Status::ok();
  }
  s->applied_version = version;
  s->applied_hash = hash;
  if (version < s->version) return Status::ok();  // an older push; the newer one is on its way
  if (hash == s->hash) {
    s->resends = 0;
    const bool was_drifting = s->drift;
    s->drift = false;
    said("site.applied", was_drifting ? "in-sync" : "", "version " + std::to_string(version));
    advance_rotations();
    return Status::ok();
  }
  // It runs something else than it was sent: send it again, a bounded number of times.
  if (s->resends >= options_.max_resends) {
    if (!s->drift) {
      said("site.drift", "drift",
           "runs " + hash + " after " + std::to_string(s->resends) + " resends of " + s->hash);
    }
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
    fleet::FleetEvent e;
    e.set_kind("site.disconnected");
    e.set_site(it->second);
    emit(std::move(e));
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
    if (s.enrolled && s.approved) fleet.push_back(s.fleet);
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
  std::vector<Site*> bumped;
  FleetBatch b;
  for (const auto& name : changed.value()) {
    auto it = sites_.find(name);
    if (it == sites_.end()) continue;
    Site& s = it->second;
    if (*compiler_.hash(name) == s.hash) continue;  // what it had (a restarted controller)
    ++s.version;
    s.hash = *compiler_.hash(name);
    s.resends = 0;
    s.drift = false;
    bumped.push_back(&s);
    b.put_sites.push_back(record(s));
  }
  if (!b.put_sites.empty() || !changed.value().empty()) {
    const CompilerMemory mem = compiler_.memory();
    fleet::CompilerState c;
    for (const auto& [name, id] : mem.path_ids) (*c.mutable_path_ids())[name] = id;
    c.set_next_path_id(mem.next_path_id);
    for (const auto& [ep, a] : mem.overlay) {
      auto* o = c.add_overlay();
      o->set_endpoint(ep);
      o->set_ipv4(a.ipv4.to_string());
      if (a.ipv6) o->set_ipv6(a.ipv6->to_string());
    }
    b.compiler = std::move(c);
  }
  // Versions are written before they are sent: a restarted controller never sends a version
  // number twice for two contents. A failed write still sends (the sites' data plane comes
  // first); the next compile writes again.
  if (auto st = persist(b); !st.is_ok()) ++counters_.store_errors;
  // A staged rotation waits for the peers whose configs now carry the next key.
  for (auto& [name, r] : rotations_) {
    if (!r.staged || r.committing || r.recorded) continue;
    for (const auto& peer : compiler_.neighbours(name)) {
      if (const auto p = sites_.find(peer); p != sites_.end()) r.peers[peer] = p->second.version;
    }
    r.recorded = true;  // a site without peers commits at once
  }
  for (Site* s : bumped) {
    if (s->session) push(*s);
  }
  advance_rotations();
}

void Core::advance_rotations() {
  for (auto& [name, r] : rotations_) {
    if (!r.staged || r.committing || !r.recorded) continue;
    bool all = true;
    for (const auto& [peer, version] : r.peers) {
      const auto p = sites_.find(peer);
      if (p == sites_.end()) continue;  // removed meanwhile
      if (p->second.applied_version < version) all = false;
    }
    const auto it = sites_.find(name);
    if (!all || it == sites_.end() || !it->second.session) continue;
    r.committing = true;
    v1::ToSite m;
    m.mutable_rotate()->set_endpoint(r.endpoint);
    m.mutable_rotate()->set_commit(true);
    outbox_.send(*it->second.session, m);
  }
}

Status Core::rotate_key(const std::string& name, const std::string& endpoint) {
  const auto it = sites_.find(name);
  if (it == sites_.end()) return not_found("no site '" + name + "'");
  Site& s = it->second;
  const bool has = std::any_of(s.fleet.endpoints.begin(), s.fleet.endpoints.end(),
                               [&](const model::Endpoint& e) { return e.name == endpoint; });
  if (!has) return not_found("site '" + name + "' has no endpoint '" + endpoint + "'");
  if (!s.session || compiler_.config(name) == nullptr) {
    return failed_precondition("site '" + name +
                               "' is not connected with a config: a rotation needs it online");
  }
  if (rotations_.count(name)) {
    return failed_precondition("site '" + name + "' is rotating '" + rotations_[name].endpoint +
                               "' already");
  }
  Rotation r;
  r.endpoint = endpoint;
  rotations_[name] = r;
  v1::ToSite m;
  m.mutable_rotate()->set_endpoint(endpoint);
  outbox_.send(*s.session, m);
  return Status::ok();
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
  v.approved = s.approved;
  v.last_error = s.last_error;
  return v;
}

std::vector<SiteStatus> Core::statuses() const {
  std::vector<SiteStatus> out;
  for (const auto& [name, s] : sites_) out.push_back(*status(name));
  return out;
}

std::optional<std::string> Core::session_site(SessionId session) const {
  const auto it = sessions_.find(session);
  if (it == sessions_.end()) return std::nullopt;
  return it->second;
}

std::int64_t Core::to_unix(std::int64_t mono_ns) const {
  return mono_ns == 0 ? 0 : env_.wall_ns() - (env_.now_ns() - mono_ns);
}

std::optional<fleet::SiteView> Core::site_view(const std::string& name) const {
  const auto it = sites_.find(name);
  if (it == sites_.end()) return std::nullopt;
  const Site& s = it->second;
  fleet::SiteView v;
  v.set_name(name);
  for (const auto& e : s.fleet.endpoints) *v.add_endpoints() = endpoint_record(e);
  for (const auto& p : s.fleet.subnets) v.add_subnets(p.to_string());
  v.set_enrolled(s.enrolled);
  v.set_approved(s.approved);
  v.set_in_mesh(compiler_.config(name) != nullptr);
  const std::int64_t now = env_.wall_ns();
  v.set_tokens(
      static_cast<std::uint32_t>(std::count_if(tokens_.begin(), tokens_.end(), [&](const auto& t) {
        return t.second.site == name && t.second.expires_ns > now;
      })));
  v.set_connected(s.session.has_value());
  v.set_version(s.version);
  v.set_hash(s.hash);
  v.set_applied_version(s.applied_version);
  v.set_applied_hash(s.applied_hash);
  v.set_drift(s.drift);
  v.set_last_seen_unix_ns(to_unix(s.last_seen_ns));
  v.set_last_error(s.last_error);
  if (const auto r = rotations_.find(name); r != rotations_.end()) {
    v.set_rotation(r->second.endpoint + ": " +
                   (r->second.committing ? "committing"
                    : r->second.staged   ? "next key with the peers"
                                         : "staging"));
  }
  for (const auto& h : s.history) *v.add_history() = h;
  if (!s.history.empty()) {  // the last report's counts
    v.set_paths_up(s.history.back().up());
    v.set_paths_degraded(s.history.back().degraded());
    v.set_paths_down(s.history.back().down());
  }
  return v;
}

fleet::Sites Core::site_views() const {
  fleet::Sites out;
  for (const auto& [name, s] : sites_) *out.add_sites() = *site_view(name);
  return out;
}

fleet::Policy policy_record(const policy::NetworkPolicy& np) {
  fleet::Policy p;
  p.set_ns(np.namespace_);
  p.set_name(np.name);
  p.set_spec_json(np.spec_json);
  p.set_enabled(np.enabled);
  p.set_priority(np.priority);
  return p;
}

fleet::Paths Core::path_views(const std::string& site) const {
  fleet::Paths out;
  for (const auto& [name, s] : sites_) {
    if (!s.report || (!site.empty() && name != site)) continue;
    for (const auto& p : s.report->paths()) {
      auto* v = out.add_paths();
      v->set_site(name);
      v->set_id(p.id());
      v->set_name(p.name());
      v->set_state(p.state());
      if (p.has_score()) v->set_score(p.score());
      if (p.has_rtt_ms()) v->set_rtt_ms(p.rtt_ms());
      if (p.has_jitter_ms()) v->set_jitter_ms(p.jitter_ms());
      if (p.has_loss_pct()) v->set_loss_pct(p.loss_pct());
      v->set_peer_site(p.peer_site());
      v->set_local_endpoint(p.local_endpoint());
      v->set_remote_endpoint(p.remote_endpoint());
      if (p.has_tunnel()) *v->mutable_tunnel() = p.tunnel();
      *v->mutable_liveness() = p.liveness();
    }
  }
  return out;
}

std::optional<fleet::Site> Core::site_record(const std::string& site) const {
  const auto it = sites_.find(site);
  if (it == sites_.end()) return std::nullopt;
  return record(it->second);
}

void Core::emit(fleet::FleetEvent e) {
  if (!events_) return;
  e.set_unix_ns(env_.wall_ns());
  events_(e);
}

Status Core::persist(const FleetBatch& given, const fleet::Settings* settings_before) {
  if (given.empty()) return Status::ok();
  FleetBatch audited;
  if (auditor_ && !given.empty()) {
    FleetBatch before;
    for (const auto* names : {&given.delete_sites}) {
      for (const auto& n : *names) {
        if (auto r = site_record(n)) before.put_sites.push_back(*r);
      }
    }
    for (const auto& s : given.put_sites) {
      if (auto r = site_record(s.name())) before.put_sites.push_back(*r);
    }
    if (given.settings) before.settings = settings_before ? *settings_before : settings_record_;
    audited = given;
    auditor_(audited, before);
  }
  const FleetBatch& batch = auditor_ && !given.empty() ? audited : given;
  if (store_ == nullptr || batch.empty()) return Status::ok();
  auto st = store_->write(batch);
  if (!st.is_ok()) {
    ++counters_.store_errors;
    return unavailable("the fleet store refused the change, nothing changed: " + st.message());
  }
  return st;
}

fleet::Site Core::record(const Site& s) const {
  fleet::Site r;
  r.set_name(s.fleet.name);
  for (const auto& e : s.fleet.endpoints) *r.add_endpoints() = endpoint_record(e);
  for (const auto& p : s.fleet.subnets) r.add_subnets(p.to_string());
  for (const auto& k : s.fleet.public_keys) r.add_public_keys(k);
  for (const auto& k : s.fleet.next_public_keys) r.add_next_public_keys(k);
  r.set_enrolled(s.enrolled);
  r.set_approved(s.approved);
  if (s.enrolled) r.set_identity(s.identity.data(), s.identity.size());
  r.set_version(s.version);
  r.set_hash(s.hash);
  return r;
}

Status Core::apply_settings(const fleet::Settings& r) {
  FleetSettings next = settings_;
  auto kind = mesh::parse_topology(r.topology().empty() ? "full-mesh" : r.topology());
  if (!kind.is_ok()) return invalid_argument("topology: " + kind.status().message());
  next.topology.kind = kind.value();
  next.topology.hubs.assign(r.hubs().begin(), r.hubs().end());
  for (const auto& h : next.topology.hubs) {
    if (auto st = model::validate_name("hubs", h, 63); !st.is_ok()) return st;
  }
  if (next.topology.kind == mesh::TopologyKind::kHubSpoke && next.topology.hubs.empty()) {
    return invalid_argument("hubs: hub-spoke needs at least one hub");
  }
  next.links.clear();
  if (r.links_size() > static_cast<int>(mesh::kMaxLinks)) {
    return invalid_argument("links: at most " + std::to_string(mesh::kMaxLinks));
  }
  for (int i = 0; i < r.links_size(); ++i) {
    const auto& l = r.links(i);
    const std::string at = "links[" + std::to_string(i) + "]";
    for (const auto* name : {&l.a_site(), &l.b_site()}) {
      if (auto st = model::validate_name(at, *name, 63); !st.is_ok()) return st;
    }
    for (const auto* name : {&l.a_endpoint(), &l.b_endpoint()}) {
      if (name->empty()) continue;
      if (auto st = model::validate_name(at, *name, 32); !st.is_ok()) return st;
    }
    if (l.a_site() == l.b_site()) {
      return invalid_argument(at + ": a link joins two different sites ('" + l.a_site() +
                              "' twice)");
    }
    next.links.push_back({l.a_site(), l.a_endpoint(), l.b_site(), l.b_endpoint()});
  }
  if ((next.topology.kind == mesh::TopologyKind::kExplicit) == next.links.empty()) {
    return invalid_argument(next.links.empty()
                                ? "links: an explicit topology needs links (-f with links:)"
                                : "links: only an explicit topology has links");
  }
  next.topology.k = r.k() == 0 ? 2 : static_cast<int>(r.k());
  if (next.topology.k > 64) return invalid_argument("k: at most 64");
  next.topology.spoke_summary.clear();
  for (int i = 0; i < r.spoke_summary_size(); ++i) {
    auto p = model::IpPrefix::parse(r.spoke_summary(i));
    if (!p.is_ok()) {
      return invalid_argument("spoke_summary[" + std::to_string(i) + "]: " + p.status().message());
    }
    next.topology.spoke_summary.push_back(p.value());
  }
  next.overlay = mesh::OverlaySettings();
  if (!r.overlay_ipv4().empty()) {
    auto p = model::IpPrefix::parse(r.overlay_ipv4());
    if (!p.is_ok() || !p.value().is_v4() || p.value().length() > 30) {
      return invalid_argument("overlay_ipv4: expected an IPv4 prefix of length 0-30");
    }
    next.overlay.ipv4 = p.value();
  }
  if (r.overlay_ipv6() == "none") {
    next.overlay.ipv6.reset();
  } else if (!r.overlay_ipv6().empty()) {
    auto p = model::IpPrefix::parse(r.overlay_ipv6());
    if (!p.is_ok() || p.value().is_v4() || p.value().length() > 120) {
      return invalid_argument("overlay_ipv6: expected an IPv6 prefix of length 0-120 or 'none'");
    }
    next.overlay.ipv6 = p.value();
  }
  if (r.has_persistent_keepalive()) {
    if (r.persistent_keepalive() > 65535) {
      return invalid_argument("persistent_keepalive: at most 65535");
    }
    next.overlay.persistent_keepalive = static_cast<std::uint16_t>(r.persistent_keepalive());
  }
  next.rules = mesh::EndpointRules::defaults();
  for (int i = 0; i < r.rules_size(); ++i) {
    const auto& tr = r.rules(i);
    const std::string at = "rules[" + std::to_string(i) + "]";
    auto t = model::parse_interface_type(tr.type());
    if (!t.is_ok()) return invalid_argument(at + ".type: " + t.status().message());
    mesh::TypeRule rule;
    rule.peers_mask = 0;
    for (const auto& peer : tr.peers()) {
      auto pt = model::parse_interface_type(peer);
      if (!pt.is_ok()) return invalid_argument(at + ".peers: " + pt.status().message());
      rule.peers_mask |= static_cast<std::uint8_t>(1U << static_cast<int>(pt.value()));
    }
    rule.hubs_only = tr.hubs_only();
    next.rules.by_type[static_cast<std::size_t>(t.value())] = rule;
  }
  // The fleet's policies, as the document every site's policy plugins load (validated as they
  // will: every policy rebuilt from its stored spec, the inventory parsed).
  if (r.policies_size() > static_cast<int>(kMaxPolicies)) {
    return invalid_argument("policies: at most " + std::to_string(kMaxPolicies));
  }
  if (r.inventory().size() > kMaxInventoryBytes) {
    return invalid_argument("inventory: at most " + std::to_string(kMaxInventoryBytes) + " bytes");
  }
  std::vector<model::NetworkPolicyRecord> rows;
  for (int i = 0; i < r.policies_size(); ++i) {
    const auto& p = r.policies(i);
    auto np =
        policy::policy_from_spec_json(p.name(), p.ns(), p.spec_json(), p.enabled(), p.priority());
    if (!np.is_ok()) {
      return invalid_argument("policies[" + std::to_string(i) + "] (" + p.ns() + "/" + p.name() +
                              "): " + np.status().message());
    }
    model::NetworkPolicyRecord row;
    row.name = p.name();
    row.namespace_ = p.ns();
    row.spec_json = p.spec_json();
    row.enabled = p.enabled();
    row.priority = p.priority();
    rows.push_back(std::move(row));
  }
  if (!r.inventory().empty()) {
    auto inv = policy::parse_manifests(r.inventory(), "inventory", policy::Accept::kInventory);
    if (!inv.is_ok()) return inv.status();
  }
  next.base.set_fleet_policies(
      rows.empty() && r.inventory().empty()
          ? std::string()
          : policy::stored_policies_document(rows) +
                (r.inventory().empty() ? std::string() : "---\n" + r.inventory() + "\n"));
  next.base.clear_plugins();
  next.site_plugins.clear();
  if (r.plugins_size() > static_cast<int>(kMaxPluginSettings)) {
    return invalid_argument("plugins: at most " + std::to_string(kMaxPluginSettings));
  }
  for (int i = 0; i < r.plugins_size(); ++i) {
    const auto& p = r.plugins(i);
    const std::string at = "plugins[" + std::to_string(i) + "]";
    if (auto st = model::validate_name(at + ".instance", p.instance(), 63); !st.is_ok()) return st;
    if (auto st = model::validate_name(at + ".plugin", p.plugin(), 63); !st.is_ok()) return st;
    if (p.config().size() > kMaxPluginConfigBytes) {
      return invalid_argument(at + ".config: at most " + std::to_string(kMaxPluginConfigBytes) +
                              " bytes");
    }
    site::v1::PluginInstance inst;
    inst.set_plugin(p.plugin());
    inst.set_instance(p.instance());
    inst.set_config(p.config());
    if (p.site().empty()) {
      *next.base.add_plugins() = std::move(inst);
    } else {
      next.site_plugins[p.site()].push_back(std::move(inst));
    }
  }
  next.base.clear_runtime();
  if (r.classes_given()) {
    auto classes = site::classes_from_proto(r.classes());
    if (!classes.is_ok()) return classes.status();
    *next.base.mutable_runtime()->mutable_classes() = r.classes();
  }
  settings_ = std::move(next);
  settings_record_ = r;
  return Status::ok();
}

Status Core::change_settings(const fleet::Settings& next) {
  const fleet::Settings old = settings_record_;
  if (auto st = apply_settings(next); !st.is_ok()) return st;
  FleetBatch b;
  b.settings = next;
  if (auto st = persist(b, &old); !st.is_ok()) {
    (void)apply_settings(old);  // what was in force comes back
    return st;
  }
  touch("");
  return Status::ok();
}

Status Core::load() {
  if (store_ == nullptr) return Status::ok();
  auto snap = store_->load();
  if (!snap.is_ok()) return snap.status();
  return load(snap.value());
}

Status Core::load(const FleetSnapshot& v) {
  if (v.settings) {
    if (auto st = apply_settings(*v.settings); !st.is_ok()) {
      return internal_error("the stored settings: " + st.message());
    }
  }
  if (v.compiler) {
    CompilerMemory mem;
    for (const auto& [name, id] : v.compiler->path_ids()) mem.path_ids[name] = id;
    mem.next_path_id = v.compiler->next_path_id();
    for (const auto& o : v.compiler->overlay()) {
      auto a4 = model::IpAddress::parse(o.ipv4());
      if (!a4.is_ok()) continue;  // compiled again
      mesh::OverlayAddress a{a4.value(), std::nullopt};
      if (!o.ipv6().empty()) {
        if (auto a6 = model::IpAddress::parse(o.ipv6()); a6.is_ok()) a.ipv6 = a6.value();
      }
      mem.overlay[o.endpoint()] = a;
    }
    compiler_.restore(std::move(mem));
  }
  for (const auto& r : v.sites) {
    auto f = fleet_site_of(r, "stored site '" + r.name() + "'");
    if (!f.is_ok()) return internal_error(f.status().message());
    Site s;
    s.fleet = std::move(f).value();
    s.enrolled = r.enrolled();
    s.approved = r.approved();
    if (r.identity().size() == s.identity.size()) {
      std::copy(r.identity().begin(), r.identity().end(), s.identity.begin());
    }
    s.version = r.version();
    s.hash = r.hash();
    sites_[s.fleet.name] = std::move(s);
  }
  for (const auto& t : v.tokens) tokens_[t.hash()] = {t.site(), t.expires_unix_ns()};
  touch("");
  flush();  // the same inputs compile to the same hashes: no version moves, nothing is sent
  return Status::ok();
}

fleet::Response Core::handle(const fleet::Request& q) {
  fleet::Response r;
  auto fail = [&r](const Status& st) {
    r.mutable_error()->set_code(std::string(code_name(st.code())));
    r.mutable_error()->set_message(st.message());
    return r;
  };
  auto done = [&r](const std::string& m) {
    r.mutable_done()->set_message(m);
    return r;
  };
  switch (q.what_case()) {
    case fleet::Request::kListSites:
      *r.mutable_sites() = site_views();
      return r;
    case fleet::Request::kFleetStatus:
      *r.mutable_status() = site_views();
      return r;
    case fleet::Request::kFleetPaths:
      *r.mutable_paths() = path_views();
      return r;
    case fleet::Request::kFleetDecisions:
      if (!q.fleet_decisions().site().empty() && !sites_.count(q.fleet_decisions().site())) {
        return fail(not_found("no site '" + q.fleet_decisions().site() + "'"));
      }
      *r.mutable_decisions() =
          decision_views(q.fleet_decisions().site(), std::min(q.fleet_decisions().limit(), 1000u));
      return r;
    case fleet::Request::kAddSites: {
      // All or none: every site is checked before the first is added.
      std::vector<FleetSite> add;
      std::set<std::string> names;
      for (int i = 0; i < q.add_sites().sites_size(); ++i) {
        auto f = fleet_site_of(q.add_sites().sites(i), "sites[" + std::to_string(i) + "]");
        if (!f.is_ok()) return fail(f.status());
        if (sites_.count(f.value().name) || !names.insert(f.value().name).second) {
          return fail(already_exists("sites[" + std::to_string(i) + "].name: site '" +
                                     f.value().name + "' exists already"));
        }
        for (const auto& earlier : add) {
          if (auto st = overlap(f.value(), earlier); !st.is_ok()) {
            return fail(invalid_argument("sites[" + std::to_string(i) + "]: " + st.message()));
          }
        }
        for (const auto& [other_name, other] : sites_) {
          if (auto st = overlap(f.value(), other.fleet); !st.is_ok()) {
            return fail(invalid_argument("sites[" + std::to_string(i) + "]: " + st.message()));
          }
        }
        add.push_back(std::move(f).value());
      }
      if (add.empty()) return fail(invalid_argument("sites: none given"));
      if (sites_.size() + add.size() > options_.max_sites) {
        return fail(resource_exhausted("sites: the bound of " + std::to_string(options_.max_sites) +
                                       " would be passed"));
      }
      for (auto& f : add) {
        if (auto st = add_site(std::move(f)); !st.is_ok()) return fail(st);
      }
      return done(std::to_string(add.size()) + " site(s) added");
    }
    case fleet::Request::kUpdateSite: {
      auto f = fleet_site_of(q.update_site().site(), "site");
      if (!f.is_ok()) return fail(invalid_argument(strip_where(f.status().message(), "site.")));
      const std::string name = f.value().name;
      if (auto st = update_site(std::move(f).value()); !st.is_ok()) return fail(st);
      return done("site '" + name + "' updated");
    }
    case fleet::Request::kRemoveSite:
      if (auto st = remove_site(q.remove_site().name()); !st.is_ok()) return fail(st);
      return done("site '" + q.remove_site().name() + "' removed");
    case fleet::Request::kApproveSite:
      if (auto st = approve(q.approve_site().name()); !st.is_ok()) return fail(st);
      return done("site '" + q.approve_site().name() + "' approved");
    case fleet::Request::kCreateToken: {
      const auto& c = q.create_token();
      if (c.ttl_s() < 0 || c.ttl_s() > 365LL * 24 * 3600) {
        return fail(invalid_argument("ttl: between 1 s and 365 days"));
      }
      std::int64_t expires = 0;
      auto t = create_token(c.site(), c.ttl_s() * 1'000'000'000, &expires);
      if (!t.is_ok()) return fail(t.status());
      auto* tr = r.mutable_token();
      tr->set_site(c.site());
      tr->set_token(t.value());
      tr->set_expires_unix_ns(expires);
      return r;
    }
    case fleet::Request::kRevokeTokens: {
      const std::string& site = q.revoke_tokens().site();
      if (!sites_.count(site)) return fail(not_found("no site '" + site + "'"));
      FleetBatch b;
      for (const auto& [hash, t] : tokens_) {
        if (t.site == site) b.delete_tokens.push_back(hash);
      }
      if (!b.delete_tokens.empty()) {
        if (auto st = persist(b); !st.is_ok()) return fail(st);
      }
      for (const auto& h : b.delete_tokens) tokens_.erase(h);
      return done(std::to_string(b.delete_tokens.size()) + " token(s) of site '" + site +
                  "' revoked");
    }
    case fleet::Request::kSetTopology: {
      if (q.set_topology().spoke_summary_size() > 0) {
        // The summary covers a spoke's own LAN: the Linux dataplane would steer LAN-to-LAN
        // traffic into a tunnel until it exempts the site's own subnets.
        return fail(invalid_argument(
            "spoke_summary: not yet for running sites (their dataplane does not exempt their "
            "own subnets from the summary); leave it out: every spoke then lists every other"));
      }
      for (const auto& h : q.set_topology().hubs()) {
        if (!sites_.count(h)) {
          return fail(
              invalid_argument("hubs: '" + h + "' is not a site of the fleet (add it first)"));
        }
      }
      for (int i = 0; i < q.set_topology().links_size(); ++i) {
        const auto& l = q.set_topology().links(i);
        for (const auto& [site, endpoint] :
             {std::pair(l.a_site(), l.a_endpoint()), std::pair(l.b_site(), l.b_endpoint())}) {
          const std::string at = "links[" + std::to_string(i) + "]: ";
          const auto it = sites_.find(site);
          if (it == sites_.end()) {
            return fail(
                invalid_argument(at + "'" + site + "' is not a site of the fleet (add it first)"));
          }
          const auto& eps = it->second.fleet.endpoints;
          if (!endpoint.empty() &&
              std::none_of(eps.begin(), eps.end(),
                           [&](const model::Endpoint& e) { return e.name == endpoint; })) {
            return fail(
                invalid_argument(at + "site '" + site + "' has no endpoint '" + endpoint + "'"));
          }
        }
      }
      fleet::Settings next = q.set_topology();
      if (!next.mesh_given()) {
        next.set_overlay_ipv4(settings_record_.overlay_ipv4());
        next.set_overlay_ipv6(settings_record_.overlay_ipv6());
        if (settings_record_.has_persistent_keepalive()) {
          next.set_persistent_keepalive(settings_record_.persistent_keepalive());
        }
        *next.mutable_rules() = settings_record_.rules();
      }
      next.set_mesh_given(false);
      // A topology changes the topology: the fleet's classes, policies, inventory and plugin
      // settings stay what they are.
      *next.mutable_classes() = settings_record_.classes();
      next.set_classes_given(settings_record_.classes_given());
      *next.mutable_policies() = settings_record_.policies();
      next.set_inventory(settings_record_.inventory());
      *next.mutable_plugins() = settings_record_.plugins();
      if (auto st = change_settings(next); !st.is_ok()) return fail(st);
      return done("topology " +
                  (next.topology().empty() ? std::string("full-mesh") : next.topology()));
    }
    case fleet::Request::kSetClasses: {
      fleet::Settings next = settings_record_;
      if (q.set_classes().clear()) {
        next.clear_classes();
        next.set_classes_given(false);
      } else {
        *next.mutable_classes() = q.set_classes().classes();
        next.set_classes_given(true);
      }
      if (auto st = change_settings(next); !st.is_ok()) return fail(st);
      return done(next.classes_given()
                      ? std::to_string(next.classes().classes_size()) + " class(es) for the fleet"
                      : std::string("every site keeps its own classes"));
    }
    case fleet::Request::kSetPolicies: {
      const auto& sp = q.set_policies();
      fleet::Settings next = settings_record_;
      auto key = [](const fleet::Policy& p) { return p.ns() + "/" + p.name(); };
      for (const auto& name : sp.remove()) {
        auto* ps = next.mutable_policies();
        const auto it = std::find_if(ps->begin(), ps->end(),
                                     [&](const fleet::Policy& p) { return key(p) == name; });
        if (it == ps->end()) return fail(not_found("delete: the fleet has no policy " + name));
        ps->erase(it);
      }
      for (const auto& p : sp.apply()) {
        auto* ps = next.mutable_policies();
        const auto it = std::find_if(ps->begin(), ps->end(),
                                     [&](const fleet::Policy& x) { return key(x) == key(p); });
        if (it != ps->end()) {
          *it = p;
        } else {
          *ps->Add() = p;
        }
      }
      if (sp.inventory_given()) next.set_inventory(sp.inventory());
      if (auto st = change_settings(next); !st.is_ok()) return fail(st);
      return done(std::to_string(next.policies_size()) + " polic" +
                  (next.policies_size() == 1 ? "y" : "ies") + " for the fleet (" +
                  std::to_string(sp.apply_size()) + " applied, " +
                  std::to_string(sp.remove_size()) + " removed" +
                  (!sp.inventory_given()    ? ""
                   : sp.inventory().empty() ? ", inventory cleared"
                                            : ", inventory replaced") +
                  ")");
    }
    case fleet::Request::kListPolicies: {
      auto* out = r.mutable_policies();
      *out->mutable_policies() = settings_record_.policies();
      if (!settings_record_.inventory().empty()) {
        auto inv = policy::parse_manifests(settings_record_.inventory(), "inventory",
                                           policy::Accept::kInventory);
        if (inv.is_ok()) {
          out->set_namespaces(static_cast<std::uint32_t>(inv.value().namespaces.size()));
          out->set_pods(static_cast<std::uint32_t>(inv.value().pods.size()));
        }
      }
      return r;
    }
    case fleet::Request::kSetPlugin: {
      const auto& sp = q.set_plugin().setting();
      if (!sp.site().empty() && !sites_.count(sp.site())) {
        return fail(not_found("site: '" + sp.site() + "' is not a site of the fleet"));
      }
      fleet::Settings next = settings_record_;
      auto* ps = next.mutable_plugins();
      const auto it = std::find_if(ps->begin(), ps->end(), [&](const fleet::PluginSetting& x) {
        return x.site() == sp.site() && x.instance() == sp.instance();
      });
      const std::string what =
          "'" + sp.instance() + "'" + (sp.site().empty() ? " for the fleet" : " on " + sp.site());
      if (q.set_plugin().remove()) {
        if (it == ps->end()) return fail(not_found("no setting of " + what));
        ps->erase(it);
      } else if (it != ps->end()) {
        *it = sp;
      } else {
        *ps->Add() = sp;
      }
      if (auto st = change_settings(next); !st.is_ok()) return fail(st);
      return done((q.set_plugin().remove() ? "removed the setting of " : "set ") + what);
    }
    case fleet::Request::kListPlugins:
      *r.mutable_plugins()->mutable_plugins() = settings_record_.plugins();
      return r;
    case fleet::Request::kRotateKey:
      if (auto st = rotate_key(q.rotate_key().site(), q.rotate_key().endpoint()); !st.is_ok()) {
        return fail(st);
      }
      return done("rotating " + q.rotate_key().site() + "/" + q.rotate_key().endpoint() +
                  ": the site stages its next key; it commits once every peer has it (see "
                  "`fleet status`)");
    default:
      return fail(invalid_argument("an empty or unknown request"));
  }
}

}  // namespace patronus::controller
