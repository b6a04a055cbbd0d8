/*
 * Compile-time layout checks: the system's uAPI headers against the Linux 6.14 layout
 * (x86_64 / any LP64 target) that the Swift encoders in the VFIO module write. The
 * literals live in cvfio_layout_list.h (every struct of <linux/vfio.h>, <linux/vfio_zdev.h>
 * and <linux/vfio_ccw.h> as Debian 12's 6.1 headers have them) and in
 * cvfio_layout_newer_list.h (the seven <linux/vfio.h> structs and the 19 constants 6.1
 * lacks, checked here wherever the system header declares them). If a header disagrees with a literal, the
 * build stops and names the struct and field. The Swift tests then compare the VFIO
 * module's encodings, byte by byte, with the same rows (cvfio_layout.c).
 *
 * This file deliberately does not include cvfio_uapi_supplement.h: the supplement defines
 * the macros the newer list takes as witnesses that the system header has a struct.
 *
 * Debian 12's 6.1 headers declare none of the seven, so there they compile away. To check
 * them, compile this file alone against a newer kernel's uapi headers with
 * -DCVFIO_LAYOUT_REQUIRE_NEWER (CI does, with the guest kernel's headers): then a header
 * that lacks any of the seven is an error rather than a silent skip.
 */
#include <stddef.h>
#include <linux/vfio.h>
#include <linux/vfio_zdev.h>
#include <linux/vfio_ccw.h>

#if defined(CVFIO_LAYOUT_REQUIRE_NEWER) && !(defined(VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP) && \
    defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(VFIO_DEVICE_ATTACH_IOMMUFD_PT) && \
    defined(VFIO_DEVICE_DETACH_IOMMUFD_PT) && defined(VFIO_MIG_GET_PRECOPY_INFO) && \
    defined(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE) && defined(VFIO_DEVICE_FEATURE_BUS_MASTER) && \
    defined(VFIO_PCI_DEVID_OWNED))
#error "CVFIO_LAYOUT_REQUIRE_NEWER: this <linux/vfio.h> lacks a struct of cvfio_layout_newer_list.h"
#endif

#if defined(__LP64__)

#define CVFIO_MEMBER_SIZE(type, field) sizeof(((struct type *)0)->field)

#define CVFIO_LAYOUT_STRUCT(header, type, size, other_size) \
    _Static_assert(sizeof(struct type) == (size) || sizeof(struct type) == (other_size), \
                   "sizeof(struct " #type ") is neither " #size " nor " #other_size " (" header ")");
#define CVFIO_LAYOUT_FIELD(type, field, offset) \
    _Static_assert(offsetof(struct type, field) == (offset), \
                   "offsetof(struct " #type ", " #field ") is not " #offset);
#define CVFIO_LAYOUT_FLEX(type, field, offset) CVFIO_LAYOUT_FIELD(type, field, offset)
#include "cvfio_layout_list.h"
#undef CVFIO_LAYOUT_STRUCT
#undef CVFIO_LAYOUT_FIELD
#undef CVFIO_LAYOUT_FLEX

#define CVFIO_LAYOUT_EVERY_ROW 0
#define CVFIO_LAYOUT_NEWER_STRUCT(type, size, later_size) \
    _Static_assert(sizeof(struct type) == (size) || sizeof(struct type) == (later_size), \
                   "sizeof(struct " #type ") is neither " #size " (6.14) nor " #later_size " (later)");
#define CVFIO_LAYOUT_NEWER_FIELD(type, field, offset, width) \
    _Static_assert(offsetof(struct type, field) == (offset), \
                   "offsetof(struct " #type ", " #field ") is not " #offset); \
    _Static_assert(CVFIO_MEMBER_SIZE(type, field) == (width), \
                   "sizeof(struct " #type "." #field ") is not " #width);
#define CVFIO_LAYOUT_NEWER_CONSTANT(name, value) \
    _Static_assert((name) == (value), #name " is not " #value);
#include "cvfio_layout_newer_list.h"
#undef CVFIO_LAYOUT_NEWER_STRUCT
#undef CVFIO_LAYOUT_NEWER_FIELD
#undef CVFIO_LAYOUT_NEWER_CONSTANT
#undef CVFIO_LAYOUT_EVERY_ROW

#endif /* __LP64__ */

/* ISO C forbids an empty translation unit when the checks above compile away. */
typedef int cvfio_layout_checks_unit;
