// The text report and the gnuplot timeline of a scenario run.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "runner.hpp"

namespace patronus::sim {

using nlohmann::json;

namespace {

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

std::string pad(const std::string& s, std::size_t w) {
  return s.size() >= w ? s + " " : s + std::string(w - s.size(), ' ');
}

std::string worst_failover(const json& flow) {
  double worst = -1;
  bool unexplained = false;
  for (const auto& f : flow["failovers"]) {
    if (f["failover_ms"].is_null()) {
      unexplained = true;
    } else {
      worst = std::max(worst, f["failover_ms"].get<double>());
    }
  }
  std::string s = worst < 0 ? "-" : fixed(worst, 1) + " ms";
  if (!flow["unrecovered_faults"].empty()) s += " (stuck)";
  if (unexplained) s += " (+false)";
  return s;
}

// The controller: how long each change took to reach its sites; what each outage did.
void controller_text(const json& c, std::ostream& out) {
  out << "  Controller (" << fixed(c["latency_ms"], 0) << " ms away, debounce "
      << fixed(c["debounce_ms"], 0) << " ms): " << c["pushes"].get<std::uint64_t>()
      << " configs pushed, " << c["resends"].get<std::uint64_t>() << " resent, "
      << c["configs_refused_by_sites"].get<std::uint64_t>() << " refused by sites\n";
  out << "    change at (s)  sites        reached every site concerned after\n";
  for (const auto& ch : c["changes"]) {
    std::string names;
    for (const auto& n : ch["sites"]) names += (names.empty() ? "" : ",") + n.get<std::string>();
    std::string missing;
    for (const auto& m : ch["missing"]) missing += " " + m.get<std::string>();
    out << "    " << pad(fixed(ch["at_s"], 3), 15) << pad(names, 13)
        << (ch["last_ms"].is_null() ? std::string("-") : fixed(ch["last_ms"], 1) + " ms") << " ("
        << ch["reached_ms"].size() << " sites)"
        << (missing.empty() ? "" : "; never reached:" + missing) << "\n";
  }
  for (const auto& o : c["outages"]) {
    out << "    down " << fixed(o["down_s"], 3) << "-" << fixed(o["up_s"], 3)
        << " s: " << o["unexplained_path_downs"].get<std::uint64_t>() << " paths down and "
        << o["false_failovers"].get<std::uint64_t>() << " flows moved because of it; "
        << o["sites_back"].get<std::uint64_t>() << "/" << o["sites"].get<std::uint64_t>()
        << " sites back " << fixed(o["all_back_after_up_ms"], 0) << " ms after it came up, "
        << o["configs_pushed_on_reconnect"].get<std::uint64_t>() << " configs pushed again\n";
  }
}

void run_text(const json& r, std::ostringstream& out) {
  out << r["scenario"].get<std::string>();
  if (!r["variant"].is_null()) out << " / variant " << r["variant"].get<std::string>();
  out << " (seed " << r["seed"].get<std::uint64_t>() << "): " << fixed(r["sim_seconds"], 1)
      << " s simulated in " << fixed(r["wall_seconds"], 2) << " s wall, "
      << r["sites"].get<std::size_t>() << " sites, " << r["paths"].get<std::size_t>() << " paths ("
      << r["topology"].get<std::string>() << "), " << r["events"].get<std::uint64_t>()
      << " events\n";
  for (const auto& [plugin, text] : r["plugins"].items()) {
    std::string t = text.get<std::string>();
    for (auto& c : t) c = c == '\n' ? ' ' : c;
    if (!t.empty()) out << "  " << plugin << ": " << t << "\n";
  }
  if (!r["faults"].empty()) {
    out << "  Faults\n    " << pad("at (s)", 10) << pad("target", 28) << pad("action", 9)
        << "detected after\n";
    for (const auto& f : r["faults"]) {
      out << "    " << pad(fixed(f["at_s"], 3), 10) << pad(f["target"], 28) << pad(f["action"], 9);
      if (f.contains("detected_ms")) {
        std::string d;
        for (const auto& [path, v] : f["detected_ms"].items()) {
          d += (d.empty() ? "" : ", ") + path + " " +
               (v.is_null() ? std::string("never") : fixed(v.get<double>(), 1) + " ms");
        }
        out << (d.empty() ? "(no path)" : d);
      }
      out << "\n";
    }
  }
  if (!r["flows"].empty()) {
    out << "  Flows\n    " << pad("flow", 14) << pad("class", 12) << pad("sent", 9)
        << pad("lost", 8) << pad("loss %", 8) << pad("failovers", 10) << pad("worst", 20)
        << "final path\n";
    for (const auto& f : r["flows"]) {
      out << "    " << pad(f["name"], 14) << pad(f["class"], 12)
          << pad(std::to_string(f["sent_packets"].get<std::uint64_t>()), 9)
          << pad(std::to_string(f["lost_packets"].get<std::uint64_t>()), 8)
          << pad(fixed(f["loss_pct"], 2), 8) << pad(std::to_string(f["failovers"].size()), 10)
          << pad(worst_failover(f), 20)
          << (f["final_path"].is_null() ? "none" : f["final_path"].get<std::string>()) << "\n";
    }
  }
  out << "  False failovers: " << r["false_failovers"].get<std::uint64_t>()
      << "; decisions: " << r["decisions"].get<std::size_t>() << "\n";
  if (r.contains("controller")) controller_text(r["controller"], out);
  // What went wrong inside the sites (a failing scorer, refused timers): the text says it too.
  if (const auto& w = r["warnings"]; !w.empty()) {
    constexpr std::size_t kShown = 8;
    out << "  Warnings: " << w.size() << (w.size() >= 100 ? "+" : "")
        << (w.size() > kShown ? " (the first " + std::to_string(kShown) + "; --json has all)" : "")
        << "\n";
    for (std::size_t i = 0; i < w.size() && i < kShown; ++i) {
      out << "    " << w[i].get<std::string>() << "\n";
    }
  }
}

}  // namespace

std::string text_report(const json& report) {
  std::ostringstream out;
  run_text(report, out);
  for (const auto& v : report["variants"]) {
    out << "\n";
    run_text(v, out);
  }
  if (!report["expectations"].empty()) {
    out << "\nExpectations (the scenario as written)\n";
    for (const auto& e : report["expectations"]) {
      out << "  " << pad(e["ok"].get<bool>() ? "ok" : "FAILED", 8)
          << pad("line " + std::to_string(e["line"].get<int>()), 9)
          << e["expect"].get<std::string>();
      if (!e["detail"].get<std::string>().empty()) out << ": " << e["detail"].get<std::string>();
      out << "\n";
    }
  }
  if (!report["variants"].empty() && !report["flows"].empty()) {
    std::vector<const json*> runs = {&report};
    for (const auto& v : report["variants"]) runs.push_back(&v);
    out << "\nSide by side: worst failover / lost packets per flow\n    " << pad("flow", 14);
    for (const json* r : runs) {
      out << pad(r->at("variant").is_null() ? r->at("scenario").get<std::string>()
                                            : r->at("variant").get<std::string>(),
                 28);
    }
    out << "\n";
    for (std::size_t i = 0; i < report["flows"].size(); ++i) {
      out << "    " << pad(report["flows"][i]["name"], 14);
      for (const json* r : runs) {
        const json& f = r->at("flows")[i];
        out << pad(
            worst_failover(f) + " / " + std::to_string(f["lost_packets"].get<std::uint64_t>()), 28);
      }
      out << "\n";
    }
    out << "    " << pad("false failovers", 14);
    for (const json* r : runs) {
      out << pad(std::to_string(r->at("false_failovers").get<std::uint64_t>()), 28);
    }
    out << "\n";
  }
  out << (report["ok"].get<bool>() ? "OK" : "EXPECTATIONS FAILED") << "\n";
  return out.str();
}

namespace {

// A gnuplot string literal: single-quoted ('' is a quote inside), control characters dropped. A
// scenario's names and the --plot path go into the script this way, never as gnuplot code.
std::string gq(const std::string& text) {
  std::string out = "'";
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) continue;
    if (c == '\'')
      out += "''";
    else
      out.push_back(static_cast<char>(c));
  }
  return out + "'";
}

// gnuplot on `script`, spawned without a shell; its output (stdout and stderr) in `output`.
// Returns its exit status, 127 if it could not be run.
int run_gnuplot(const std::string& script, std::string* output) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return 127;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  char arg0[] = "gnuplot";
  std::string path = script;
  char* argv[] = {arg0, path.data(), nullptr};
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, "gnuplot", &fa, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(out[1]);
  if (rc != 0) {
    ::close(out[0]);
    return 127;
  }
  char buf[256];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) {
    if (output->size() < 64 * 1024) output->append(buf, static_cast<std::size_t>(n));
  }
  ::close(out[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

}  // namespace

Status write_plot(const std::vector<PlotData>& plots, const json& report, const std::string& png) {
  if (plots.empty()) return invalid_argument("plot: nothing was sampled");
  std::vector<const json*> runs = {&report};
  for (const auto& v : report["variants"]) runs.push_back(&v);
  const std::string base = png.size() > 4 && png.compare(png.size() - 4, 4, ".png") == 0
                               ? png.substr(0, png.size() - 4)
                               : png;
  std::ostringstream gp;
  gp << "set terminal pngcairo size 1400," << 500 * plots.size() << " font ',9'\n"
     << "set output " << gq(png) << "\n"
     << "set multiplot layout " << 2 * plots.size() << ",1\n"
     << "set key outside right\nset grid\n";
  for (std::size_t k = 0; k < plots.size(); ++k) {
    const PlotData& p = plots[k];
    const std::string name = runs[k]->at("variant").is_null()
                                 ? runs[k]->at("scenario").get<std::string>()
                                 : runs[k]->at("variant").get<std::string>();
    const std::string scores = base + "." + std::to_string(k) + ".scores.dat";
    const std::string steps = base + "." + std::to_string(k) + ".flows.dat";
    {
      std::ofstream f(scores);
      for (const auto& s : p.samples) {
        f << s.t;
        for (double v : s.score) f << " " << (std::isnan(v) ? std::string("NaN") : fixed(v, 2));
        f << "\n";
      }
      if (!f) return unavailable("plot: cannot write " + scores);
    }
    {
      std::ofstream f(steps);
      for (std::size_t fl = 0; fl < p.flows.size(); ++fl) {
        f << "# flow " << p.flows[fl] << "\n";
        int last = -1;
        bool any = false;
        for (const auto& st : p.steps) {
          if (st.flow != fl) continue;
          if (any) f << st.t << " " << last << "\n";  // a step, not a slope
          f << st.t << " " << st.path << "\n";
          last = st.path;
          any = true;
        }
        if (any) f << runs[k]->at("sim_seconds").get<double>() << " " << last << "\n";
        f << "\n\n";
      }
      if (!f) return unavailable("plot: cannot write " + steps);
    }
    gp << "unset arrow\nunset label\nset xrange [0:" << runs[k]->at("sim_seconds").get<double>()
       << "]\nset xlabel 'simulated seconds'\n";
    for (const auto& [t, what] : p.faults) {
      gp << "set arrow from " << t << ", graph 0 to " << t << ", graph 1 nohead lc rgb 'red' dt 2\n"
         << "set label " << gq(what) << " at " << t
         << ", graph 0.98 rotate by 90 right font ',7' tc rgb 'red'\n";
    }
    gp << "set title " << gq(name + ": path scores by the sending site (red: faults)")
       << "\nset ylabel 'score'\n"
       << "set yrange [0:105]\nplot ";
    for (std::size_t i = 0; i < p.paths.size(); ++i) {
      gp << (i ? ", " : "") << gq(scores) << " using 1:" << i + 2 << " with lines title "
         << gq(p.paths[i]);
    }
    gp << "\nset title " << gq(name + ": path of each flow (-1: none)") << "\nset ylabel 'path'\n"
       << "set yrange [-1.5:" << p.paths.size() << "]\nset ytics (";
    gp << "'none' -1";
    for (std::size_t i = 0; i < p.paths.size(); ++i) gp << ", " << gq(p.paths[i]) << " " << i;
    gp << ")\nplot ";
    for (std::size_t fl = 0; fl < p.flows.size(); ++fl) {
      gp << (fl ? ", " : "") << gq(steps) << " index " << fl << " using 1:2 with lines lw 2 title "
         << gq(p.flows[fl]);
    }
    gp << "\nset ytics autofreq\n";
  }
  gp << "unset multiplot\n";
  const std::string script = base + ".gp";
  {
    std::ofstream f(script);
    f << gp.str();
    if (!f) return unavailable("plot: cannot write " + script);
  }
  std::string output;
  const int rc = run_gnuplot(script, &output);
  if (rc != 0) {
    if (rc == 127) {
      return unavailable(
          "plot: gnuplot is not installed (apt-get install gnuplot-nox); the "
          "script is " +
          script);
    }
    return unavailable("plot: gnuplot failed on " + script + ": " + output);
  }
  return Status::ok();
}

}  // namespace patronus::sim
