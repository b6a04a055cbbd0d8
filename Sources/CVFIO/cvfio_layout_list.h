/*
 * Private to CVFIO: the Linux 6.14 (LP64) layout of every struct that Debian 12's 6.1
 * uAPI headers define in <linux/vfio.h>, <linux/vfio_zdev.h> and <linux/vfio_ccw.h>.
 * Every number is a literal on purpose. cvfio_layout_checks.c expands the rows into
 * _Static_asserts against the system headers (the build stops and names the field if a
 * header disagrees); cvfio_layout.c expands them into the table Swift tests compare the
 * VFIO module's encodings with.
 *
 *   CVFIO_LAYOUT_STRUCT(header, type, size, other_size): sizeof(struct type) is size in
 *       6.14; a system header may also give other_size (an older or a later form).
 *   CVFIO_LAYOUT_FIELD(type, field, offset): a member at offset (its width is sizeof).
 *   CVFIO_LAYOUT_FLEX(type, field, offset): a flexible array member at offset.
 *
 * The structs 6.1 lacks are in cvfio_layout_newer_list.h. Nested structs are rows of
 * their own (a capability's `header` is one 8-byte member here).
 */

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_info_cap_header, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_info_cap_header, id, 0)
CVFIO_LAYOUT_FIELD(vfio_info_cap_header, version, 2)
CVFIO_LAYOUT_FIELD(vfio_info_cap_header, next, 4)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_group_status, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_group_status, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_group_status, flags, 4)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_info, 24, 20)
CVFIO_LAYOUT_FIELD(vfio_device_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_device_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_device_info, num_regions, 8)
CVFIO_LAYOUT_FIELD(vfio_device_info, num_irqs, 12)
CVFIO_LAYOUT_FIELD(vfio_device_info, cap_offset, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_info, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_region_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_region_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_region_info, index, 8)
CVFIO_LAYOUT_FIELD(vfio_region_info, cap_offset, 12)
CVFIO_LAYOUT_FIELD(vfio_region_info, size, 16)
CVFIO_LAYOUT_FIELD(vfio_region_info, offset, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_sparse_mmap_area, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_region_sparse_mmap_area, offset, 0)
CVFIO_LAYOUT_FIELD(vfio_region_sparse_mmap_area, size, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_info_cap_sparse_mmap, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_sparse_mmap, header, 0)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_sparse_mmap, nr_areas, 8)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_sparse_mmap, reserved, 12)
CVFIO_LAYOUT_FLEX(vfio_region_info_cap_sparse_mmap, areas, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_info_cap_type, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_type, header, 0)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_type, type, 8)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_type, subtype, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_gfx_edid, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_region_gfx_edid, edid_offset, 0)
CVFIO_LAYOUT_FIELD(vfio_region_gfx_edid, edid_max_size, 4)
CVFIO_LAYOUT_FIELD(vfio_region_gfx_edid, edid_size, 8)
CVFIO_LAYOUT_FIELD(vfio_region_gfx_edid, max_xres, 12)
CVFIO_LAYOUT_FIELD(vfio_region_gfx_edid, max_yres, 16)
CVFIO_LAYOUT_FIELD(vfio_region_gfx_edid, link_state, 20)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_migration_info, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_device_migration_info, device_state, 0)
CVFIO_LAYOUT_FIELD(vfio_device_migration_info, reserved, 4)
CVFIO_LAYOUT_FIELD(vfio_device_migration_info, pending_bytes, 8)
CVFIO_LAYOUT_FIELD(vfio_device_migration_info, data_offset, 16)
CVFIO_LAYOUT_FIELD(vfio_device_migration_info, data_size, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_info_cap_nvlink2_ssatgt, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_nvlink2_ssatgt, header, 0)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_nvlink2_ssatgt, tgt, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_region_info_cap_nvlink2_lnkspd, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_nvlink2_lnkspd, header, 0)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_nvlink2_lnkspd, link_speed, 8)
CVFIO_LAYOUT_FIELD(vfio_region_info_cap_nvlink2_lnkspd, __pad, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_irq_info, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_irq_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_irq_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_irq_info, index, 8)
CVFIO_LAYOUT_FIELD(vfio_irq_info, count, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_irq_set, 20, 20)
CVFIO_LAYOUT_FIELD(vfio_irq_set, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_irq_set, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_irq_set, index, 8)
CVFIO_LAYOUT_FIELD(vfio_irq_set, start, 12)
CVFIO_LAYOUT_FIELD(vfio_irq_set, count, 16)
CVFIO_LAYOUT_FLEX(vfio_irq_set, data, 20)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_pci_dependent_device, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_pci_dependent_device, group_id, 0)
CVFIO_LAYOUT_FIELD(vfio_pci_dependent_device, segment, 4)
CVFIO_LAYOUT_FIELD(vfio_pci_dependent_device, bus, 6)
CVFIO_LAYOUT_FIELD(vfio_pci_dependent_device, devfn, 7)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_pci_hot_reset_info, 12, 12)
CVFIO_LAYOUT_FIELD(vfio_pci_hot_reset_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_pci_hot_reset_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_pci_hot_reset_info, count, 8)
CVFIO_LAYOUT_FLEX(vfio_pci_hot_reset_info, devices, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_pci_hot_reset, 12, 12)
CVFIO_LAYOUT_FIELD(vfio_pci_hot_reset, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_pci_hot_reset, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_pci_hot_reset, count, 8)
CVFIO_LAYOUT_FLEX(vfio_pci_hot_reset, group_fds, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_gfx_plane_info, 64, 64)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, drm_plane_type, 8)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, drm_format, 12)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, drm_format_mod, 16)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, width, 24)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, height, 28)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, stride, 32)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, size, 36)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, x_pos, 40)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, y_pos, 44)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, x_hot, 48)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, y_hot, 52)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, region_index, 56)
CVFIO_LAYOUT_FIELD(vfio_device_gfx_plane_info, dmabuf_id, 56)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_ioeventfd, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_device_ioeventfd, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_device_ioeventfd, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_device_ioeventfd, offset, 8)
CVFIO_LAYOUT_FIELD(vfio_device_ioeventfd, data, 16)
CVFIO_LAYOUT_FIELD(vfio_device_ioeventfd, fd, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_feature, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_device_feature, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_device_feature, flags, 4)
CVFIO_LAYOUT_FLEX(vfio_device_feature, data, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_feature_migration, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_device_feature_migration, flags, 0)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_feature_mig_state, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_device_feature_mig_state, device_state, 0)
CVFIO_LAYOUT_FIELD(vfio_device_feature_mig_state, data_fd, 4)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_low_power_entry_with_wakeup, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_device_low_power_entry_with_wakeup, wakeup_eventfd, 0)
CVFIO_LAYOUT_FIELD(vfio_device_low_power_entry_with_wakeup, reserved, 4)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_feature_dma_logging_control, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_control, page_size, 0)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_control, num_ranges, 8)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_control, __reserved, 12)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_control, ranges, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_feature_dma_logging_range, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_range, iova, 0)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_range, length, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_device_feature_dma_logging_report, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_report, iova, 0)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_report, length, 8)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_report, page_size, 16)
CVFIO_LAYOUT_FIELD(vfio_device_feature_dma_logging_report, bitmap, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_info, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info, iova_pgsizes, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info, cap_offset, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iova_range, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_iova_range, start, 0)
CVFIO_LAYOUT_FIELD(vfio_iova_range, end, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_info_cap_iova_range, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_iova_range, header, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_iova_range, nr_iovas, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_iova_range, reserved, 12)
CVFIO_LAYOUT_FLEX(vfio_iommu_type1_info_cap_iova_range, iova_ranges, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_info_cap_migration, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_migration, header, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_migration, flags, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_migration, pgsize_bitmap, 16)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_cap_migration, max_dirty_bitmap_size, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_info_dma_avail, 12, 12)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_dma_avail, header, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_info_dma_avail, avail, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_dma_map, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_map, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_map, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_map, vaddr, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_map, iova, 16)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_map, size, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_bitmap, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_bitmap, pgsize, 0)
CVFIO_LAYOUT_FIELD(vfio_bitmap, size, 8)
CVFIO_LAYOUT_FIELD(vfio_bitmap, data, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_dma_unmap, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_unmap, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_unmap, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_unmap, iova, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dma_unmap, size, 16)
CVFIO_LAYOUT_FLEX(vfio_iommu_type1_dma_unmap, data, 24)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_dirty_bitmap, 8, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dirty_bitmap, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dirty_bitmap, flags, 4)
CVFIO_LAYOUT_FLEX(vfio_iommu_type1_dirty_bitmap, data, 8)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_type1_dirty_bitmap_get, 40, 40)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dirty_bitmap_get, iova, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dirty_bitmap_get, size, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_type1_dirty_bitmap_get, bitmap, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_spapr_tce_ddw_info, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_ddw_info, pgsizes, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_ddw_info, max_dynamic_windows_supported, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_ddw_info, levels, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_spapr_tce_info, 32, 32)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_info, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_info, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_info, dma32_window_start, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_info, dma32_window_size, 12)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_info, ddw, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_eeh_pe_err, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_err, type, 0)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_err, func, 4)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_err, addr, 8)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_err, mask, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_eeh_pe_op, 40, 40)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_op, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_op, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_op, op, 8)
CVFIO_LAYOUT_FIELD(vfio_eeh_pe_op, err, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_spapr_register_memory, 24, 24)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_register_memory, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_register_memory, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_register_memory, vaddr, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_register_memory, size, 16)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_spapr_tce_create, 40, 40)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, page_shift, 8)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, __resv1, 12)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, window_size, 16)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, levels, 24)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, __resv2, 28)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_create, start_addr, 32)

CVFIO_LAYOUT_STRUCT("linux/vfio.h", vfio_iommu_spapr_tce_remove, 16, 16)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_remove, argsz, 0)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_remove, flags, 4)
CVFIO_LAYOUT_FIELD(vfio_iommu_spapr_tce_remove, start_addr, 8)

/* <linux/vfio_zdev.h>: the s390 zPCI device-info capabilities (ids 1-4). */

CVFIO_LAYOUT_STRUCT("linux/vfio_zdev.h", vfio_device_info_cap_zpci_base, 40, 40)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, header, 0)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, start_dma, 8)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, end_dma, 16)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, pchid, 24)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, vfn, 26)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, fmb_length, 28)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, pft, 30)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, gid, 31)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_base, fh, 32)

CVFIO_LAYOUT_STRUCT("linux/vfio_zdev.h", vfio_device_info_cap_zpci_group, 48, 48)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, header, 0)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, dasm, 8)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, msi_addr, 16)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, flags, 24)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, mui, 32)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, noi, 34)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, maxstbl, 36)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, version, 38)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, reserved, 39)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_group, imaxstbl, 40)

CVFIO_LAYOUT_STRUCT("linux/vfio_zdev.h", vfio_device_info_cap_zpci_util, 12, 12)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_util, header, 0)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_util, size, 8)
CVFIO_LAYOUT_FLEX(vfio_device_info_cap_zpci_util, util_str, 12)

CVFIO_LAYOUT_STRUCT("linux/vfio_zdev.h", vfio_device_info_cap_zpci_pfip, 12, 12)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_pfip, header, 0)
CVFIO_LAYOUT_FIELD(vfio_device_info_cap_zpci_pfip, size, 8)
CVFIO_LAYOUT_FLEX(vfio_device_info_cap_zpci_pfip, pfip, 12)

/* <linux/vfio_ccw.h>: the vfio-ccw I/O regions (packed; the VFIO module has no encoding). */

CVFIO_LAYOUT_STRUCT("linux/vfio_ccw.h", ccw_io_region, 124, 124)
CVFIO_LAYOUT_FIELD(ccw_io_region, orb_area, 0)
CVFIO_LAYOUT_FIELD(ccw_io_region, scsw_area, 12)
CVFIO_LAYOUT_FIELD(ccw_io_region, irb_area, 24)
CVFIO_LAYOUT_FIELD(ccw_io_region, ret_code, 120)

CVFIO_LAYOUT_STRUCT("linux/vfio_ccw.h", ccw_cmd_region, 8, 8)
CVFIO_LAYOUT_FIELD(ccw_cmd_region, command, 0)
CVFIO_LAYOUT_FIELD(ccw_cmd_region, ret_code, 4)

CVFIO_LAYOUT_STRUCT("linux/vfio_ccw.h", ccw_schib_region, 52, 52)
CVFIO_LAYOUT_FIELD(ccw_schib_region, schib_area, 0)

CVFIO_LAYOUT_STRUCT("linux/vfio_ccw.h", ccw_crw_region, 8, 8)
CVFIO_LAYOUT_FIELD(ccw_crw_region, crw, 0)
CVFIO_LAYOUT_FIELD(ccw_crw_region, pad, 4)
