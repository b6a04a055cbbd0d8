/*
 * The layout table declared in include/cvfio_layout.h, expanded from the same rows that
 * cvfio_layout_checks.c asserts against the system headers. A row of the system list
 * takes its member widths from the header (sizeof the member); a row of the newer list is
 * all literals, because the 6.1 header cannot say.
 */
#include "cvfio_layout.h"

#include <linux/vfio.h>
#include <linux/vfio_zdev.h>
#include <linux/vfio_ccw.h>

#define CVFIO_MEMBER_SIZE(tag, member) sizeof(((struct tag *)0)->member)

static const struct cvfio_layout_struct cvfio_layout_structs[] = {
#define CVFIO_LAYOUT_STRUCT(header_text, tag, size_value, other_size) \
    { .name = #tag, .size = (size_value), .header = header_text, .newer_than_6_1 = 0 },
#define CVFIO_LAYOUT_FIELD(type, field, offset_value)
#define CVFIO_LAYOUT_FLEX(type, field, offset_value)
#include "cvfio_layout_list.h"
#undef CVFIO_LAYOUT_STRUCT
#undef CVFIO_LAYOUT_FIELD
#undef CVFIO_LAYOUT_FLEX

#define CVFIO_LAYOUT_EVERY_ROW 1
#define CVFIO_LAYOUT_NEWER_STRUCT(tag, size_value, later_size) \
    { .name = #tag, .size = (size_value), .header = "linux/vfio.h", .newer_than_6_1 = 1 },
#define CVFIO_LAYOUT_NEWER_FIELD(type, field, offset_value, width_value)
#define CVFIO_LAYOUT_NEWER_CONSTANT(name, value)
#include "cvfio_layout_newer_list.h"
#undef CVFIO_LAYOUT_NEWER_CONSTANT
#undef CVFIO_LAYOUT_NEWER_STRUCT
#undef CVFIO_LAYOUT_NEWER_FIELD
#undef CVFIO_LAYOUT_EVERY_ROW
};

static const struct cvfio_layout_field cvfio_layout_fields[] = {
#define CVFIO_LAYOUT_STRUCT(header_text, type, size_value, other_size)
#define CVFIO_LAYOUT_FIELD(tag, member, offset_value) \
    { .type = #tag, .name = #member, .offset = (offset_value), .width = CVFIO_MEMBER_SIZE(tag, member) },
#define CVFIO_LAYOUT_FLEX(tag, member, offset_value) \
    { .type = #tag, .name = #member, .offset = (offset_value), .width = 0 },
#include "cvfio_layout_list.h"
#undef CVFIO_LAYOUT_STRUCT
#undef CVFIO_LAYOUT_FIELD
#undef CVFIO_LAYOUT_FLEX

#define CVFIO_LAYOUT_EVERY_ROW 1
#define CVFIO_LAYOUT_NEWER_STRUCT(type, size_value, later_size)
#define CVFIO_LAYOUT_NEWER_FIELD(tag, member, offset_value, width_value) \
    { .type = #tag, .name = #member, .offset = (offset_value), .width = (width_value) },
#define CVFIO_LAYOUT_NEWER_CONSTANT(name, value)
#include "cvfio_layout_newer_list.h"
#undef CVFIO_LAYOUT_NEWER_CONSTANT
#undef CVFIO_LAYOUT_NEWER_STRUCT
#undef CVFIO_LAYOUT_NEWER_FIELD
#undef CVFIO_LAYOUT_EVERY_ROW
};

static const struct cvfio_layout_constant cvfio_layout_constants[] = {
#define CVFIO_LAYOUT_EVERY_ROW 1
#define CVFIO_LAYOUT_NEWER_STRUCT(type, size_value, later_size)
#define CVFIO_LAYOUT_NEWER_FIELD(type, field, offset_value, width_value)
#define CVFIO_LAYOUT_NEWER_CONSTANT(constant, number) { .name = #constant, .value = (number) },
#include "cvfio_layout_newer_list.h"
#undef CVFIO_LAYOUT_NEWER_STRUCT
#undef CVFIO_LAYOUT_NEWER_FIELD
#undef CVFIO_LAYOUT_NEWER_CONSTANT
#undef CVFIO_LAYOUT_EVERY_ROW
};

const size_t cvfio_layout_struct_count = sizeof(cvfio_layout_structs) / sizeof(cvfio_layout_structs[0]);
const size_t cvfio_layout_field_count = sizeof(cvfio_layout_fields) / sizeof(cvfio_layout_fields[0]);

const size_t cvfio_layout_constant_count = sizeof(cvfio_layout_constants) / sizeof(cvfio_layout_constants[0]);

const struct cvfio_layout_constant *cvfio_layout_constant_entry(size_t index)
{
    return index < cvfio_layout_constant_count ? &cvfio_layout_constants[index] : NULL;
}

const struct cvfio_layout_struct *cvfio_layout_struct_entry(size_t index)
{
    return index < cvfio_layout_struct_count ? &cvfio_layout_structs[index] : NULL;
}

const struct cvfio_layout_field *cvfio_layout_field_entry(size_t index)
{
    return index < cvfio_layout_field_count ? &cvfio_layout_fields[index] : NULL;
}
