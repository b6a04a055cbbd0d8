/*
 * The Linux 6.14 (LP64) layout of the VFIO uAPI structs, as rows a Swift test can walk:
 * every struct of the system's <linux/vfio.h>, <linux/vfio_zdev.h> and <linux/vfio_ccw.h>
 * (Debian 12: 6.1), whose rows the build checks against those headers with
 * _Static_asserts, and the seven <linux/vfio.h> structs 6.1 lacks, as literals (checked
 * against the system header wherever it declares them).
 */
#ifndef CVFIO_LAYOUT_H
#define CVFIO_LAYOUT_H

#include <stddef.h>

/* One struct: its C name without `struct`, sizeof in 6.14, the header that defines it,
 * and whether it is one of the seven that the 6.1 header lacks (1) or not (0). */
struct cvfio_layout_struct {
    const char *name;
    unsigned int size;
    const char *header;
    int newer_than_6_1;
};

/* One member: its struct, its name, its offset, and its width in bytes (sizeof the
 * member; 0 for a flexible array member). */
struct cvfio_layout_field {
    const char *type;
    const char *name;
    unsigned int offset;
    unsigned int width;
};

/* A constant of 6.14's <linux/vfio.h> that the 6.1 header lacks, with its 6.14 value
 * (checked against the system header wherever it has the name). */
struct cvfio_layout_constant {
    const char *name;
    long long value;
};

extern const size_t cvfio_layout_struct_count;
extern const size_t cvfio_layout_field_count;

/* Row `index`, or NULL past the end (Swift cannot index an extern array of unknown size). */
const struct cvfio_layout_struct *cvfio_layout_struct_entry(size_t index);
const struct cvfio_layout_field *cvfio_layout_field_entry(size_t index);

extern const size_t cvfio_layout_constant_count;
const struct cvfio_layout_constant *cvfio_layout_constant_entry(size_t index);

#endif
