/* Offsets and sizes of what ABI 1.3 introduced, measured from the FROZEN 1.3 header (compiled with
 * tests/abi/frozen/v1_3 first on the include path); abi_hash_test.cpp compares them with
 * current_layout.c: a 1.x header may only append. */
#include "patronus/abi/plugin_abi.h"

#if PATRONUS_ABI_VERSION_MINOR != 3
#error "frozen_layout_1_3.c must be compiled against the frozen ABI 1.3 header"
#endif

#include "layout.h"

const struct layout_entry patronus_frozen_1_3[] = {
#include "layout_entries_1_3.inc"
    {0, 0}};
