/*
 * Small system-call wrappers for the transports: volatile MMIO access to mapped device
 * regions, and epoll with the packed struct epoll_event kept on the C side.
 */
#ifndef CVFIO_SYS_H
#define CVFIO_SYS_H

#include <stdint.h>
#include <sys/epoll.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One volatile load or store of exactly that width at addr (which must be aligned to it):
 * what a device register behind an mmap of a VFIO region needs. */
static inline uint8_t cvfio_mmio_read8(const void *addr) { return *(const volatile uint8_t *)addr; }
static inline uint16_t cvfio_mmio_read16(const void *addr) { return *(const volatile uint16_t *)addr; }
static inline uint32_t cvfio_mmio_read32(const void *addr) { return *(const volatile uint32_t *)addr; }
static inline uint64_t cvfio_mmio_read64(const void *addr) { return *(const volatile uint64_t *)addr; }
static inline void cvfio_mmio_write8(void *addr, uint8_t v) { *(volatile uint8_t *)addr = v; }
static inline void cvfio_mmio_write16(void *addr, uint16_t v) { *(volatile uint16_t *)addr = v; }
static inline void cvfio_mmio_write32(void *addr, uint32_t v) { *(volatile uint32_t *)addr = v; }
static inline void cvfio_mmio_write64(void *addr, uint64_t v) { *(volatile uint64_t *)addr = v; }

/* epoll_ctl(ADD) of fd for events, carrying token. Returns 0 or -1 with errno. */
int cvfio_epoll_add(int epfd, int fd, uint32_t events, uint64_t token);

/* epoll_ctl(DEL) of fd. Returns 0 or -1 with errno. */
int cvfio_epoll_del(int epfd, int fd);

/* epoll_wait into parallel arrays of tokens and event masks. Returns the count or -1. */
int cvfio_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms);

#ifdef __cplusplus
}
#endif

/* The CPUs the calling thread may run on (sched_getaffinity): fills cpus with up to max
 * CPU numbers in increasing order and returns how many, or -1 with errno. */
int cvfio_allowed_cpus(int *cpus, int max);

/* Pins the calling thread (and the threads and processes it starts later) to one CPU
 * (sched_setaffinity). Returns 0 or -1 with errno (EINVAL: no such CPU allowed). */
int cvfio_pin_to_cpu(int cpu);

/* The calling thread's name (at most 15 bytes; pthread_setname_np / pthread_getname_np,
 * which Swift's Glibc module does not export). Return 0 or an errno value. */
int cvfio_thread_set_name(const char *name);
int cvfio_thread_get_name(char *name, size_t size);

#endif
