/* Offsets and sizes of every ABI 1.0 struct, measured from the FROZEN 1.0 header (this file is
 * compiled with tests/abi/frozen/v1_0 first on the include path). tests/abi/abi_hash_test.cpp
 * compares them with current_layout.c: a 1.x header may only append. */
#include <stddef.h>

#include "patronus/abi/plugin_abi.h"

#if PATRONUS_ABI_VERSION_MINOR != 0
#error "frozen_layout_1_0.c must be compiled against the frozen ABI 1.0 header"
#endif

#define F(T, m) \
  { #T "." #m, offsetof(struct T, m) }
#define S(T) \
  { "sizeof " #T, sizeof(struct T) }

struct layout_entry {
  const char* what;
  size_t value;
};

const struct layout_entry patronus_frozen_1_0[] = {
#include "layout_entries.inc"
    {0, 0}};
