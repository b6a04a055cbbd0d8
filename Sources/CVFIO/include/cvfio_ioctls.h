/*
 * VFIO and iommufd ioctl request numbers (Linux 6.14 uAPI), as constants.
 *
 * Every value is computed by the C preprocessor: from the system <linux/vfio.h> (and
 * <linux/iommufd.h> when the system has it) where that header defines the request, and
 * otherwise from CVFIO's private supplement, which applies the kernel's _IO(type, nr)
 * formula to the 6.14 command numbers. All VFIO and iommufd requests are _IO() with type
 * ';' (0x3b): no size or direction is encoded; extensibility rides on argsz/size fields.
 *
 * Request numbers are unique only per kind of descriptor: the container, device and
 * sPAPR-IOMMU commands reuse VFIO_BASE + 12 ... + 21. cvfio_ioctl_table says on which
 * descriptor each request is issued.
 */
#ifndef CVFIO_IOCTLS_H
#define CVFIO_IOCTLS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* VFIO_API_VERSION: what VFIO_GET_API_VERSION returns on a container (0). */
extern const int CVFIO_VFIO_API_VERSION;
/* The ioctl type shared by VFIO and iommufd (';', 0x3b), and their first command numbers. */
extern const unsigned int CVFIO_VFIO_TYPE;
extern const unsigned int CVFIO_VFIO_BASE;       /* 100 */
extern const unsigned int CVFIO_IOMMUFD_CMD_BASE; /* 0x80 */

/* ---- container (/dev/vfio/vfio, or an iommufd in VFIO compatibility mode) ---- */
extern const unsigned long CVFIO_VFIO_GET_API_VERSION;        /* none; returns the version */
extern const unsigned long CVFIO_VFIO_CHECK_EXTENSION;        /* int extension; returns > 0 if supported */
extern const unsigned long CVFIO_VFIO_SET_IOMMU;              /* int IOMMU type */

/* ---- group (/dev/vfio/N) ---- */
extern const unsigned long CVFIO_VFIO_GROUP_GET_STATUS;       /* struct vfio_group_status * */
extern const unsigned long CVFIO_VFIO_GROUP_SET_CONTAINER;    /* int * (container fd) */
extern const unsigned long CVFIO_VFIO_GROUP_UNSET_CONTAINER;  /* none */
extern const unsigned long CVFIO_VFIO_GROUP_GET_DEVICE_FD;    /* char * device name; returns a device fd */

/* ---- device (from the group, or the /dev/vfio/devices/vfioN cdev) ---- */
extern const unsigned long CVFIO_VFIO_DEVICE_GET_INFO;        /* struct vfio_device_info * */
extern const unsigned long CVFIO_VFIO_DEVICE_GET_REGION_INFO; /* struct vfio_region_info * */
extern const unsigned long CVFIO_VFIO_DEVICE_GET_IRQ_INFO;    /* struct vfio_irq_info * */
extern const unsigned long CVFIO_VFIO_DEVICE_SET_IRQS;        /* struct vfio_irq_set * */
extern const unsigned long CVFIO_VFIO_DEVICE_RESET;           /* none */
extern const unsigned long CVFIO_VFIO_DEVICE_GET_PCI_HOT_RESET_INFO; /* struct vfio_pci_hot_reset_info * */
extern const unsigned long CVFIO_VFIO_DEVICE_PCI_HOT_RESET;   /* struct vfio_pci_hot_reset * */
extern const unsigned long CVFIO_VFIO_DEVICE_QUERY_GFX_PLANE; /* struct vfio_device_gfx_plane_info * */
extern const unsigned long CVFIO_VFIO_DEVICE_GET_GFX_DMABUF;  /* __u32 * dmabuf id; returns a dma-buf fd */
extern const unsigned long CVFIO_VFIO_DEVICE_IOEVENTFD;       /* struct vfio_device_ioeventfd * */
extern const unsigned long CVFIO_VFIO_DEVICE_FEATURE;         /* struct vfio_device_feature * */
extern const unsigned long CVFIO_VFIO_DEVICE_BIND_IOMMUFD;    /* struct vfio_device_bind_iommufd * (cdev only) */
extern const unsigned long CVFIO_VFIO_DEVICE_ATTACH_IOMMUFD_PT; /* struct vfio_device_attach_iommufd_pt * (cdev only) */
extern const unsigned long CVFIO_VFIO_DEVICE_DETACH_IOMMUFD_PT; /* struct vfio_device_detach_iommufd_pt * (cdev only) */

/* ---- migration data fd (returned by the MIG_DEVICE_STATE feature) ---- */
extern const unsigned long CVFIO_VFIO_MIG_GET_PRECOPY_INFO;   /* struct vfio_precopy_info * */

/* ---- container with an IOMMU backend set (type1 unless noted) ---- */
extern const unsigned long CVFIO_VFIO_IOMMU_GET_INFO;         /* struct vfio_iommu_type1_info * */
extern const unsigned long CVFIO_VFIO_IOMMU_MAP_DMA;          /* struct vfio_iommu_type1_dma_map * (type1 and sPAPR) */
extern const unsigned long CVFIO_VFIO_IOMMU_UNMAP_DMA;        /* struct vfio_iommu_type1_dma_unmap * (type1 and sPAPR) */
extern const unsigned long CVFIO_VFIO_IOMMU_ENABLE;           /* none (sPAPR TCE v1) */
extern const unsigned long CVFIO_VFIO_IOMMU_DISABLE;          /* none (sPAPR TCE v1) */
extern const unsigned long CVFIO_VFIO_IOMMU_DIRTY_PAGES;      /* struct vfio_iommu_type1_dirty_bitmap * */

/* ---- container with the sPAPR TCE backend (POWER) ---- */
extern const unsigned long CVFIO_VFIO_IOMMU_SPAPR_TCE_GET_INFO; /* struct vfio_iommu_spapr_tce_info * */
extern const unsigned long CVFIO_VFIO_EEH_PE_OP;              /* struct vfio_eeh_pe_op * */
extern const unsigned long CVFIO_VFIO_IOMMU_SPAPR_REGISTER_MEMORY;   /* struct vfio_iommu_spapr_register_memory * */
extern const unsigned long CVFIO_VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY; /* struct vfio_iommu_spapr_register_memory * */
extern const unsigned long CVFIO_VFIO_IOMMU_SPAPR_TCE_CREATE; /* struct vfio_iommu_spapr_tce_create * */
extern const unsigned long CVFIO_VFIO_IOMMU_SPAPR_TCE_REMOVE; /* struct vfio_iommu_spapr_tce_remove * */

/* ---- iommufd (/dev/iommu); each takes a pointer to the struct named after it ---- */
extern const unsigned long CVFIO_IOMMU_DESTROY;               /* struct iommu_destroy * */
extern const unsigned long CVFIO_IOMMU_IOAS_ALLOC;            /* struct iommu_ioas_alloc * */
extern const unsigned long CVFIO_IOMMU_IOAS_ALLOW_IOVAS;      /* struct iommu_ioas_allow_iovas * */
extern const unsigned long CVFIO_IOMMU_IOAS_COPY;             /* struct iommu_ioas_copy * */
extern const unsigned long CVFIO_IOMMU_IOAS_IOVA_RANGES;      /* struct iommu_ioas_iova_ranges * */
extern const unsigned long CVFIO_IOMMU_IOAS_MAP;              /* struct iommu_ioas_map * */
extern const unsigned long CVFIO_IOMMU_IOAS_UNMAP;            /* struct iommu_ioas_unmap * */
extern const unsigned long CVFIO_IOMMU_OPTION;                /* struct iommu_option * */
extern const unsigned long CVFIO_IOMMU_VFIO_IOAS;             /* struct iommu_vfio_ioas * */
extern const unsigned long CVFIO_IOMMU_HWPT_ALLOC;            /* struct iommu_hwpt_alloc * */
extern const unsigned long CVFIO_IOMMU_GET_HW_INFO;           /* struct iommu_hw_info * */
extern const unsigned long CVFIO_IOMMU_HWPT_SET_DIRTY_TRACKING; /* struct iommu_hwpt_set_dirty_tracking * */
extern const unsigned long CVFIO_IOMMU_HWPT_GET_DIRTY_BITMAP; /* struct iommu_hwpt_get_dirty_bitmap * */
extern const unsigned long CVFIO_IOMMU_HWPT_INVALIDATE;       /* struct iommu_hwpt_invalidate * */
extern const unsigned long CVFIO_IOMMU_FAULT_QUEUE_ALLOC;     /* struct iommu_fault_alloc * */
extern const unsigned long CVFIO_IOMMU_IOAS_MAP_FILE;         /* struct iommu_ioas_map_file * */
extern const unsigned long CVFIO_IOMMU_VIOMMU_ALLOC;          /* struct iommu_viommu_alloc * */
extern const unsigned long CVFIO_IOMMU_VDEVICE_ALLOC;         /* struct iommu_vdevice_alloc * */
extern const unsigned long CVFIO_IOMMU_IOAS_CHANGE_PROCESS;   /* struct iommu_ioas_change_process * */

/*
 * One row per request above, for tools (listing, decoding strace output, ...).
 *   name:     the C macro name without the CVFIO_ prefix, e.g. "VFIO_DEVICE_GET_INFO";
 *   request:  the request number (same value as CVFIO_<name>);
 *   argument: what the third ioctl argument is, e.g. "struct vfio_region_info *",
 *             "int (extension id)", or "none";
 *   object:   the descriptor the request is issued on: "container", "container/type1",
 *             "container/spapr" (a container with that IOMMU backend set), "group",
 *             "device", "migration data fd" or "iommufd". (name, object) is unique and
 *             so is (request, object) once "container/x" is read as also "container".
 */
struct cvfio_ioctl_entry {
    const char *name;
    unsigned long request;
    const char *argument;
    const char *object;
};

extern const struct cvfio_ioctl_entry cvfio_ioctl_table[];
extern const size_t cvfio_ioctl_table_count;

/* Row index of cvfio_ioctl_table, or NULL past the end (Swift cannot index an extern
 * array of unknown size directly). */
const struct cvfio_ioctl_entry *cvfio_ioctl_table_entry(size_t index);

#ifdef __cplusplus
}
#endif

#endif
