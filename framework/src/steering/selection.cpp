#include "patronus/steering/selection.hpp"

namespace patronus::steering {

SelectionResult select_path(const ClassSpec& cls, const std::vector<CandidateInput>& c,
                            SelectionState& st, std::int64_t now) {
  const int n = static_cast<int>(c.size());
  if (st.current >= n) st.current = -1;
  if (st.home >= n) st.home = -1;
  auto stable = [&](const CandidateInput& x) {
    return x.eligible && x.eligible_since >= 0 && now - x.eligible_since >= cls.hold_down_ns;
  };
  auto eligible = [](const CandidateInput& x) { return x.eligible; };
  auto usable = [](const CandidateInput& x) { return x.usable; };
  SelectionResult r;

  if (st.current >= 0 && c[st.current].eligible) {
    const CandidateInput& cur = c[st.current];
    if (st.home >= 0 && st.home != st.current && stable(c[st.home]) &&
        c[st.home].score + cls.hysteresis >= cur.score) {
      r.chosen = st.home;
      r.move = Move::kFailback;
      st.current = st.home;
      st.home = -1;
      st.settle_until = -1;
      return r;
    }
    if (st.settle_until >= 0 && now < st.settle_until) {
      const int b = best_candidate(c, eligible);
      if (b >= 0 && b != st.current && c[b].score > cur.score + cls.hysteresis) {
        r.chosen = b;
        r.move = Move::kBetter;
        st.current = b;
        return r;
      }
    } else {
      st.settle_until = -1;
    }
    r.chosen = st.current;
    return r;
  }

  // No path, or the current one is no longer eligible: choose now.
  int b = best_candidate(c, [&](const CandidateInput& x) { return stable(x) && !x.suspect; });
  if (b < 0)
    b = best_candidate(c, [](const CandidateInput& x) { return x.eligible && !x.suspect; });
  if (b < 0) b = best_candidate(c, stable);
  if (b < 0) b = best_candidate(c, eligible);
  if (b < 0) {
    // Nothing meets the thresholds. Keep a usable current path; else the best usable one.
    if (st.current >= 0 && c[st.current].usable) {
      r.chosen = st.current;
      return r;
    }
    b = best_candidate(c, usable);
  }
  if (b < 0) {
    if (st.current < 0) {
      r.move = Move::kStay;
      return r;
    }
    if (st.home < 0) st.home = st.current;
    st.current = -1;
    r.move = Move::kNone;
    return r;
  }
  if (b == st.current) {
    r.chosen = b;
    return r;
  }
  if (st.current < 0) {
    r.move = st.home >= 0 && b == st.home ? Move::kFailback : Move::kInitial;
    if (r.move == Move::kInitial && st.home < 0) st.settle_until = now + cls.hold_down_ns;
  } else {
    r.move = Move::kFailover;
    if (st.home < 0) st.home = st.current;
    st.settle_until = -1;
  }
  if (b == st.home) st.home = -1;
  st.current = b;
  r.chosen = b;
  return r;
}

}  // namespace patronus::steering
