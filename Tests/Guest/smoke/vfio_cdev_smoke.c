/*
 * Smoke test for the custom guest kernel (run-smoke.sh --kernel custom): the iommufd +
 * device cdev path, and migration v2 on the kernel's mdev sample mtty.
 *
 *   edu (1234:11e8): open /dev/iommu and /dev/vfio/devices/vfioN, BIND_IOMMUFD,
 *     IOAS_ALLOC, ATTACH_IOMMUFD_PT, IOAS_IOVA_RANGES, read the ID register (pread and
 *     mmap), IOAS_MAP a page, DMA both ways with edu's engine, IOAS_UNMAP.
 *   mtty (SWIFT_VFIO_MTTY_CDEV, from run.sh --mtty N): bind and attach each; probe and
 *     get MIGRATION (STOP_COPY, P2P, PRE_COPY), MIG_DEVICE_STATE, MIG_DATA_SIZE,
 *     DMA_LOGGING_START probe; with two or more: migrate the first into the second
 *     (RUNNING -> PRE_COPY -> STOP_COPY on one, STOP -> RESUMING -> RUNNING on the
 *     other); with three or more: open the third through its group and a type1
 *     container instead.
 *
 * Compile against the kernel's own uapi headers (build-kernel.sh puts them in
 * CACHE/kernel-6.12/current/include; Debian 12's linux-libc-dev 6.1 has no iommufd.h).
 * Prints each step; exits 0 only if every step passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#if !__has_include(<linux/iommufd.h>)
#error "no <linux/iommufd.h>: compile with -I CACHE/kernel-6.12/current/include"
#endif
#include <linux/iommufd.h>
#include <linux/vfio.h>
#ifndef VFIO_DEVICE_BIND_IOMMUFD
#error "<linux/vfio.h> without the device cdev API: compile with -I CACHE/kernel-6.12/current/include"
#endif

static int failures;
static char detail[1024];

static void step(int ok, const char *what) {
    printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", what, detail[0] ? ": " : "", detail);
    detail[0] = 0;
    if (!ok) failures++;
}
#define DETAIL(...) snprintf(detail, sizeof detail, __VA_ARGS__)
#define ERR(rc) ((rc) < 0 ? strerror(errno) : "")

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The n-th (0-based) space-separated word of an environment variable, or NULL. */
static const char *env_word(const char *name, int n, char *buf, size_t len) {
    const char *v = getenv(name);
    if (!v) return NULL;
    for (int i = 0;; i++) {
        while (*v == ' ') v++;
        if (!*v) return NULL;
        size_t w = strcspn(v, " ");
        if (i == n) {
            snprintf(buf, len, "%.*s", (int)w, v);
            return buf;
        }
        v += w;
    }
}

/* Opens a device cdev and binds it to the iommufd; returns the fd or -1. */
static int open_bound(const char *cdev, int iommufd, const char *name) {
    char what[160];
    int fd = open(cdev, O_RDWR);
    DETAIL("%s%s%s", cdev, fd < 0 ? ": " : "", ERR(fd));
    snprintf(what, sizeof what, "%s: open device cdev", name);
    step(fd >= 0, what);
    if (fd < 0) return -1;

    struct vfio_device_bind_iommufd bind = { .argsz = sizeof bind, .iommufd = iommufd };
    int rc = ioctl(fd, VFIO_DEVICE_BIND_IOMMUFD, &bind);
    DETAIL("%s%sdevid %u", ERR(rc), rc ? ", " : "", bind.out_devid);
    snprintf(what, sizeof what, "%s: VFIO_DEVICE_BIND_IOMMUFD", name);
    step(rc == 0, what);
    return rc == 0 ? fd : -1;
}

static int attach(int fd, uint32_t ioas, const char *name) {
    char what[160];
    struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof at, .pt_id = ioas };
    int rc = ioctl(fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at);
    DETAIL("%s%spt_id %u", ERR(rc), rc ? ", " : "", at.pt_id);
    snprintf(what, sizeof what, "%s: VFIO_DEVICE_ATTACH_IOMMUFD_PT", name);
    step(rc == 0, what);
    return rc;
}

static uint32_t rd32(int fd, uint64_t off) {
    uint32_t v = 0xffffffff;
    if (pread(fd, &v, 4, (off_t)off) != 4) return 0xffffffff;
    return v;
}
static int wr32(int fd, uint64_t off, uint32_t v) { return pwrite(fd, &v, 4, (off_t)off) == 4 ? 0 : -1; }
static int wr64(int fd, uint64_t off, uint64_t v) { return pwrite(fd, &v, 8, (off_t)off) == 8 ? 0 : -1; }

/* ---- edu over iommufd ---------------------------------------------------------- */

static void edu_test(int iommufd, uint32_t *ioas_out) {
    char cdev[256], bdf[64];
    if (!env_word("SWIFT_VFIO_EDU_CDEV", 0, cdev, sizeof cdev)) {
        DETAIL("SWIFT_VFIO_EDU_CDEV is not set (run.sh --kernel custom sets it)");
        step(0, "edu device cdev");
        return;
    }
    if (!env_word("SWIFT_VFIO_EDU", 0, bdf, sizeof bdf)) snprintf(bdf, sizeof bdf, "edu");
    char name[96];
    snprintf(name, sizeof name, "edu %s", bdf);

    int dev = open_bound(cdev, iommufd, name);
    if (dev < 0) return;

    struct iommu_ioas_alloc alloc = { .size = sizeof alloc };
    int rc = ioctl(iommufd, IOMMU_IOAS_ALLOC, &alloc);
    DETAIL("%s%sioas %u", ERR(rc), rc ? ", " : "", alloc.out_ioas_id);
    step(rc == 0, "IOMMU_IOAS_ALLOC");
    if (rc) return;
    uint32_t ioas = alloc.out_ioas_id;
    *ioas_out = ioas;

    if (attach(dev, ioas, name)) return;

    /* IOVA ranges: first with no room (the kernel says how many, EMSGSIZE), then. */
    struct iommu_ioas_iova_ranges ranges = { .size = sizeof ranges, .ioas_id = ioas };
    rc = ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &ranges);
    int sized = rc < 0 && errno == EMSGSIZE && ranges.num_iovas > 0;
    DETAIL("rc %d (%s), num_iovas %u", rc, rc < 0 ? strerror(errno) : "", ranges.num_iovas);
    step(sized, "IOMMU_IOAS_IOVA_RANGES (size query: EMSGSIZE)");
    uint64_t map_iova = 0x100000; /* edu masks DMA addresses to 28 bits */
    if (sized) {
        struct iommu_iova_range *r = calloc(ranges.num_iovas, sizeof *r);
        ranges.allowed_iovas = (uintptr_t)r;
        rc = ioctl(iommufd, IOMMU_IOAS_IOVA_RANGES, &ranges);
        int n = snprintf(detail, sizeof detail, "%s%salignment 0x%llx, %u range(s):", ERR(rc),
                         rc ? ", " : "", (unsigned long long)ranges.out_iova_alignment, ranges.num_iovas);
        int inside = 0;
        for (uint32_t i = 0; rc == 0 && i < ranges.num_iovas && n < (int)sizeof detail - 48; i++) {
            n += snprintf(detail + n, sizeof detail - n, " [0x%llx, 0x%llx]",
                          (unsigned long long)r[i].start, (unsigned long long)r[i].last);
            if (r[i].start <= map_iova && map_iova + 0xfff <= r[i].last) inside = 1;
        }
        step(rc == 0 && inside, "IOMMU_IOAS_IOVA_RANGES");
        free(r);
    }

    struct vfio_device_info info = { .argsz = sizeof info };
    rc = ioctl(dev, VFIO_DEVICE_GET_INFO, &info);
    DETAIL("flags 0x%x (pci %d, reset %d), %u regions, %u irqs", info.flags,
           !!(info.flags & VFIO_DEVICE_FLAGS_PCI), !!(info.flags & VFIO_DEVICE_FLAGS_RESET),
           info.num_regions, info.num_irqs);
    step(rc == 0 && (info.flags & VFIO_DEVICE_FLAGS_PCI), "VFIO_DEVICE_GET_INFO");

    struct vfio_region_info bar0 = { .argsz = sizeof bar0, .index = VFIO_PCI_BAR0_REGION_INDEX };
    rc = ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &bar0);
    DETAIL("offset 0x%llx, size 0x%llx, flags 0x%x", (unsigned long long)bar0.offset,
           (unsigned long long)bar0.size, bar0.flags);
    step(rc == 0 && (bar0.flags & VFIO_REGION_INFO_FLAG_READ), "VFIO_DEVICE_GET_REGION_INFO(BAR0)");
    struct vfio_region_info cfg = { .argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX };
    rc = ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg);
    DETAIL("offset 0x%llx, size 0x%llx", (unsigned long long)cfg.offset, (unsigned long long)cfg.size);
    step(rc == 0, "VFIO_DEVICE_GET_REGION_INFO(config)");

    uint32_t id = rd32(dev, bar0.offset);
    DETAIL("0x%08x (expected 0x010000ed)", id);
    step(id == 0x010000ed, "pread BAR0+0 (edu ID)");

    if (bar0.flags & VFIO_REGION_INFO_FLAG_MMAP) {
        volatile uint32_t *bar = mmap(NULL, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, (off_t)bar0.offset);
        if (bar == MAP_FAILED) {
            DETAIL("%s", strerror(errno));
            step(0, "mmap BAR0");
        } else {
            bar[1] = 0x12345678; /* liveness: reads back inverted */
            DETAIL("id 0x%08x, liveness 0x%08x (expected 0xedcba987)", bar[0], bar[1]);
            step(bar[0] == 0x010000ed && bar[1] == 0xedcba987, "mmap BAR0, read ID and liveness");
            munmap((void *)bar, bar0.size);
        }
    }

    /* DMA through the IOAS: map one page, let edu copy 1 KiB in and out of it. */
    uint8_t *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    for (int i = 0; i < 4096; i++) page[i] = (uint8_t)(i * 7 + 3);
    struct iommu_ioas_map map = {
        .size = sizeof map, .ioas_id = ioas, .user_va = (uintptr_t)page, .length = 4096, .iova = map_iova,
        .flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
    };
    rc = ioctl(iommufd, IOMMU_IOAS_MAP, &map);
    DETAIL("%s%siova 0x%llx", ERR(rc), rc ? ", " : "", (unsigned long long)map.iova);
    step(rc == 0, "IOMMU_IOAS_MAP (fixed IOVA, one page)");
    if (rc) return;

    uint16_t command = 0;
    pread(dev, &command, 2, (off_t)cfg.offset + 4);
    command |= 0x6; /* memory space, bus master */
    rc = pwrite(dev, &command, 2, (off_t)cfg.offset + 4) == 2 ? 0 : -1;
    DETAIL("command 0x%04x", command);
    step(rc == 0, "enable bus mastering (config write)");

    /* edu's DMA buffer (4 KiB at device address 0x40000) is reachable only by its DMA
     * engine, not through BAR0: copy 1 KiB RAM -> buffer, then buffer -> RAM at another
     * offset, and compare the two halves of the page. */
    const uint64_t ebuf = 0x40000, len = 1024;
    for (int dir = 0; dir < 2; dir++) {
        /* dir 0: RAM (iova) -> device buffer; dir 1: device buffer -> RAM (iova + 2048) */
        uint64_t src = dir ? ebuf : map.iova, dst = dir ? map.iova + 2048 : ebuf;
        wr64(dev, bar0.offset + 0x80, src);
        wr64(dev, bar0.offset + 0x88, dst);
        wr64(dev, bar0.offset + 0x90, len);
        wr32(dev, bar0.offset + 0x98, dir ? 3 : 1);
        double t = now();
        uint32_t cmd;
        while (((cmd = rd32(dev, bar0.offset + 0x98)) & 1) && now() - t < 5) usleep(1000);
        int ok = dir == 0 || !memcmp(page + 2048, page, len);
        DETAIL("%llu bytes in %.0f ms, cmd 0x%x%s", (unsigned long long)len, (now() - t) * 1000, cmd,
               dir ? (ok ? ", data back in RAM intact" : ", data back in RAM differs") : "");
        step(!(cmd & 1) && ok, dir ? "edu DMA device -> RAM through the IOAS (round trip)"
                                   : "edu DMA RAM -> device through the IOAS");
    }

    struct iommu_ioas_unmap unmap = { .size = sizeof unmap, .ioas_id = ioas, .iova = map.iova, .length = 4096 };
    rc = ioctl(iommufd, IOMMU_IOAS_UNMAP, &unmap);
    DETAIL("%s%sunmapped 0x%llx bytes", ERR(rc), rc ? ", " : "", (unsigned long long)unmap.length);
    step(rc == 0 && unmap.length == 4096, "IOMMU_IOAS_UNMAP");
    close(dev);
}

/* ---- mtty: migration v2 -------------------------------------------------------- */

/* A VFIO_DEVICE_FEATURE call with `len` bytes of payload in and out. */
static int feature(int fd, uint32_t flags, void *payload, size_t len) {
    uint64_t buf[(sizeof(struct vfio_device_feature) + 64 + 7) / 8] = { 0 };
    struct vfio_device_feature *f = (void *)buf;
    f->argsz = sizeof *f + len;
    f->flags = flags;
    if (len) memcpy(f->data, payload, len);
    int rc = ioctl(fd, VFIO_DEVICE_FEATURE, f);
    if (rc == 0 && len) memcpy(payload, f->data, len);
    return rc;
}

static const char *state_name(uint32_t s) {
    static const char *names[] = { "ERROR", "STOP", "RUNNING", "STOP_COPY", "RESUMING",
                                   "RUNNING_P2P", "PRE_COPY", "PRE_COPY_P2P" };
    return s < sizeof names / sizeof *names ? names[s] : "?";
}

static int get_state(int fd, uint32_t *state) {
    struct vfio_device_feature_mig_state st = { 0 };
    int rc = feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof st);
    *state = st.device_state;
    return rc;
}

/* SET MIG_DEVICE_STATE; returns the data fd (or -1 for none) in *data_fd. */
static int set_state(int fd, uint32_t state, int *data_fd) {
    struct vfio_device_feature_mig_state st = { .device_state = state, .data_fd = -1 };
    int rc = feature(fd, VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, &st, sizeof st);
    *data_fd = rc == 0 ? st.data_fd : -1;
    return rc;
}

static void mtty_basics(int fd, const char *name, uint64_t *data_size) {
    char what[192];
    struct vfio_device_info info = { .argsz = sizeof info };
    int rc = ioctl(fd, VFIO_DEVICE_GET_INFO, &info);
    DETAIL("flags 0x%x (pci %d), %u regions, %u irqs", info.flags, !!(info.flags & VFIO_DEVICE_FLAGS_PCI),
           info.num_regions, info.num_irqs);
    snprintf(what, sizeof what, "%s: VFIO_DEVICE_GET_INFO", name);
    step(rc == 0, what);

    rc = feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, NULL, 0);
    DETAIL("%s", ERR(rc));
    snprintf(what, sizeof what, "%s: VFIO_DEVICE_FEATURE PROBE|GET MIGRATION", name);
    step(rc == 0, what);

    struct vfio_device_feature_migration mig = { 0 };
    rc = feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig);
    DETAIL("%s%sflags 0x%llx (STOP_COPY %d, P2P %d, PRE_COPY %d)", ERR(rc), rc ? ", " : "",
           (unsigned long long)mig.flags, !!(mig.flags & VFIO_MIGRATION_STOP_COPY),
           !!(mig.flags & VFIO_MIGRATION_P2P), !!(mig.flags & VFIO_MIGRATION_PRE_COPY));
    snprintf(what, sizeof what, "%s: VFIO_DEVICE_FEATURE GET MIGRATION", name);
    step(rc == 0 && (mig.flags & VFIO_MIGRATION_STOP_COPY) && (mig.flags & VFIO_MIGRATION_PRE_COPY), what);

    uint32_t state = 0;
    rc = get_state(fd, &state);
    DETAIL("%s%s%s (%u)", ERR(rc), rc ? ", " : "", state_name(state), state);
    snprintf(what, sizeof what, "%s: GET MIG_DEVICE_STATE is RUNNING", name);
    step(rc == 0 && state == VFIO_DEVICE_STATE_RUNNING, what);

    struct vfio_device_feature_mig_data_size size = { 0 };
    rc = feature(fd, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, &size, sizeof size);
    DETAIL("%s%sstop_copy_length %llu", ERR(rc), rc ? ", " : "", (unsigned long long)size.stop_copy_length);
    snprintf(what, sizeof what, "%s: GET MIG_DATA_SIZE", name);
    step(rc == 0 && size.stop_copy_length > 0, what);
    *data_size = size.stop_copy_length;

    rc = feature(fd, VFIO_DEVICE_FEATURE_PROBE | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_DMA_LOGGING_START, NULL, 0);
    DETAIL("%s", ERR(rc));
    snprintf(what, sizeof what, "%s: VFIO_DEVICE_FEATURE PROBE|SET DMA_LOGGING_START", name);
    step(rc == 0, what);
}

static void mtty_migrate(int src, int dst, uint64_t data_size) {
    uint8_t data[4096];
    size_t have = 0;
    int fd = -1, fd2 = -1;

    int rc = set_state(src, VFIO_DEVICE_STATE_PRE_COPY, &fd);
    DETAIL("%s%sdata_fd %d", ERR(rc), rc ? ", " : "", fd);
    step(rc == 0 && fd >= 0, "mtty A: RUNNING -> PRE_COPY gives a data fd");
    if (fd < 0) return;

    struct vfio_precopy_info pi = { .argsz = sizeof pi };
    rc = ioctl(fd, VFIO_MIG_GET_PRECOPY_INFO, &pi);
    DETAIL("%s%sinitial_bytes %llu, dirty_bytes %llu", ERR(rc), rc ? ", " : "",
           (unsigned long long)pi.initial_bytes, (unsigned long long)pi.dirty_bytes);
    step(rc == 0, "mtty A: VFIO_MIG_GET_PRECOPY_INFO");
    ssize_t n = read(fd, data, sizeof data);
    DETAIL("%zd bytes%s%s", n, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
    step(n >= 0 && (uint64_t)n == pi.initial_bytes, "mtty A: read the pre-copy data");
    have = n > 0 ? (size_t)n : 0;

    rc = set_state(src, VFIO_DEVICE_STATE_STOP_COPY, &fd2);
    DETAIL("%s%sdata_fd %d (-1: keep reading the pre-copy fd)", ERR(rc), rc ? ", " : "", fd2);
    step(rc == 0, "mtty A: PRE_COPY -> STOP_COPY");
    if (fd2 >= 0) { close(fd); fd = fd2; }
    while ((n = read(fd, data + have, sizeof data - have)) > 0) have += (size_t)n;
    DETAIL("%zu bytes in all (MIG_DATA_SIZE said %llu), last read %zd%s%s", have,
           (unsigned long long)data_size, n, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
    step(n == 0 && have == data_size, "mtty A: read the stop-copy data to end of stream");
    close(fd);

    rc = set_state(dst, VFIO_DEVICE_STATE_RESUMING, &fd);
    DETAIL("%s%sdata_fd %d", ERR(rc), rc ? ", " : "", fd);
    step(rc == 0 && fd >= 0, "mtty B: RUNNING -> RESUMING gives a data fd");
    if (fd < 0) return;
    n = write(fd, data, have);
    DETAIL("%zd of %zu bytes%s%s", n, have, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
    step(n >= 0 && (size_t)n == have, "mtty B: write the data");
    rc = set_state(dst, VFIO_DEVICE_STATE_RUNNING, &fd2);
    DETAIL("%s", ERR(rc));
    step(rc == 0 && fd2 < 0, "mtty B: RESUMING -> RUNNING (loads the state)");
    close(fd);
    uint32_t state = 0;
    rc = get_state(dst, &state);
    DETAIL("%s", state_name(state));
    step(rc == 0 && state == VFIO_DEVICE_STATE_RUNNING, "mtty B: state is RUNNING");

    rc = set_state(src, VFIO_DEVICE_STATE_RUNNING, &fd2);
    rc = rc ? rc : get_state(src, &state);
    DETAIL("%s%s%s", ERR(rc), rc ? ", " : "", state_name(state));
    step(rc == 0 && state == VFIO_DEVICE_STATE_RUNNING, "mtty A: STOP_COPY -> RUNNING");
}

/* The group/container path on one mtty: type1 over an emulated-IOMMU group. */
static void mtty_group(const char *group_path, const char *uuid) {
    int container = open("/dev/vfio/vfio", O_RDWR);
    int group = open(group_path, O_RDWR);
    DETAIL("%s%s%s", group_path, group < 0 ? ": " : "", ERR(group));
    step(container >= 0 && group >= 0, "mtty C: open /dev/vfio/vfio and its group");
    if (container < 0 || group < 0) return;
    int rc = ioctl(group, VFIO_GROUP_SET_CONTAINER, &container);
    if (rc == 0) rc = ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    DETAIL("%s", ERR(rc));
    step(rc == 0, "mtty C: VFIO_GROUP_SET_CONTAINER, VFIO_SET_IOMMU(TYPE1v2)");
    int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, uuid);
    DETAIL("%s%s%s", uuid, dev < 0 ? ": " : "", ERR(dev));
    step(dev >= 0, "mtty C: VFIO_GROUP_GET_DEVICE_FD(uuid)");
    if (dev < 0) return;
    struct vfio_device_feature_migration mig = { 0 };
    rc = feature(dev, VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_MIGRATION, &mig, sizeof mig);
    DETAIL("%s%sflags 0x%llx", ERR(rc), rc ? ", " : "", (unsigned long long)mig.flags);
    step(rc == 0 && (mig.flags & VFIO_MIGRATION_STOP_COPY), "mtty C: GET MIGRATION through the group path");
    close(dev);
    close(group);
    close(container);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);

    int iommufd = open("/dev/iommu", O_RDWR);
    DETAIL("%s", iommufd < 0 ? strerror(errno) : "");
    step(iommufd >= 0, "open /dev/iommu");
    if (iommufd < 0) return 1;

    uint32_t ioas = 0;
    edu_test(iommufd, &ioas);

    char cdev[256], uuid[64], name[128];
    int mtty[2] = { -1, -1 }, count = 0;
    uint64_t data_size = 0;
    for (int i = 0; i < 2 && env_word("SWIFT_VFIO_MTTY_CDEV", i, cdev, sizeof cdev); i++) {
        env_word("SWIFT_VFIO_MTTY", i, uuid, sizeof uuid);
        snprintf(name, sizeof name, "mtty %c %s", 'A' + i, uuid);
        mtty[i] = open_bound(cdev, iommufd, name);
        if (mtty[i] < 0) continue;
        count++;
        if (ioas) attach(mtty[i], ioas, name);
        mtty_basics(mtty[i], name, &data_size);
    }
    if (count == 0) printf("skip mtty (SWIFT_VFIO_MTTY_CDEV not set: run.sh --mtty N)\n");
    if (count == 2) mtty_migrate(mtty[0], mtty[1], data_size);
    char group[256];
    if (env_word("SWIFT_VFIO_MTTY_GROUP", 2, group, sizeof group) && env_word("SWIFT_VFIO_MTTY", 2, uuid, sizeof uuid))
        mtty_group(group, uuid);

    printf("%s: %d step(s) failed\n", failures ? "FAILED" : "PASSED", failures);
    return failures ? 1 : 0;
}
