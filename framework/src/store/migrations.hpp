#pragma once

#include <vector>

namespace patronus::store {

// migrations()[i] takes the schema from version i to version i + 1.
const std::vector<const char*>& migrations();

}  // namespace patronus::store
