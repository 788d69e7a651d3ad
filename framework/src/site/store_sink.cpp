#include "patronus/site/store_sink.hpp"

namespace patronus::site {

StoreSink::StoreSink(store::Store& db, const env::Env& env, StoreSinkOptions options)
    : env_(env),
      writer_(db, options.max_pending, store::BatchWriter::WhenFull::kDrop),
      options_(options) {}

// Every add() below may be refused when the queue is full: the writer counts it (dropped()) and
// flush() reports the count as an event, so a refusal is never silent and never blocks a callback.
store::PathStateRow StoreSink::row_of(const steering::PathView& p) const {
  store::PathStateRow r;
  r.path_id = p.id;
  r.timestamp_ns = env_.wall_ns();
  r.status = p.status;
  r.live = p.live;
  r.scored = p.scored && p.stats.samples > p.stats.lost;
  r.score = p.score;
  r.latency_ms = p.stats.latency_ms;
  r.jitter_ms = p.stats.jitter_ms;
  r.loss_pct = p.stats.loss_pct;
  r.samples = p.stats.samples;
  r.lost = p.stats.lost;
  return r;
}

void StoreSink::on_decision(const std::string& site, const steering::Decision& d) {
  (void)writer_.add(store::EventRow{d.wall_ns, site, "runtime",
                                    std::string("decision.") + steering::to_string(d.reason),
                                    d.cls + "->" + d.dst_site, d.to_json()});
}

void StoreSink::on_path_state(const std::string&, const steering::PathView& p) {
  (void)writer_.add(row_of(p));
}

void StoreSink::on_path_metrics(const std::string&, const steering::PathView& p) {
  (void)writer_.add(row_of(p));
}

void StoreSink::on_sample(const std::string&, const std::string& instance,
                          const patronus_path_sample& s) {
  if (!options_.samples) return;
  (void)writer_.add(
      store::SampleRow{env_.wall_ns(), instance, s.path_id, s.sequence, s.lost != 0, s.rtt_ns});
}

void StoreSink::on_event(const std::string& site, const steering::Event& e) {
  (void)writer_.add(store::EventRow{env_.wall_ns(), site, e.instance(), steering::event_type(e), "",
                                    steering::event_json(e)});
}

void StoreSink::add_flows(const steering::SiteRuntime& rt, std::size_t max) {
  const auto& t = rt.flows();
  const auto paths = rt.paths();
  const std::int64_t now_wall = env_.wall_ns();
  for (std::uint32_t i = 0; i < t.size() && i < max; ++i) {
    const auto& e = t.at(i);
    store::FlowRow f;
    f.key = e.key().to_flow_key();
    const auto& cls = rt.config().classes.classes[e.cls];
    f.cls = cls.name;
    f.priority = cls.priority;
    if (e.path != steering::kNoPath) f.path_id = paths[e.path].id;
    f.bytes = e.bytes;
    f.packets = e.packets;
    // The wall-clock time of its last packet: now minus its idle time.
    f.last_seen_unix = (now_wall - rt.flow_idle_ms(e) * 1'000'000) / 1'000'000'000;
    (void)writer_.add(f);
  }
}

Status StoreSink::flush() {
  if (writer_.dropped() != reported_drops_) {
    const auto n = writer_.dropped() - reported_drops_;
    reported_drops_ = writer_.dropped();
    // Reported through the queue itself: flush first so there is room.
    auto s = writer_.flush();
    (void)writer_.add(store::EventRow{env_.wall_ns(), "", "store", "store.rows_dropped", "",
                                      "{\"dropped\":" + std::to_string(n) + "}"});
    if (!s.is_ok()) return s;
  }
  return writer_.flush();
}

}  // namespace patronus::site
