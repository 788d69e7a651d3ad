// The typed events of a site's runtime (framework/src/api/events.proto): what observers read by
// field. Their type names and JSON forms are what the store and the log keep.
#pragma once

#include <string>

#include "patronus/site/v1/events.pb.h"

namespace patronus::steering {

using Event = site::v1::Event;
using ClassesChanged = site::v1::ClassesChanged;

// "path.down", "runtime.scorer_error", ...; a plugin event's own type ("" for an empty event).
std::string event_type(const Event& e);
// The member's fields as JSON (64-bit integers as numbers); a plugin event's own payload.
std::string event_json(const Event& e);
// Anomalies the runtime also logs as warnings (refused timers, a failing scorer, a full table).
bool is_warning(const Event& e);

}  // namespace patronus::steering
