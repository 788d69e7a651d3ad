/* Shared by the layout tables (frozen_layout_1_<minor>.c, current_layout.c): one entry per field
 * offset F(struct, member) or struct size S(struct), compared by tests/abi/abi_hash_test.cpp. The
 * including file chooses which plugin_abi.h (frozen or current) the offsets come from. */
#ifndef PATRONUS_TESTS_ABI_LAYOUT_H
#define PATRONUS_TESTS_ABI_LAYOUT_H
#include <stddef.h>

#define F(T, m) \
  { #T "." #m, offsetof(struct T, m) }
#define S(T) \
  { "sizeof " #T, sizeof(struct T) }

struct layout_entry {
  const char* what;
  size_t value;
};
#endif
