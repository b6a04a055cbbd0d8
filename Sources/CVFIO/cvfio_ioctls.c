/*
 * Definitions of the request-number constants and the tool table declared in
 * include/cvfio_ioctls.h. The values come from the preprocessor: the system's uAPI
 * headers first, cvfio_uapi_supplement.h for what they lack.
 */
#include "cvfio_ioctls.h"

#include <linux/ioctl.h>
#include <linux/vfio.h>

#include "cvfio_uapi_supplement.h"

const int CVFIO_VFIO_API_VERSION = VFIO_API_VERSION;
const unsigned int CVFIO_VFIO_TYPE = VFIO_TYPE;
const unsigned int CVFIO_VFIO_BASE = VFIO_BASE;
const unsigned int CVFIO_IOMMUFD_CMD_BASE = CVFIO_IOMMUFD_NR_BASE;

/* Both uAPIs must keep encoding neither size nor direction: _IO(type, nr). */
_Static_assert(VFIO_GET_API_VERSION == ((';' << _IOC_TYPESHIFT) | (100 << _IOC_NRSHIFT)),
               "VFIO_GET_API_VERSION is not _IO(';', 100)");
_Static_assert(IOMMU_DESTROY == ((';' << _IOC_TYPESHIFT) | (0x80 << _IOC_NRSHIFT)),
               "IOMMU_DESTROY is not _IO(';', 0x80)");

#define CVFIO_IOCTL(macro, argument_text, object_text) const unsigned long CVFIO_##macro = macro;
#include "cvfio_ioctl_list.h"
#undef CVFIO_IOCTL

const struct cvfio_ioctl_entry cvfio_ioctl_table[] = {
#define CVFIO_IOCTL(macro, argument_text, object_text) \
    { .name = #macro, .request = macro, .argument = argument_text, .object = object_text },
#include "cvfio_ioctl_list.h"
#undef CVFIO_IOCTL
};

const size_t cvfio_ioctl_table_count = sizeof(cvfio_ioctl_table) / sizeof(cvfio_ioctl_table[0]);

const struct cvfio_ioctl_entry *cvfio_ioctl_table_entry(size_t index)
{
    return index < cvfio_ioctl_table_count ? &cvfio_ioctl_table[index] : NULL;
}
