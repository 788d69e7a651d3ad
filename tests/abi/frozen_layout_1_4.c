/* Offsets and sizes of what ABI 1.4 introduced, measured from the FROZEN 1.4 header (compiled with
 * tests/abi/frozen/v1_4 first on the include path); abi_hash_test.cpp compares them with
 * current_layout.c: a 1.x header may only append. */
#include "patronus/abi/plugin_abi.h"

#if PATRONUS_ABI_VERSION_MINOR != 4
#error "frozen_layout_1_4.c must be compiled against the frozen ABI 1.4 header"
#endif

#include "layout.h"

const struct layout_entry patronus_frozen_1_4[] = {
#include "layout_entries_1_4.inc"
    {0, 0}};
