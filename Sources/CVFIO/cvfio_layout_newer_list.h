/*
 * Private to CVFIO: the Linux 6.14 (LP64) layout of the seven <linux/vfio.h> structs that
 * Debian 12's 6.1 header lacks, as literals (offsets and widths), and at the end the 6.14
 * values of the constants it lacks. cvfio_layout.c always
 * expands every row into the table Swift tests compare the VFIO module's encodings with.
 * cvfio_layout_checks.c defines CVFIO_LAYOUT_EVERY_ROW as 0, so each block below becomes
 * _Static_asserts only where the system header declares that struct (the macro that
 * arrived with it is the witness); built against a 6.14-era header they all apply.
 *
 *   CVFIO_LAYOUT_NEWER_STRUCT(type, size, later_size): sizeof is size in 6.14; a later
 *       header may give later_size (a member appended after 6.14).
 *   CVFIO_LAYOUT_NEWER_FIELD(type, field, offset, width)
 *   CVFIO_LAYOUT_NEWER_CONSTANT(name, value)
 */

/* The PCIe AtomicOp completer capability of VFIO_DEVICE_GET_INFO (id 5). */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_device_info_cap_pci_atomic_comp, 16, 16)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_info_cap_pci_atomic_comp, header, 0, 8)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_info_cap_pci_atomic_comp, flags, 8, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_info_cap_pci_atomic_comp, reserved, 12, 4)
#endif

/* The device cdev and iommufd. A kernel after 6.14 appends token_uuid_ptr to bind (24). */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_BIND_IOMMUFD)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_device_bind_iommufd, 16, 24)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_bind_iommufd, argsz, 0, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_bind_iommufd, flags, 4, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_bind_iommufd, iommufd, 8, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_bind_iommufd, out_devid, 12, 4)
#endif

/* A kernel after 6.14 appends pasid to attach (16) and to detach (12). */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_ATTACH_IOMMUFD_PT)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_device_attach_iommufd_pt, 12, 16)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_attach_iommufd_pt, argsz, 0, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_attach_iommufd_pt, flags, 4, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_attach_iommufd_pt, pt_id, 8, 4)
#endif

#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_DETACH_IOMMUFD_PT)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_device_detach_iommufd_pt, 8, 12)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_detach_iommufd_pt, argsz, 0, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_detach_iommufd_pt, flags, 4, 4)
#endif

/* Migration pre-copy progress on the data fd. */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_MIG_GET_PRECOPY_INFO)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_precopy_info, 24, 24)
CVFIO_LAYOUT_NEWER_FIELD(vfio_precopy_info, argsz, 0, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_precopy_info, flags, 4, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_precopy_info, initial_bytes, 8, 8)
CVFIO_LAYOUT_NEWER_FIELD(vfio_precopy_info, dirty_bytes, 16, 8)
#endif

/* VFIO_DEVICE_FEATURE_MIG_DATA_SIZE (feature 9). */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_device_feature_mig_data_size, 8, 8)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_feature_mig_data_size, stop_copy_length, 0, 8)
#endif

/* VFIO_DEVICE_FEATURE_BUS_MASTER (feature 10). */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FEATURE_BUS_MASTER)
CVFIO_LAYOUT_NEWER_STRUCT(vfio_device_feature_bus_master, 4, 4)
CVFIO_LAYOUT_NEWER_FIELD(vfio_device_feature_bus_master, op, 0, 4)
#endif

/* Not a struct of its own: the `devid` that later headers put in a union with group_id. */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_DEVID_OWNED)
CVFIO_LAYOUT_NEWER_FIELD(vfio_pci_dependent_device, devid, 0, 4)
#endif

/*
 * Constants that 6.1's header lacks, with their 6.14 values:
 *   CVFIO_LAYOUT_NEWER_CONSTANT(name, value)
 * A #define is its own witness; the enumerators below it (which the preprocessor cannot
 * see) are checked only with -DCVFIO_LAYOUT_REQUIRE_NEWER, against a 6.14-era header
 * (a later one has a second vfio-ap index, so VFIO_AP_NUM_IRQS differs there).
 */
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FLAGS_CDX)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_FLAGS_CDX, (1 << 8))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, 5)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_ATOMIC_COMP32)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_ATOMIC_COMP32, (1 << 0))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_ATOMIC_COMP64)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_ATOMIC_COMP64, (1 << 1))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_ATOMIC_COMP128)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_ATOMIC_COMP128, (1 << 2))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_DEVID_OWNED)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_DEVID_OWNED, 0)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_DEVID_NOT_OWNED)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_DEVID_NOT_OWNED, -1)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_HOT_RESET_FLAG_DEV_ID)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_HOT_RESET_FLAG_DEV_ID, (1 << 0))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED, (1 << 1))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_MIGRATION_PRE_COPY)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_MIGRATION_PRE_COPY, (1 << 2))
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, 9)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FEATURE_BUS_MASTER)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_FEATURE_BUS_MASTER, 10)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FEATURE_CLEAR_MASTER)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_FEATURE_CLEAR_MASTER, 0)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(VFIO_DEVICE_FEATURE_SET_MASTER)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_FEATURE_SET_MASTER, 1)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(__VFIO_RESERVED_TYPE1_NESTING_IOMMU)
CVFIO_LAYOUT_NEWER_CONSTANT(__VFIO_RESERVED_TYPE1_NESTING_IOMMU, 6)
#endif
#if CVFIO_LAYOUT_EVERY_ROW || defined(CVFIO_LAYOUT_REQUIRE_NEWER)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_STATE_PRE_COPY, 6)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_DEVICE_STATE_PRE_COPY_P2P, 7)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_AP_REQ_IRQ_INDEX, 0)
CVFIO_LAYOUT_NEWER_CONSTANT(VFIO_AP_NUM_IRQS, 1)
#endif
