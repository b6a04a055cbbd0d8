/*
 * Smoke test for the guest harness, run inside the guest by run-smoke.sh: walks the
 * VFIO container/group path to QEMU's edu device (1234:11e8) and reads its ID
 * register. Prints each step; exits 0 only if every step passed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/vfio.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static int failures;

static void step(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail[0] ? ": " : "", detail);
    if (!ok) failures++;
}

/* Reads a small sysfs attribute into buf, without its trailing newline. */
static int read_attr(const char *dir, const char *name, char *buf, size_t len) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    int ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok) return -1;
    buf[strcspn(buf, "\n")] = 0;
    return 0;
}

/* Finds the first edu device: its address (BDF) and IOMMU group number. */
static int find_edu(char *bdf, size_t bdf_len, int *group) {
    DIR *d = opendir("/sys/bus/pci/devices");
    if (!d) return -1;
    struct dirent *e;
    int found = -1;
    while (found && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char dir[PATH_MAX], vendor[16], device[16], link[PATH_MAX];
        snprintf(dir, sizeof dir, "/sys/bus/pci/devices/%s", e->d_name);
        if (read_attr(dir, "vendor", vendor, sizeof vendor) || strcmp(vendor, "0x1234")) continue;
        if (read_attr(dir, "device", device, sizeof device) || strcmp(device, "0x11e8")) continue;
        strncat(dir, "/iommu_group", sizeof dir - strlen(dir) - 1);
        ssize_t n = readlink(dir, link, sizeof link - 1);
        if (n < 0) continue;
        link[n] = 0;
        const char *base = strrchr(link, '/');
        *group = atoi(base ? base + 1 : link);
        snprintf(bdf, bdf_len, "%s", e->d_name);
        found = 0;
    }
    closedir(d);
    return found;
}

int main(void) {
    char detail[512] = "";
    setvbuf(stdout, NULL, _IOLBF, 0);

    int container = open("/dev/vfio/vfio", O_RDWR);
    snprintf(detail, sizeof detail, "%s", container < 0 ? strerror(errno) : "");
    step(container >= 0, "open /dev/vfio/vfio", detail);
    if (container < 0) return 1;

    int api = ioctl(container, VFIO_GET_API_VERSION);
    snprintf(detail, sizeof detail, "%d (expected %d)", api, VFIO_API_VERSION);
    step(api == VFIO_API_VERSION, "VFIO_GET_API_VERSION", detail);

    int ext = ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU);
    snprintf(detail, sizeof detail, "%d", ext);
    step(ext > 0, "VFIO_CHECK_EXTENSION(VFIO_TYPE1v2_IOMMU)", detail);

    char bdf[NAME_MAX + 1];
    int group_no = -1;
    int found = find_edu(bdf, sizeof bdf, &group_no) == 0;
    snprintf(detail, sizeof detail, "%s in group %d", found ? bdf : "none", group_no);
    step(found, "edu device (1234:11e8) and its IOMMU group", detail);
    if (!found) return 1;

    char path[64];
    snprintf(path, sizeof path, "/dev/vfio/%d", group_no);
    int group = open(path, O_RDWR);
    snprintf(detail, sizeof detail, "%s%s%s", path, group < 0 ? ": " : "", group < 0 ? strerror(errno) : "");
    step(group >= 0, "open group", detail);
    if (group < 0) return 1;

    struct vfio_group_status status = { .argsz = sizeof status };
    int rc = ioctl(group, VFIO_GROUP_GET_STATUS, &status);
    snprintf(detail, sizeof detail, "rc %d, flags 0x%x", rc, status.flags);
    step(rc == 0 && (status.flags & VFIO_GROUP_FLAGS_VIABLE), "VFIO_GROUP_GET_STATUS viable", detail);

    rc = ioctl(group, VFIO_GROUP_SET_CONTAINER, &container);
    snprintf(detail, sizeof detail, "%s", rc ? strerror(errno) : "");
    step(rc == 0, "VFIO_GROUP_SET_CONTAINER", detail);

    rc = ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    snprintf(detail, sizeof detail, "%s", rc ? strerror(errno) : "");
    step(rc == 0, "VFIO_SET_IOMMU(VFIO_TYPE1v2_IOMMU)", detail);

    int device = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
    snprintf(detail, sizeof detail, "%s", device < 0 ? strerror(errno) : bdf);
    step(device >= 0, "VFIO_GROUP_GET_DEVICE_FD", detail);
    if (device < 0) return 1;

    struct vfio_device_info info = { .argsz = sizeof info };
    rc = ioctl(device, VFIO_DEVICE_GET_INFO, &info);
    snprintf(detail, sizeof detail, "flags 0x%x (pci %d, reset %d), %u regions, %u irqs",
             info.flags, !!(info.flags & VFIO_DEVICE_FLAGS_PCI),
             !!(info.flags & VFIO_DEVICE_FLAGS_RESET), info.num_regions, info.num_irqs);
    step(rc == 0 && (info.flags & VFIO_DEVICE_FLAGS_PCI), "VFIO_DEVICE_GET_INFO", detail);

    struct vfio_region_info region = { .argsz = sizeof region, .index = VFIO_PCI_BAR0_REGION_INDEX };
    rc = ioctl(device, VFIO_DEVICE_GET_REGION_INFO, &region);
    snprintf(detail, sizeof detail, "offset 0x%llx, size 0x%llx, flags 0x%x",
             (unsigned long long)region.offset, (unsigned long long)region.size, region.flags);
    step(rc == 0 && (region.flags & VFIO_REGION_INFO_FLAG_READ), "VFIO_DEVICE_GET_REGION_INFO(BAR0)", detail);

    uint32_t id = 0;
    ssize_t n = pread(device, &id, sizeof id, (off_t)region.offset);
    snprintf(detail, sizeof detail, "0x%08x (expected 0x010000ed)", id);
    step(n == sizeof id && id == 0x010000ed, "pread BAR0+0 (edu ID)", detail);

    printf("%s: %d step(s) failed\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
