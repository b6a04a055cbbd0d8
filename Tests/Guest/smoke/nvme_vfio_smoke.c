/*
 * Check for run-nvme.sh --vfio-pci, run inside the guest: every NVMe controller in
 * $SWIFT_VFIO_NVME (PCI addresses, bound to vfio-pci) is reachable the way a userspace
 * driver reaches it. Through its VFIO group and a type1 container: the device fd, PCI
 * class 01:08:02 in config space, BAR0 (the controller registers) readable and
 * mmap-able, the MSI-X vector count, and the registers CAP, VS, CC and CSTS read by
 * pread and through the mapping, agreeing. Nothing is written to the controller.
 * Prints each step; exits 0 only if every step passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Controller register offsets (NVMe base spec, "Controller Registers"). */
enum { REG_CAP = 0x00, REG_VS = 0x08, REG_CC = 0x14, REG_CSTS = 0x1c };

static int failures;

static void step(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail[0] ? ": " : "", detail);
    if (!ok) failures++;
}

/* The IOMMU group number of a PCI device, from its sysfs iommu_group link; -1 if none. */
static int group_of(const char *bdf) {
    char path[PATH_MAX], link[PATH_MAX];
    snprintf(path, sizeof path, "/sys/bus/pci/devices/%s/iommu_group", bdf);
    ssize_t n = readlink(path, link, sizeof link - 1);
    if (n < 0) return -1;
    link[n] = 0;
    const char *base = strrchr(link, '/');
    return atoi(base ? base + 1 : link);
}

static void check(const char *bdf) {
    char detail[512] = "", path[64];
    printf("== %s\n", bdf);
    int group_no = group_of(bdf);
    snprintf(path, sizeof path, "/dev/vfio/%d", group_no);
    int container = open("/dev/vfio/vfio", O_RDWR);
    int group = group_no < 0 ? -1 : open(path, O_RDWR);
    snprintf(detail, sizeof detail, "%s%s%s", path, group < 0 ? ": " : "", group < 0 ? strerror(errno) : "");
    step(container >= 0 && group >= 0, "open /dev/vfio/vfio and the group", detail);
    if (container < 0 || group < 0) return;

    struct vfio_group_status status = { .argsz = sizeof status };
    int rc = ioctl(group, VFIO_GROUP_GET_STATUS, &status);
    snprintf(detail, sizeof detail, "rc %d, flags 0x%x", rc, status.flags);
    step(rc == 0 && (status.flags & VFIO_GROUP_FLAGS_VIABLE), "VFIO_GROUP_GET_STATUS viable", detail);
    rc = ioctl(group, VFIO_GROUP_SET_CONTAINER, &container);
    if (rc == 0) rc = ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    snprintf(detail, sizeof detail, "%s", rc ? strerror(errno) : "");
    step(rc == 0, "VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU(TYPE1v2)", detail);

    int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    snprintf(detail, sizeof detail, "%s", device < 0 ? strerror(errno) : "");
    step(device >= 0, "VFIO_GROUP_GET_DEVICE_FD", detail);
    if (device < 0) goto out;

    struct vfio_device_info info = { .argsz = sizeof info };
    rc = ioctl(device, VFIO_DEVICE_GET_INFO, &info);
    snprintf(detail, sizeof detail, "flags 0x%x (pci %d, reset %d), %u regions, %u irqs", info.flags,
             !!(info.flags & VFIO_DEVICE_FLAGS_PCI), !!(info.flags & VFIO_DEVICE_FLAGS_RESET),
             info.num_regions, info.num_irqs);
    step(rc == 0 && (info.flags & VFIO_DEVICE_FLAGS_PCI), "VFIO_DEVICE_GET_INFO", detail);

    struct vfio_region_info cfg = { .argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX };
    uint8_t class_code[3] = { 0 };
    rc = ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &cfg);
    ssize_t n = rc ? -1 : pread(device, class_code, sizeof class_code, (off_t)cfg.offset + 0x09);
    snprintf(detail, sizeof detail, "%02x:%02x:%02x (expected 01:08:02)", class_code[2], class_code[1], class_code[0]);
    step(n == 3 && class_code[2] == 1 && class_code[1] == 8 && class_code[0] == 2, "config space class code", detail);

    struct vfio_irq_info msix = { .argsz = sizeof msix, .index = VFIO_PCI_MSIX_IRQ_INDEX };
    rc = ioctl(device, VFIO_DEVICE_GET_IRQ_INFO, &msix);
    snprintf(detail, sizeof detail, "%u vectors, flags 0x%x", msix.count, msix.flags);
    step(rc == 0 && msix.count > 0, "VFIO_DEVICE_GET_IRQ_INFO(MSI-X)", detail);

    struct vfio_region_info bar = { .argsz = sizeof bar, .index = VFIO_PCI_BAR0_REGION_INDEX };
    rc = ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &bar);
    snprintf(detail, sizeof detail, "size 0x%llx, flags 0x%x (read %d, write %d, mmap %d)",
             (unsigned long long)bar.size, bar.flags, !!(bar.flags & VFIO_REGION_INFO_FLAG_READ),
             !!(bar.flags & VFIO_REGION_INFO_FLAG_WRITE), !!(bar.flags & VFIO_REGION_INFO_FLAG_MMAP));
    step(rc == 0 && bar.size >= 0x1008 && (bar.flags & VFIO_REGION_INFO_FLAG_READ),
         "VFIO_DEVICE_GET_REGION_INFO(BAR0)", detail);
    if (rc) goto out;

    uint64_t cap = 0;
    uint32_t vs = 0, cc = 0, csts = 0;
    int ok = pread(device, &cap, 8, (off_t)bar.offset + REG_CAP) == 8 &&
             pread(device, &vs, 4, (off_t)bar.offset + REG_VS) == 4 &&
             pread(device, &cc, 4, (off_t)bar.offset + REG_CC) == 4 &&
             pread(device, &csts, 4, (off_t)bar.offset + REG_CSTS) == 4;
    /* CAP: MQES bits 15:0 (zero-based), TO bits 31:24 (500 ms units), DSTRD bits 35:32,
     * CSS bits 44:37 (bit 37: NVM command set). VS: major 31:16, minor 15:8. */
    snprintf(detail, sizeof detail,
             "CAP 0x%016llx (MQES %llu, TO %llu, DSTRD %llu, NVM %d), VS %u.%u.%u, CC 0x%x, CSTS 0x%x",
             (unsigned long long)cap, (unsigned long long)(cap & 0xffff) + 1,
             (unsigned long long)(cap >> 24 & 0xff), (unsigned long long)(cap >> 32 & 0xf),
             (int)(cap >> 37 & 1), vs >> 16, vs >> 8 & 0xff, vs & 0xff, cc, csts);
    step(ok && cap != 0 && cap != ~0ULL && (cap >> 37 & 1) && vs >> 16 >= 1, "pread CAP, VS, CC, CSTS", detail);

    if (bar.flags & VFIO_REGION_INFO_FLAG_MMAP) {
        volatile uint32_t *regs = mmap(NULL, 0x1000, PROT_READ, MAP_SHARED, device, (off_t)bar.offset);
        if (regs == MAP_FAILED) {
            snprintf(detail, sizeof detail, "%s", strerror(errno));
            step(0, "mmap BAR0", detail);
        } else {
            uint64_t mcap = regs[0] | (uint64_t)regs[1] << 32;
            uint32_t mvs = regs[REG_VS / 4];
            snprintf(detail, sizeof detail, "CAP 0x%016llx, VS 0x%08x", (unsigned long long)mcap, mvs);
            step(mcap == cap && mvs == vs, "mmap BAR0: CAP and VS as by pread", detail);
            munmap((void *)regs, 0x1000);
        }
    } else {
        step(0, "BAR0 mmap-able", "no VFIO_REGION_INFO_FLAG_MMAP");
    }
    close(device);
out:
    close(group);
    close(container);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *list = getenv("SWIFT_VFIO_NVME");
    if (!list || !*list) {
        printf("FAIL no SWIFT_VFIO_NVME (run through run-nvme.sh --vfio-pci)\n");
        return 1;
    }
    char *copy = strdup(list), *save = NULL;
    int count = 0;
    for (char *bdf = strtok_r(copy, " ", &save); bdf; bdf = strtok_r(NULL, " ", &save)) {
        check(bdf);
        count++;
    }
    free(copy);
    printf("%s: %d controller(s), %d step(s) failed\n", failures ? "FAILED" : "PASSED", count, failures);
    return failures ? 1 : 0;
}
