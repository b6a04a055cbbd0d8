/*
 * Compile-time layout checks: the system <linux/vfio.h> against the Linux 6.14 layout
 * (x86_64 / any LP64 target) that the Swift encoders in the VFIO module write. Every
 * number below is a literal on purpose: if the system header ever disagrees with the
 * layout the project encodes, this file stops the build and names the field.
 *
 * Only structs (and fields) that the system header has can be checked here; Debian 12
 * ships the 6.1 header, so the iommufd structs and the 6.2+ VFIO additions
 * (vfio_device_bind_iommufd, vfio_precopy_info, ...) are checked by the Swift round-trip
 * tests instead.
 */
#include <stddef.h>
#include <linux/vfio.h>

#if defined(__LP64__)

#define CVFIO_SIZE(type, n) \
    _Static_assert(sizeof(struct type) == (n), "sizeof(struct " #type ") is not " #n)
#define CVFIO_OFFSET(type, field, n) \
    _Static_assert(offsetof(struct type, field) == (n), \
                   "offsetof(struct " #type ", " #field ") is not " #n)


/* struct vfio_info_cap_header */
CVFIO_SIZE(vfio_info_cap_header, 8);
CVFIO_OFFSET(vfio_info_cap_header, id, 0);
CVFIO_OFFSET(vfio_info_cap_header, version, 2);
CVFIO_OFFSET(vfio_info_cap_header, next, 4);

/* struct vfio_group_status */
CVFIO_SIZE(vfio_group_status, 8);
CVFIO_OFFSET(vfio_group_status, argsz, 0);
CVFIO_OFFSET(vfio_group_status, flags, 4);

/* struct vfio_device_info */
/*
 * 6.14 ends the struct with an explicit __u32 pad (sizeof 24, the size the Swift encoder
 * writes). Headers before that change end at cap_offset (sizeof 20). The kernel only
 * requires argsz to cover cap_offset, so both are accepted; nothing else may differ.
 */
_Static_assert(sizeof(struct vfio_device_info) == 24 || sizeof(struct vfio_device_info) == 20,
               "sizeof(struct vfio_device_info) is neither 24 (6.14) nor 20 (before the pad)");
CVFIO_OFFSET(vfio_device_info, argsz, 0);
CVFIO_OFFSET(vfio_device_info, flags, 4);
CVFIO_OFFSET(vfio_device_info, num_regions, 8);
CVFIO_OFFSET(vfio_device_info, num_irqs, 12);
CVFIO_OFFSET(vfio_device_info, cap_offset, 16);

/* struct vfio_region_info */
CVFIO_SIZE(vfio_region_info, 32);
CVFIO_OFFSET(vfio_region_info, argsz, 0);
CVFIO_OFFSET(vfio_region_info, flags, 4);
CVFIO_OFFSET(vfio_region_info, index, 8);
CVFIO_OFFSET(vfio_region_info, cap_offset, 12);
CVFIO_OFFSET(vfio_region_info, size, 16);
CVFIO_OFFSET(vfio_region_info, offset, 24);

/* struct vfio_region_sparse_mmap_area */
CVFIO_SIZE(vfio_region_sparse_mmap_area, 16);
CVFIO_OFFSET(vfio_region_sparse_mmap_area, offset, 0);
CVFIO_OFFSET(vfio_region_sparse_mmap_area, size, 8);

/* struct vfio_region_info_cap_sparse_mmap */
CVFIO_SIZE(vfio_region_info_cap_sparse_mmap, 16);
CVFIO_OFFSET(vfio_region_info_cap_sparse_mmap, header, 0);
CVFIO_OFFSET(vfio_region_info_cap_sparse_mmap, nr_areas, 8);
CVFIO_OFFSET(vfio_region_info_cap_sparse_mmap, reserved, 12);
CVFIO_OFFSET(vfio_region_info_cap_sparse_mmap, areas, 16);

/* struct vfio_region_info_cap_type */
CVFIO_SIZE(vfio_region_info_cap_type, 16);
CVFIO_OFFSET(vfio_region_info_cap_type, header, 0);
CVFIO_OFFSET(vfio_region_info_cap_type, type, 8);
CVFIO_OFFSET(vfio_region_info_cap_type, subtype, 12);

/* struct vfio_region_gfx_edid */
CVFIO_SIZE(vfio_region_gfx_edid, 24);
CVFIO_OFFSET(vfio_region_gfx_edid, edid_offset, 0);
CVFIO_OFFSET(vfio_region_gfx_edid, edid_max_size, 4);
CVFIO_OFFSET(vfio_region_gfx_edid, edid_size, 8);
CVFIO_OFFSET(vfio_region_gfx_edid, max_xres, 12);
CVFIO_OFFSET(vfio_region_gfx_edid, max_yres, 16);
CVFIO_OFFSET(vfio_region_gfx_edid, link_state, 20);

/* struct vfio_device_migration_info */
CVFIO_SIZE(vfio_device_migration_info, 32);
CVFIO_OFFSET(vfio_device_migration_info, device_state, 0);
CVFIO_OFFSET(vfio_device_migration_info, reserved, 4);
CVFIO_OFFSET(vfio_device_migration_info, pending_bytes, 8);
CVFIO_OFFSET(vfio_device_migration_info, data_offset, 16);
CVFIO_OFFSET(vfio_device_migration_info, data_size, 24);

/* struct vfio_region_info_cap_nvlink2_ssatgt */
CVFIO_SIZE(vfio_region_info_cap_nvlink2_ssatgt, 16);
CVFIO_OFFSET(vfio_region_info_cap_nvlink2_ssatgt, header, 0);
CVFIO_OFFSET(vfio_region_info_cap_nvlink2_ssatgt, tgt, 8);

/* struct vfio_region_info_cap_nvlink2_lnkspd */
CVFIO_SIZE(vfio_region_info_cap_nvlink2_lnkspd, 16);
CVFIO_OFFSET(vfio_region_info_cap_nvlink2_lnkspd, header, 0);
CVFIO_OFFSET(vfio_region_info_cap_nvlink2_lnkspd, link_speed, 8);
CVFIO_OFFSET(vfio_region_info_cap_nvlink2_lnkspd, __pad, 12);

/* struct vfio_irq_info */
CVFIO_SIZE(vfio_irq_info, 16);
CVFIO_OFFSET(vfio_irq_info, argsz, 0);
CVFIO_OFFSET(vfio_irq_info, flags, 4);
CVFIO_OFFSET(vfio_irq_info, index, 8);
CVFIO_OFFSET(vfio_irq_info, count, 12);

/* struct vfio_irq_set */
CVFIO_SIZE(vfio_irq_set, 20);
CVFIO_OFFSET(vfio_irq_set, argsz, 0);
CVFIO_OFFSET(vfio_irq_set, flags, 4);
CVFIO_OFFSET(vfio_irq_set, index, 8);
CVFIO_OFFSET(vfio_irq_set, start, 12);
CVFIO_OFFSET(vfio_irq_set, count, 16);
CVFIO_OFFSET(vfio_irq_set, data, 20);

/* struct vfio_pci_dependent_device */
CVFIO_SIZE(vfio_pci_dependent_device, 8);
CVFIO_OFFSET(vfio_pci_dependent_device, group_id, 0);
CVFIO_OFFSET(vfio_pci_dependent_device, segment, 4);
CVFIO_OFFSET(vfio_pci_dependent_device, bus, 6);
CVFIO_OFFSET(vfio_pci_dependent_device, devfn, 7);

/* struct vfio_pci_hot_reset_info */
CVFIO_SIZE(vfio_pci_hot_reset_info, 12);
CVFIO_OFFSET(vfio_pci_hot_reset_info, argsz, 0);
CVFIO_OFFSET(vfio_pci_hot_reset_info, flags, 4);
CVFIO_OFFSET(vfio_pci_hot_reset_info, count, 8);
CVFIO_OFFSET(vfio_pci_hot_reset_info, devices, 12);

/* struct vfio_pci_hot_reset */
CVFIO_SIZE(vfio_pci_hot_reset, 12);
CVFIO_OFFSET(vfio_pci_hot_reset, argsz, 0);
CVFIO_OFFSET(vfio_pci_hot_reset, flags, 4);
CVFIO_OFFSET(vfio_pci_hot_reset, count, 8);
CVFIO_OFFSET(vfio_pci_hot_reset, group_fds, 12);

/* struct vfio_device_gfx_plane_info */
CVFIO_SIZE(vfio_device_gfx_plane_info, 64);
CVFIO_OFFSET(vfio_device_gfx_plane_info, argsz, 0);
CVFIO_OFFSET(vfio_device_gfx_plane_info, flags, 4);
CVFIO_OFFSET(vfio_device_gfx_plane_info, drm_plane_type, 8);
CVFIO_OFFSET(vfio_device_gfx_plane_info, drm_format, 12);
CVFIO_OFFSET(vfio_device_gfx_plane_info, drm_format_mod, 16);
CVFIO_OFFSET(vfio_device_gfx_plane_info, width, 24);
CVFIO_OFFSET(vfio_device_gfx_plane_info, height, 28);
CVFIO_OFFSET(vfio_device_gfx_plane_info, stride, 32);
CVFIO_OFFSET(vfio_device_gfx_plane_info, size, 36);
CVFIO_OFFSET(vfio_device_gfx_plane_info, x_pos, 40);
CVFIO_OFFSET(vfio_device_gfx_plane_info, y_pos, 44);
CVFIO_OFFSET(vfio_device_gfx_plane_info, x_hot, 48);
CVFIO_OFFSET(vfio_device_gfx_plane_info, y_hot, 52);
CVFIO_OFFSET(vfio_device_gfx_plane_info, region_index, 56);
CVFIO_OFFSET(vfio_device_gfx_plane_info, dmabuf_id, 56);

/* struct vfio_device_ioeventfd */
CVFIO_SIZE(vfio_device_ioeventfd, 32);
CVFIO_OFFSET(vfio_device_ioeventfd, argsz, 0);
CVFIO_OFFSET(vfio_device_ioeventfd, flags, 4);
CVFIO_OFFSET(vfio_device_ioeventfd, offset, 8);
CVFIO_OFFSET(vfio_device_ioeventfd, data, 16);
CVFIO_OFFSET(vfio_device_ioeventfd, fd, 24);

/* struct vfio_device_feature */
CVFIO_SIZE(vfio_device_feature, 8);
CVFIO_OFFSET(vfio_device_feature, argsz, 0);
CVFIO_OFFSET(vfio_device_feature, flags, 4);
CVFIO_OFFSET(vfio_device_feature, data, 8);

/* struct vfio_device_feature_migration */
CVFIO_SIZE(vfio_device_feature_migration, 8);
CVFIO_OFFSET(vfio_device_feature_migration, flags, 0);

/* struct vfio_device_feature_mig_state */
CVFIO_SIZE(vfio_device_feature_mig_state, 8);
CVFIO_OFFSET(vfio_device_feature_mig_state, device_state, 0);
CVFIO_OFFSET(vfio_device_feature_mig_state, data_fd, 4);

/* struct vfio_device_low_power_entry_with_wakeup */
CVFIO_SIZE(vfio_device_low_power_entry_with_wakeup, 8);
CVFIO_OFFSET(vfio_device_low_power_entry_with_wakeup, wakeup_eventfd, 0);
CVFIO_OFFSET(vfio_device_low_power_entry_with_wakeup, reserved, 4);

/* struct vfio_device_feature_dma_logging_control */
CVFIO_SIZE(vfio_device_feature_dma_logging_control, 24);
CVFIO_OFFSET(vfio_device_feature_dma_logging_control, page_size, 0);
CVFIO_OFFSET(vfio_device_feature_dma_logging_control, num_ranges, 8);
CVFIO_OFFSET(vfio_device_feature_dma_logging_control, __reserved, 12);
CVFIO_OFFSET(vfio_device_feature_dma_logging_control, ranges, 16);

/* struct vfio_device_feature_dma_logging_range */
CVFIO_SIZE(vfio_device_feature_dma_logging_range, 16);
CVFIO_OFFSET(vfio_device_feature_dma_logging_range, iova, 0);
CVFIO_OFFSET(vfio_device_feature_dma_logging_range, length, 8);

/* struct vfio_device_feature_dma_logging_report */
CVFIO_SIZE(vfio_device_feature_dma_logging_report, 32);
CVFIO_OFFSET(vfio_device_feature_dma_logging_report, iova, 0);
CVFIO_OFFSET(vfio_device_feature_dma_logging_report, length, 8);
CVFIO_OFFSET(vfio_device_feature_dma_logging_report, page_size, 16);
CVFIO_OFFSET(vfio_device_feature_dma_logging_report, bitmap, 24);

/* struct vfio_iommu_type1_info */
CVFIO_SIZE(vfio_iommu_type1_info, 24);
CVFIO_OFFSET(vfio_iommu_type1_info, argsz, 0);
CVFIO_OFFSET(vfio_iommu_type1_info, flags, 4);
CVFIO_OFFSET(vfio_iommu_type1_info, iova_pgsizes, 8);
CVFIO_OFFSET(vfio_iommu_type1_info, cap_offset, 16);

/* struct vfio_iova_range */
CVFIO_SIZE(vfio_iova_range, 16);
CVFIO_OFFSET(vfio_iova_range, start, 0);
CVFIO_OFFSET(vfio_iova_range, end, 8);

/* struct vfio_iommu_type1_info_cap_iova_range */
CVFIO_SIZE(vfio_iommu_type1_info_cap_iova_range, 16);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_iova_range, header, 0);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_iova_range, nr_iovas, 8);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_iova_range, reserved, 12);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_iova_range, iova_ranges, 16);

/* struct vfio_iommu_type1_info_cap_migration */
CVFIO_SIZE(vfio_iommu_type1_info_cap_migration, 32);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_migration, header, 0);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_migration, flags, 8);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_migration, pgsize_bitmap, 16);
CVFIO_OFFSET(vfio_iommu_type1_info_cap_migration, max_dirty_bitmap_size, 24);

/* struct vfio_iommu_type1_info_dma_avail */
CVFIO_SIZE(vfio_iommu_type1_info_dma_avail, 12);
CVFIO_OFFSET(vfio_iommu_type1_info_dma_avail, header, 0);
CVFIO_OFFSET(vfio_iommu_type1_info_dma_avail, avail, 8);

/* struct vfio_iommu_type1_dma_map */
CVFIO_SIZE(vfio_iommu_type1_dma_map, 32);
CVFIO_OFFSET(vfio_iommu_type1_dma_map, argsz, 0);
CVFIO_OFFSET(vfio_iommu_type1_dma_map, flags, 4);
CVFIO_OFFSET(vfio_iommu_type1_dma_map, vaddr, 8);
CVFIO_OFFSET(vfio_iommu_type1_dma_map, iova, 16);
CVFIO_OFFSET(vfio_iommu_type1_dma_map, size, 24);

/* struct vfio_bitmap */
CVFIO_SIZE(vfio_bitmap, 24);
CVFIO_OFFSET(vfio_bitmap, pgsize, 0);
CVFIO_OFFSET(vfio_bitmap, size, 8);
CVFIO_OFFSET(vfio_bitmap, data, 16);

/* struct vfio_iommu_type1_dma_unmap */
CVFIO_SIZE(vfio_iommu_type1_dma_unmap, 24);
CVFIO_OFFSET(vfio_iommu_type1_dma_unmap, argsz, 0);
CVFIO_OFFSET(vfio_iommu_type1_dma_unmap, flags, 4);
CVFIO_OFFSET(vfio_iommu_type1_dma_unmap, iova, 8);
CVFIO_OFFSET(vfio_iommu_type1_dma_unmap, size, 16);
CVFIO_OFFSET(vfio_iommu_type1_dma_unmap, data, 24);

/* struct vfio_iommu_type1_dirty_bitmap */
CVFIO_SIZE(vfio_iommu_type1_dirty_bitmap, 8);
CVFIO_OFFSET(vfio_iommu_type1_dirty_bitmap, argsz, 0);
CVFIO_OFFSET(vfio_iommu_type1_dirty_bitmap, flags, 4);
CVFIO_OFFSET(vfio_iommu_type1_dirty_bitmap, data, 8);

/* struct vfio_iommu_type1_dirty_bitmap_get */
CVFIO_SIZE(vfio_iommu_type1_dirty_bitmap_get, 40);
CVFIO_OFFSET(vfio_iommu_type1_dirty_bitmap_get, iova, 0);
CVFIO_OFFSET(vfio_iommu_type1_dirty_bitmap_get, size, 8);
CVFIO_OFFSET(vfio_iommu_type1_dirty_bitmap_get, bitmap, 16);

/* struct vfio_iommu_spapr_tce_ddw_info */
CVFIO_SIZE(vfio_iommu_spapr_tce_ddw_info, 16);
CVFIO_OFFSET(vfio_iommu_spapr_tce_ddw_info, pgsizes, 0);
CVFIO_OFFSET(vfio_iommu_spapr_tce_ddw_info, max_dynamic_windows_supported, 8);
CVFIO_OFFSET(vfio_iommu_spapr_tce_ddw_info, levels, 12);

/* struct vfio_iommu_spapr_tce_info */
CVFIO_SIZE(vfio_iommu_spapr_tce_info, 32);
CVFIO_OFFSET(vfio_iommu_spapr_tce_info, argsz, 0);
CVFIO_OFFSET(vfio_iommu_spapr_tce_info, flags, 4);
CVFIO_OFFSET(vfio_iommu_spapr_tce_info, dma32_window_start, 8);
CVFIO_OFFSET(vfio_iommu_spapr_tce_info, dma32_window_size, 12);
CVFIO_OFFSET(vfio_iommu_spapr_tce_info, ddw, 16);

/* struct vfio_eeh_pe_err */
CVFIO_SIZE(vfio_eeh_pe_err, 24);
CVFIO_OFFSET(vfio_eeh_pe_err, type, 0);
CVFIO_OFFSET(vfio_eeh_pe_err, func, 4);
CVFIO_OFFSET(vfio_eeh_pe_err, addr, 8);
CVFIO_OFFSET(vfio_eeh_pe_err, mask, 16);

/* struct vfio_eeh_pe_op */
CVFIO_SIZE(vfio_eeh_pe_op, 40);
CVFIO_OFFSET(vfio_eeh_pe_op, argsz, 0);
CVFIO_OFFSET(vfio_eeh_pe_op, flags, 4);
CVFIO_OFFSET(vfio_eeh_pe_op, op, 8);
CVFIO_OFFSET(vfio_eeh_pe_op, err, 16);

/* struct vfio_iommu_spapr_register_memory */
CVFIO_SIZE(vfio_iommu_spapr_register_memory, 24);
CVFIO_OFFSET(vfio_iommu_spapr_register_memory, argsz, 0);
CVFIO_OFFSET(vfio_iommu_spapr_register_memory, flags, 4);
CVFIO_OFFSET(vfio_iommu_spapr_register_memory, vaddr, 8);
CVFIO_OFFSET(vfio_iommu_spapr_register_memory, size, 16);

/* struct vfio_iommu_spapr_tce_create */
CVFIO_SIZE(vfio_iommu_spapr_tce_create, 40);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, argsz, 0);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, flags, 4);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, page_shift, 8);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, __resv1, 12);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, window_size, 16);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, levels, 24);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, __resv2, 28);
CVFIO_OFFSET(vfio_iommu_spapr_tce_create, start_addr, 32);

/* struct vfio_iommu_spapr_tce_remove */
CVFIO_SIZE(vfio_iommu_spapr_tce_remove, 16);
CVFIO_OFFSET(vfio_iommu_spapr_tce_remove, argsz, 0);
CVFIO_OFFSET(vfio_iommu_spapr_tce_remove, flags, 4);
CVFIO_OFFSET(vfio_iommu_spapr_tce_remove, start_addr, 8);

#endif /* __LP64__ */

/* ISO C forbids an empty translation unit when the checks above compile away. */
typedef int cvfio_layout_checks_unit;

