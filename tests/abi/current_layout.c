/* The same offsets and sizes measured from the CURRENT header. */
#include <stddef.h>

#include "patronus/abi/plugin_abi.h"

#define F(T, m) \
  { #T "." #m, offsetof(struct T, m) }
#define S(T) \
  { "sizeof " #T, sizeof(struct T) }

struct layout_entry {
  const char* what;
  size_t value;
};

const struct layout_entry patronus_current_layout[] = {
#include "layout_entries.inc"
    {0, 0}};
