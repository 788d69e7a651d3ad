/* The offsets and sizes of every released minor's fields, measured from the CURRENT header. */
#include "patronus/abi/plugin_abi.h"

#include "layout.h"

const struct layout_entry patronus_current_1_0[] = {
#include "layout_entries_1_0.inc"
    {0, 0}};
const struct layout_entry patronus_current_1_1[] = {
#include "layout_entries_1_1.inc"
    {0, 0}};
const struct layout_entry patronus_current_1_2[] = {
#include "layout_entries_1_2.inc"
    {0, 0}};
const struct layout_entry patronus_current_1_3[] = {
#include "layout_entries_1_3.inc"
    {0, 0}};
const struct layout_entry patronus_current_1_4[] = {
#include "layout_entries_1_4.inc"
    {0, 0}};
