#include "control.hpp"

#include "proto_json.hpp"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

namespace patronus::control {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using nlohmann::json;

namespace {

std::string abi_of(std::uint32_t major, std::uint32_t minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

double round2(double v) {
  return std::round(v * 100) / 100;
}

void count_state(api::StatusReply& r, model::PathStatus s) {
  switch (s) {
    case model::PathStatus::kUp:
      r.set_paths_up(r.paths_up() + 1);
      break;
    case model::PathStatus::kDegraded:
      r.set_paths_degraded(r.paths_degraded() + 1);
      break;
    default:
      r.set_paths_down(r.paths_down() + 1);
  }
}

}  // namespace

// ---- live --------------------------------------------------------------------------------------

api::StatusReply status_of(const DaemonInfo& info, const core::RouterInstance& router,
                           const steering::SiteRuntime* runtime, std::int64_t now_wall_ns) {
  api::StatusReply r;
  r.set_source("daemon");
  r.set_site(info.site);
  r.set_version(info.version);
  r.set_abi(abi_of(PATRONUS_ABI_VERSION_MAJOR, PATRONUS_ABI_VERSION_MINOR));
  r.set_pid(info.pid);
  r.set_started_unix_ns(info.started_unix_ns);
  r.set_uptime_s(round2((now_wall_ns - info.started_unix_ns) / 1e9));
  r.set_state_db(info.state_db);
  r.set_transport(info.transport);
  r.set_dataplane(info.dataplane);
  r.set_config_hash(info.config_hash);
  for (const auto& name : router.instance_names()) {
    auto pi = router.instance_info(name);
    if (!pi) continue;
    auto* p = r.add_plugins();
    p->set_instance(name);
    p->set_plugin(pi->name);
    p->set_kind(core::to_string(pi->kind));
    p->set_version(pi->version);
    p->set_abi(abi_of(pi->abi_major, pi->abi_minor));
    p->set_file(pi->file);
  }
  auto& c = *r.mutable_counters();
  const auto& rc = router.counters();
  c["router.samples"] = rc.samples;
  c["router.events"] = rc.events;
  c["router.events_dropped"] = rc.events_dropped;
  c["router.tunnel_reports"] = rc.tunnel_reports;
  c["router.timers_refused"] = rc.timers_refused;
  c["router.endpoints_refused"] = rc.endpoints_refused;
  c["router.watches_refused"] = rc.watches_refused;
  c["router.reports_malformed"] = rc.reports_malformed;
  c["router.plugin_exceptions"] = rc.plugin_exceptions;
  if (!runtime) return r;
  for (const auto& p : runtime->paths()) count_state(r, p.status);
  const auto sites = runtime->remote_site_names();
  r.set_remote_sites(static_cast<std::uint32_t>(sites.size()));
  r.set_flows(runtime->flows().size());
  for (const auto& s : sites) {
    for (const auto& cls : runtime->config().classes.classes) {
      auto* sel = r.add_selections();
      sel->set_site(s);
      sel->set_class_name(cls.name);
      const auto id = runtime->class_path(s, cls.name);
      sel->set_path_id(id.value());
      if (const auto* spec = id.valid() ? runtime->spec(id) : nullptr) sel->set_path(spec->name);
    }
  }
  if (!runtime->decisions().empty()) {
    r.set_last_decision_unix_ns(runtime->decisions().back().wall_ns);
  }
  const auto& k = runtime->counters();
  c["runtime.samples"] = k.samples;
  c["runtime.samples_unknown_path"] = k.samples_unknown_path;
  c["runtime.samples_late"] = k.samples_late;
  c["runtime.samples_before_first_answer"] = k.samples_before_first_answer;
  c["runtime.samples_during_rekey"] = k.samples_during_rekey;
  c["runtime.liveness_changes"] = k.liveness_changes;
  c["runtime.decisions"] = k.decisions;
  c["runtime.failovers"] = k.failovers;
  c["runtime.failbacks"] = k.failbacks;
  c["runtime.tunnel_changes"] = k.tunnel_changes;
  c["runtime.tunnel_reports_unknown_path"] = k.tunnel_reports_unknown_path;
  c["runtime.flows_created"] = k.flows_created;
  c["runtime.flows_refused"] = k.flows_refused;
  c["runtime.flows_expired"] = k.flows_expired;
  c["runtime.flows_unrouted"] = k.flows_unrouted;
  c["runtime.packets"] = k.packets;
  c["runtime.scorer_errors"] = k.scorer_errors;
  c["runtime.scorer_fallbacks"] = k.scorer_fallbacks;
  c["runtime.plugin_metrics"] = k.plugin_metrics;
  c["runtime.plugin_metrics_refused"] = k.plugin_metrics_refused;
  for (const auto& [key, m] : runtime->plugin_metrics()) {
    auto* x = r.add_metrics();
    x->set_instance(key.first);
    x->set_name(key.second);
    x->set_value(m.value);
    x->set_age_s(round2(std::max<std::int64_t>(0, now_wall_ns - m.updated_wall_ns) / 1e9));
  }
  c["runtime.dataplane_errors"] = k.dataplane_errors;
  c["runtime.rate_errors"] = k.rate_errors;
  c["runtime.timers_refused"] = k.timers_refused;
  c["runtime.decisions_evicted"] = k.decisions_evicted;
  return r;
}

api::PathsReply paths_of(const steering::SiteRuntime& runtime, std::int64_t now_wall_ns) {
  api::PathsReply r;
  r.set_source("daemon");
  for (const auto& v : runtime.paths()) {
    auto* p = r.add_paths();
    p->set_id(v.id.value());
    p->set_name(v.name);
    p->set_peer_site(v.remote_site);
    if (const auto* s = runtime.spec(v.id)) {
      p->set_local_endpoint(s->local_endpoint);
      p->set_remote_endpoint(s->remote_endpoint);
      p->set_local_underlay(s->local_underlay.to_string());
      if (s->local_overlay) p->set_local_overlay(s->local_overlay->to_string());
      if (s->remote_overlay) p->set_remote_overlay(s->remote_overlay->to_string());
      p->set_remote_underlay(s->remote_underlay.to_string());
      if (s->tunnel) p->set_interface(s->tunnel->interface_name);
    }
    p->set_state(model::to_string(v.status));
    p->set_live(v.live);
    p->set_probed(v.probed);
    if (v.scored) p->set_score(round2(v.score));
    p->set_samples(v.stats.samples);
    if (v.stats.samples > v.stats.lost) {
      p->set_latency_ms(v.stats.latency_ms);
      p->set_jitter_ms(v.stats.jitter_ms);
    }
    if (v.stats.samples > 0) p->set_loss_pct(v.stats.loss_pct);
    if (v.tunnel) {
      auto* t = p->mutable_tunnel();
      t->set_up(v.tunnel->up);
      t->set_diagnostic(v.tunnel->up ? "" : steering::tunnel_diagnostic_text(v.tunnel->diagnostic));
      if (v.tunnel->last_handshake_wall_ns > 0) {
        t->set_handshake_age_s(round2(
            std::max<std::int64_t>(0, now_wall_ns - v.tunnel->last_handshake_wall_ns) / 1e9));
      }
      t->set_rx_bytes(v.tunnel->rx_bytes);
      t->set_tx_bytes(v.tunnel->tx_bytes);
      if (v.tunnel->endpoint) t->set_endpoint(v.tunnel->endpoint->to_string());
    }
    p->set_selections(v.selections);
    p->set_flows(v.flows);
  }
  return r;
}

api::FlowsReply flows_of(const steering::SiteRuntime& runtime, std::uint32_t limit) {
  api::FlowsReply r;
  r.set_source("daemon");
  const auto& t = runtime.flows();
  r.set_total(t.size());
  const auto paths = runtime.paths();
  const auto& classes = runtime.config().classes.classes;
  for (std::uint32_t i = 0; i < t.size() && i < limit; ++i) {
    const auto& e = t.at(i);
    const auto key = e.key().to_flow_key();
    auto* f = r.add_flows();
    f->set_src(key.src.to_string());
    f->set_dst(key.dst.to_string());
    f->set_src_port(key.src_port);
    f->set_dst_port(key.dst_port);
    f->set_protocol(static_cast<std::uint32_t>(key.protocol));
    if (e.cls < classes.size()) f->set_class_name(classes[e.cls].name);
    if (e.path != steering::kNoPath && e.path < paths.size()) {
      f->set_path_id(paths[e.path].id.value());
      f->set_path(paths[e.path].name);
    }
    f->set_packets(e.packets);
    f->set_bytes(e.bytes);
    f->set_idle_s(round2(runtime.flow_idle_ms(e) / 1e3));
  }
  return r;
}

namespace {

void fill_decision(api::Decision* d, const steering::Decision& x) {
  d->set_unix_ns(x.wall_ns);
  d->set_site(x.site);
  d->set_class_name(x.cls);
  d->set_dst_site(x.dst_site);
  d->set_from_path_id(x.from.value());
  d->set_to_path_id(x.to.value());
  d->set_reason(steering::to_string(x.reason));
  d->set_why(x.why);
  if (x.fault_age_ns >= 0) d->set_fault_age_ms(round2(x.fault_age_ns / 1e6));
  d->set_flows_moved(x.flows_moved);
  for (const auto& c : x.candidates) {
    auto* k = d->add_candidates();
    k->set_path_id(c.path.value());
    k->set_score(round2(c.score));
    k->set_eligible(c.eligible);
    k->set_why_not(c.why_not);
  }
}

}  // namespace

api::DecisionsReply decisions_of(const steering::SiteRuntime& runtime, std::uint32_t limit) {
  api::DecisionsReply r;
  r.set_source("daemon");
  const auto& log = runtime.decisions();
  for (auto it = log.rbegin(); it != log.rend() && r.decisions_size() < static_cast<int>(limit);
       ++it) {
    fill_decision(r.add_decisions(), *it);
  }
  return r;
}

// ---- offline -----------------------------------------------------------------------------------

namespace {

// The site whose daemon wrote the database: its newest start record names it ("" if none).
Result<std::pair<std::string, std::int64_t>> daemon_site(store::Store& db) {
  auto events = db.events(1000);
  if (!events.is_ok()) return events.status();
  for (const auto& e : events.value()) {
    if (e.kind == "daemon.start") return std::make_pair(e.site, e.timestamp_ns);
  }
  return std::make_pair(std::string(), std::int64_t{0});
}

// The database holds the whole mesh plan, each path once (canonical order). The daemon's view,
// and so this one's, is its own paths, from its side: local endpoint first, the peer's after.
struct OwnPath {
  const store::PathRow* row;
  std::string local_endpoint, peer_site, peer_endpoint;
};
std::vector<OwnPath> own_paths(const std::vector<store::PathRow>& rows, const std::string& site) {
  std::vector<OwnPath> out;
  for (const auto& x : rows) {
    if (site.empty() || x.src_site == site) {
      out.push_back({&x, x.src_endpoint, x.dst_site, x.dst_endpoint});
    } else if (x.dst_site == site) {
      out.push_back({&x, x.dst_endpoint, x.src_site, x.src_endpoint});
    }
  }
  return out;
}

}  // namespace

Result<api::StatusReply> status_from_store(store::Store& db) {
  api::StatusReply r;
  r.set_source("database");
  r.set_state_db(db.path());
  auto started = daemon_site(db);
  if (!started.is_ok()) return started.status();
  r.set_site(started.value().first);
  r.set_started_unix_ns(started.value().second);
  auto paths = db.list_paths();
  if (!paths.is_ok()) return paths.status();
  std::set<std::string> peers;
  for (const auto& p : own_paths(paths.value(), r.site())) {
    count_state(r, p.row->status);
    peers.insert(p.peer_site);
  }
  r.set_remote_sites(static_cast<std::uint32_t>(peers.size()));
  auto last = db.decisions(1);
  if (!last.is_ok()) return last.status();
  if (!last.value().empty()) r.set_last_decision_unix_ns(last.value().front().timestamp_ns);
  auto flows = db.count_rows("flows");
  if (!flows.is_ok()) return flows.status();
  r.set_flows(static_cast<std::uint64_t>(flows.value()));
  return r;
}

Result<api::PathsReply> paths_from_store(store::Store& db) {
  auto rows = db.list_paths();
  if (!rows.is_ok()) return rows.status();
  auto started = daemon_site(db);
  if (!started.is_ok()) return started.status();
  const std::string& site = started.value().first;
  api::PathsReply r;
  r.set_source("database");
  for (const auto& own : own_paths(rows.value(), site)) {
    const store::PathRow& x = *own.row;
    auto* p = r.add_paths();
    p->set_id(x.path_id.value());
    const std::string local_site = site.empty() ? x.src_site : site;
    p->set_name(local_site + ":" + own.local_endpoint + "~" + own.peer_site + ":" +
                own.peer_endpoint);
    p->set_peer_site(own.peer_site);
    p->set_local_endpoint(own.local_endpoint);
    p->set_remote_endpoint(own.peer_endpoint);
    // The interface stored is the canonical source side's: ours only when we are that side.
    if (x.src_site == local_site) p->set_interface(x.wg_interface);
    p->set_state(model::to_string(x.status));
    if (x.score) p->set_score(*x.score);
    if (x.latency_ms) p->set_latency_ms(*x.latency_ms);
    if (x.jitter_ms) p->set_jitter_ms(*x.jitter_ms);
    if (x.loss_pct) p->set_loss_pct(*x.loss_pct);
    if (x.samples) p->set_samples(static_cast<std::uint32_t>(*x.samples));
    if (x.updated_ns) p->set_updated_unix_ns(*x.updated_ns);
  }
  return r;
}

Result<api::FlowsReply> flows_from_store(store::Store& db, std::uint32_t limit) {
  auto rows = db.list_flows(limit);
  if (!rows.is_ok()) return rows.status();
  auto total = db.count_rows("flows");
  if (!total.is_ok()) return total.status();
  api::FlowsReply r;
  r.set_source("database");
  r.set_total(static_cast<std::uint64_t>(total.value()));
  for (const auto& x : rows.value()) {
    auto* f = r.add_flows();
    f->set_src(x.key.src.to_string());
    f->set_dst(x.key.dst.to_string());
    f->set_src_port(x.key.src_port);
    f->set_dst_port(x.key.dst_port);
    f->set_protocol(static_cast<std::uint32_t>(x.key.protocol));
    f->set_class_name(x.cls);
    f->set_path_id(x.path_id.value());
    f->set_packets(x.packets);
    f->set_bytes(x.bytes);
    f->set_last_seen_unix(x.last_seen_unix);
  }
  return r;
}

Result<api::DecisionsReply> decisions_from_store(store::Store& db, std::uint32_t limit) {
  auto rows = db.decisions(limit);
  if (!rows.is_ok()) return rows.status();
  api::DecisionsReply r;
  r.set_source("database");
  for (const auto& e : rows.value()) {
    auto* d = r.add_decisions();
    d->set_unix_ns(e.timestamp_ns);
    d->set_site(e.site);
    // The payload is Decision::to_json(); a row some other writer left is shown as far as it goes.
    const json j = json::parse(e.payload, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object()) {
      d->set_why(e.payload);
      continue;
    }
    auto str = [&](const char* k) {
      return j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
    };
    auto u64 = [&](const json& o, const char* k) -> std::uint64_t {
      return o.contains(k) && o[k].is_number_unsigned() ? o[k].get<std::uint64_t>() : 0;
    };
    d->set_class_name(str("class"));
    d->set_dst_site(str("dst_site"));
    d->set_from_path_id(u64(j, "from"));
    d->set_to_path_id(u64(j, "to"));
    d->set_reason(str("reason"));
    d->set_why(str("why"));
    if (j.contains("fault_age_ns") && j["fault_age_ns"].is_number_integer() &&
        j["fault_age_ns"].get<std::int64_t>() >= 0) {
      d->set_fault_age_ms(round2(j["fault_age_ns"].get<std::int64_t>() / 1e6));
    }
    d->set_flows_moved(static_cast<std::uint32_t>(u64(j, "flows_moved")));
    if (j.contains("candidates") && j["candidates"].is_array()) {
      for (const auto& c : j["candidates"]) {
        if (!c.is_object()) continue;
        auto* k = d->add_candidates();
        k->set_path_id(u64(c, "path"));
        if (c.contains("score") && c["score"].is_number()) k->set_score(c["score"].get<double>());
        k->set_eligible(c.contains("eligible") && c["eligible"].is_boolean() &&
                        c["eligible"].get<bool>());
        if (c.contains("why_not") && c["why_not"].is_string()) {
          k->set_why_not(c["why_not"].get<std::string>());
        }
      }
    }
  }
  return r;
}

namespace {

template <typename Reply, typename Set>
Result<api::Response> wrap(Result<Reply> r, Set set) {
  if (!r.is_ok()) return r.status();
  api::Response out;
  *set(out) = std::move(r).value();
  return out;
}

}  // namespace

Result<api::Response> answer_from_store(store::Store& db, const api::Request& q) {
  switch (q.what_case()) {
    case api::Request::kStatus:
      return wrap(status_from_store(db), [](api::Response& o) { return o.mutable_status(); });
    case api::Request::kPaths:
      return wrap(paths_from_store(db), [](api::Response& o) { return o.mutable_paths(); });
    case api::Request::kFlows: {
      const auto limit = q.flows().limit() ? q.flows().limit() : kDefaultFlows;
      if (limit > kMaxFlows) {
        return invalid_argument("flows.limit: at most " + std::to_string(kMaxFlows));
      }
      return wrap(flows_from_store(db, limit), [](api::Response& o) { return o.mutable_flows(); });
    }
    case api::Request::kDecisions: {
      const auto limit = q.decisions().limit() ? q.decisions().limit() : kDefaultDecisions;
      return wrap(decisions_from_store(db, limit),
                  [](api::Response& o) { return o.mutable_decisions(); });
    }
    case api::Request::WHAT_NOT_SET:
      break;
  }
  return invalid_argument("the request names no call");
}

// ---- the service -------------------------------------------------------------------------------

api::Response error_response(const Status& s) {
  api::Response r;
  r.mutable_error()->set_code(code_name(s.code()));
  r.mutable_error()->set_message(s.message());
  return r;
}

api::Response Service::handle(const api::Request& q) const {
  api::Response r;
  auto need_runtime = [&]() -> bool { return runtime_ != nullptr; };
  const Status no_runtime(Code::kFailedPrecondition,
                          "this daemon runs no site runtime (its config has no runtime section)");
  switch (q.what_case()) {
    case api::Request::kStatus:
      *r.mutable_status() = status_of(info_, router_, runtime_, env_.wall_ns());
      return r;
    case api::Request::kPaths:
      if (!need_runtime()) return error_response(no_runtime);
      *r.mutable_paths() = paths_of(*runtime_, env_.wall_ns());
      return r;
    case api::Request::kFlows: {
      if (!need_runtime()) return error_response(no_runtime);
      const auto limit = q.flows().limit() ? q.flows().limit() : kDefaultFlows;
      if (limit > kMaxFlows) {
        return error_response(invalid_argument("flows.limit: at most " + std::to_string(kMaxFlows) +
                                               ", got " + std::to_string(limit)));
      }
      *r.mutable_flows() = flows_of(*runtime_, limit);
      return r;
    }
    case api::Request::kDecisions: {
      if (!need_runtime()) return error_response(no_runtime);
      const auto limit = q.decisions().limit() ? q.decisions().limit() : kDefaultDecisions;
      *r.mutable_decisions() = decisions_of(*runtime_, limit);
      return r;
    }
    case api::Request::WHAT_NOT_SET:
      break;
  }
  return error_response(invalid_argument(
      "the request names no call (one of status, paths, flows, decisions), or one this daemon "
      "does not know"));
}

// ---- sorting -----------------------------------------------------------------------------------

Status sort_paths(api::PathsReply& reply, const std::string& by) {
  using Key = std::optional<double>;
  std::function<Key(const api::Path&)> key;
  if (by == "score") {
    key = [](const api::Path& p) { return p.has_score() ? Key(-p.score()) : Key(); };
  } else if (by == "latency") {
    key = [](const api::Path& p) { return p.has_latency_ms() ? Key(p.latency_ms()) : Key(); };
  } else if (by == "loss") {
    key = [](const api::Path& p) { return p.has_loss_pct() ? Key(p.loss_pct()) : Key(); };
  } else {
    return invalid_argument("sort by '" + by + "': one of score, latency, loss");
  }
  auto* v = reply.mutable_paths();
  std::stable_sort(v->begin(), v->end(), [&](const api::Path& a, const api::Path& b) {
    const Key ka = key(a), kb = key(b);
    if (ka.has_value() != kb.has_value()) return ka.has_value();
    if (ka && *ka != *kb) return *ka < *kb;
    return a.id() < b.id();
  });
  return Status::ok();
}

// ---- JSON --------------------------------------------------------------------------------------

std::string to_json(const Message& m, int indent) {
  return proto_to_json(m, indent);
}

Status from_json(const std::string& text, Message* m) {
  google::protobuf::util::JsonParseOptions opt;
  opt.ignore_unknown_fields = true;
  m->Clear();
  const auto s = google::protobuf::util::JsonStringToMessage(text, m, opt);
  if (!s.ok()) {
    m->Clear();
    return invalid_argument(m->GetDescriptor()->name() + ": " + std::string(s.message()));
  }
  return Status::ok();
}

}  // namespace patronus::control
