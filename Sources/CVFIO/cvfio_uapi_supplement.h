/*
 * Private to CVFIO (not under include/, so Swift never sees it).
 *
 * Request numbers that Linux 6.14's uAPI defines but an older system header may lack
 * (Debian 12 ships the 6.1 <linux/vfio.h> and no <linux/iommufd.h>). Each one is built
 * with the same _IO() formula the kernel uses, from the command numbers of 6.14, and is
 * guarded by #ifndef so that a newer system header's own definition always wins.
 *
 * Include this after <linux/vfio.h>.
 */
#ifndef CVFIO_UAPI_SUPPLEMENT_H
#define CVFIO_UAPI_SUPPLEMENT_H

#include <linux/ioctl.h>
#include <linux/vfio.h>

#if defined(__has_include)
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#endif
#endif

/* ---- VFIO (type ';', commands numbered from VFIO_BASE = 100) ---------------------- */

/* Device cdev: bind to an iommufd. Argument: struct vfio_device_bind_iommufd *. */
#ifndef VFIO_DEVICE_BIND_IOMMUFD
#define VFIO_DEVICE_BIND_IOMMUFD _IO(VFIO_TYPE, VFIO_BASE + 18)
#endif

/* Device cdev: attach to an IOAS or HWPT. Argument: struct vfio_device_attach_iommufd_pt *. */
#ifndef VFIO_DEVICE_ATTACH_IOMMUFD_PT
#define VFIO_DEVICE_ATTACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 19)
#endif

/* Device cdev: detach. Argument: struct vfio_device_detach_iommufd_pt *. */
#ifndef VFIO_DEVICE_DETACH_IOMMUFD_PT
#define VFIO_DEVICE_DETACH_IOMMUFD_PT _IO(VFIO_TYPE, VFIO_BASE + 20)
#endif

/* Migration data fd, in a PRE_COPY state. Argument: struct vfio_precopy_info *. */
#ifndef VFIO_MIG_GET_PRECOPY_INFO
#define VFIO_MIG_GET_PRECOPY_INFO _IO(VFIO_TYPE, VFIO_BASE + 21)
#endif

/* ---- iommufd (/dev/iommu; type ';', commands numbered from 0x80) ------------------ */

/* The iommufd header spells its type the same as VFIO's; it shares the ';' space. */
#ifndef IOMMUFD_TYPE
#define IOMMUFD_TYPE (';')
#endif

/*
 * Command numbers of 6.14, under private names: the real header declares its
 * IOMMUFD_CMD_* names as enumerators, which a macro of the same name would clobber.
 */
#define CVFIO_IOMMUFD_NR_BASE                  0x80
#define CVFIO_IOMMUFD_NR_DESTROY               (CVFIO_IOMMUFD_NR_BASE + 0x00)
#define CVFIO_IOMMUFD_NR_IOAS_ALLOC            (CVFIO_IOMMUFD_NR_BASE + 0x01)
#define CVFIO_IOMMUFD_NR_IOAS_ALLOW_IOVAS      (CVFIO_IOMMUFD_NR_BASE + 0x02)
#define CVFIO_IOMMUFD_NR_IOAS_COPY             (CVFIO_IOMMUFD_NR_BASE + 0x03)
#define CVFIO_IOMMUFD_NR_IOAS_IOVA_RANGES      (CVFIO_IOMMUFD_NR_BASE + 0x04)
#define CVFIO_IOMMUFD_NR_IOAS_MAP              (CVFIO_IOMMUFD_NR_BASE + 0x05)
#define CVFIO_IOMMUFD_NR_IOAS_UNMAP            (CVFIO_IOMMUFD_NR_BASE + 0x06)
#define CVFIO_IOMMUFD_NR_OPTION                (CVFIO_IOMMUFD_NR_BASE + 0x07)
#define CVFIO_IOMMUFD_NR_VFIO_IOAS             (CVFIO_IOMMUFD_NR_BASE + 0x08)
#define CVFIO_IOMMUFD_NR_HWPT_ALLOC            (CVFIO_IOMMUFD_NR_BASE + 0x09)
#define CVFIO_IOMMUFD_NR_GET_HW_INFO           (CVFIO_IOMMUFD_NR_BASE + 0x0a)
#define CVFIO_IOMMUFD_NR_HWPT_SET_DIRTY_TRACKING (CVFIO_IOMMUFD_NR_BASE + 0x0b)
#define CVFIO_IOMMUFD_NR_HWPT_GET_DIRTY_BITMAP (CVFIO_IOMMUFD_NR_BASE + 0x0c)
#define CVFIO_IOMMUFD_NR_HWPT_INVALIDATE       (CVFIO_IOMMUFD_NR_BASE + 0x0d)
#define CVFIO_IOMMUFD_NR_FAULT_QUEUE_ALLOC     (CVFIO_IOMMUFD_NR_BASE + 0x0e)
#define CVFIO_IOMMUFD_NR_IOAS_MAP_FILE         (CVFIO_IOMMUFD_NR_BASE + 0x0f)
#define CVFIO_IOMMUFD_NR_VIOMMU_ALLOC          (CVFIO_IOMMUFD_NR_BASE + 0x10)
#define CVFIO_IOMMUFD_NR_VDEVICE_ALLOC         (CVFIO_IOMMUFD_NR_BASE + 0x11)
#define CVFIO_IOMMUFD_NR_IOAS_CHANGE_PROCESS   (CVFIO_IOMMUFD_NR_BASE + 0x12)

#ifndef IOMMU_DESTROY
#define IOMMU_DESTROY _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_DESTROY)
#endif
#ifndef IOMMU_IOAS_ALLOC
#define IOMMU_IOAS_ALLOC _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_ALLOC)
#endif
#ifndef IOMMU_IOAS_ALLOW_IOVAS
#define IOMMU_IOAS_ALLOW_IOVAS _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_ALLOW_IOVAS)
#endif
#ifndef IOMMU_IOAS_COPY
#define IOMMU_IOAS_COPY _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_COPY)
#endif
#ifndef IOMMU_IOAS_IOVA_RANGES
#define IOMMU_IOAS_IOVA_RANGES _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_IOVA_RANGES)
#endif
#ifndef IOMMU_IOAS_MAP
#define IOMMU_IOAS_MAP _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_MAP)
#endif
#ifndef IOMMU_IOAS_UNMAP
#define IOMMU_IOAS_UNMAP _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_UNMAP)
#endif
#ifndef IOMMU_OPTION
#define IOMMU_OPTION _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_OPTION)
#endif
#ifndef IOMMU_VFIO_IOAS
#define IOMMU_VFIO_IOAS _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_VFIO_IOAS)
#endif
#ifndef IOMMU_HWPT_ALLOC
#define IOMMU_HWPT_ALLOC _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_HWPT_ALLOC)
#endif
#ifndef IOMMU_GET_HW_INFO
#define IOMMU_GET_HW_INFO _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_GET_HW_INFO)
#endif
#ifndef IOMMU_HWPT_SET_DIRTY_TRACKING
#define IOMMU_HWPT_SET_DIRTY_TRACKING _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_HWPT_SET_DIRTY_TRACKING)
#endif
#ifndef IOMMU_HWPT_GET_DIRTY_BITMAP
#define IOMMU_HWPT_GET_DIRTY_BITMAP _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_HWPT_GET_DIRTY_BITMAP)
#endif
#ifndef IOMMU_HWPT_INVALIDATE
#define IOMMU_HWPT_INVALIDATE _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_HWPT_INVALIDATE)
#endif
#ifndef IOMMU_FAULT_QUEUE_ALLOC
#define IOMMU_FAULT_QUEUE_ALLOC _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_FAULT_QUEUE_ALLOC)
#endif
#ifndef IOMMU_IOAS_MAP_FILE
#define IOMMU_IOAS_MAP_FILE _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_MAP_FILE)
#endif
#ifndef IOMMU_VIOMMU_ALLOC
#define IOMMU_VIOMMU_ALLOC _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_VIOMMU_ALLOC)
#endif
#ifndef IOMMU_VDEVICE_ALLOC
#define IOMMU_VDEVICE_ALLOC _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_VDEVICE_ALLOC)
#endif
#ifndef IOMMU_IOAS_CHANGE_PROCESS
#define IOMMU_IOAS_CHANGE_PROCESS _IO(IOMMUFD_TYPE, CVFIO_IOMMUFD_NR_IOAS_CHANGE_PROCESS)
#endif

#endif
