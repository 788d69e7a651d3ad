// Path selection for one (class, destination site): a pure function of the candidates' scores,
// eligibility and history, so it is tested and benchmarked alone. The policy (ADR 0008):
//  - a class stays on its path while the path meets the class's thresholds (SLA-sticky: noise
//    between good paths never moves traffic);
//  - a path that breaks them (or goes down) is left at once for the best eligible path, preferring
//    those that have been eligible for the hold-down, and, when it went down, those that do not
//    share its fate (an endpoint, with no reply since the failure); with none eligible, the best
//    live measured path carries the class (better than nothing); with none, the class has no
//    path;
//  - a class judges paths by its own thresholds (min_score, max loss/latency/jitter); the scorer's
//    up/degraded/down verdict is the path's status, shown to operators, and a class that wants it
//    sets min_score to the scorer's threshold;
//  - the path a class failed over from is its home: when home has been eligible for the hold-down
//    and is not worse than the current path by more than the hysteresis, the class fails back;
//  - after an initial choice the class settles for one hold-down: during it, a path better by more
//    than the hysteresis is taken.
#pragma once

#include <cstdint>
#include <vector>

#include "patronus/steering/classes.hpp"

namespace patronus::steering {

struct CandidateInput {
  std::uint64_t path_id = 0;
  double score = 0;
  bool live = false;                 // the probe says up
  bool usable = false;               // live and measured
  bool eligible = false;             // usable and within the class thresholds
  std::int64_t eligible_since = -1;  // monotonic ns; -1: not eligible
  double cost = 0;
  // Shares an endpoint with the path being left because it went down, and has not answered
  // since that path last did: chosen only when no other path will do.
  bool suspect = false;
};

struct SelectionState {
  int current = -1;  // index into the candidates, -1: none
  int home = -1;     // where a failover came from, -1: none
  std::int64_t settle_until = -1;
};

enum class Move : std::uint8_t { kStay, kInitial, kFailover, kFailback, kBetter, kNone };

struct SelectionResult {
  int chosen = -1;
  Move move = Move::kStay;
};

// Decides and updates `state`. `now` is the Env's monotonic clock.
SelectionResult select_path(const ClassSpec& cls, const std::vector<CandidateInput>& candidates,
                            SelectionState& state, std::int64_t now);

// The best candidate satisfying `pred` (score, then lower cost, then lower id), or -1.
template <typename Pred>
int best_candidate(const std::vector<CandidateInput>& c, Pred pred) {
  int best = -1;
  for (int i = 0; i < static_cast<int>(c.size()); ++i) {
    if (!pred(c[i])) continue;
    if (best < 0 || c[i].score > c[best].score ||
        (c[i].score == c[best].score &&
         (c[i].cost < c[best].cost ||
          (c[i].cost == c[best].cost && c[i].path_id < c[best].path_id)))) {
      best = i;
    }
  }
  return best;
}

}  // namespace patronus::steering
