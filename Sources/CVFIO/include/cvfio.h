/*
 * CVFIO: the C side of swift-vfio.
 *
 * Non-variadic wrappers for the system calls Swift cannot call directly (ioctl and the
 * fcntl family are variadic in C; SCM_RIGHTS needs CMSG_* macros), and the VFIO and
 * iommufd ioctl request numbers as constants computed by the C preprocessor.
 */
#ifndef CVFIO_H
#define CVFIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <sys/eventfd.h> /* EFD_* flags for cvfio_eventfd, visible to Swift callers */
#include <linux/memfd.h> /* MFD_* flags for cvfio_memfd_create */
#include <linux/vfio.h>

#include "cvfio_cond.h"
#include "cvfio_ioctls.h"
#include "cvfio_layout.h"
#include "cvfio_sys.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ioctl(fd, request, arg) with a pointer argument. Returns ioctl's result; errno on -1. */
int cvfio_ioctl_ptr(int fd, unsigned long request, void *arg);

/* ioctl(fd, request, value) with an integer argument (VFIO_GROUP_SET_CONTAINER takes a
 * pointer to an int; VFIO_SET_IOMMU and VFIO_CHECK_EXTENSION take the int itself). */
int cvfio_ioctl_int(int fd, unsigned long request, unsigned long value);

/* eventfd(initval, flags). Returns the descriptor or -1 with errno. */
int cvfio_eventfd(unsigned int initval, int flags);

/* memfd_create(name, flags). Returns the descriptor or -1 with errno. */
int cvfio_memfd_create(const char *name, unsigned int flags);

/* File seals (fcntl(2), "File Sealing"), whose names glibc shows only to _GNU_SOURCE
 * code: F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE. */
#define CVFIO_F_SEAL_SEAL 0x0001
#define CVFIO_F_SEAL_SHRINK 0x0002
#define CVFIO_F_SEAL_GROW 0x0004
#define CVFIO_F_SEAL_WRITE 0x0008
#define CVFIO_F_SEAL_FUTURE_WRITE 0x0010

/* fcntl(fd, F_ADD_SEALS, seals). Returns 0 or -1 with errno: EINVAL for a file that
 * cannot be sealed (not shmem/hugetlbfs, or a memfd made without MFD_ALLOW_SEALING),
 * EPERM when F_SEAL_SEAL is set, EBUSY for F_SEAL_WRITE with a writable mapping. */
int cvfio_add_seals(int fd, unsigned int seals);

/* fcntl(fd, F_GET_SEALS): the seals, or -1 with errno (EINVAL: a file that has no seals,
 * such as a regular file outside shmem and hugetlbfs). */
int cvfio_get_seals(int fd);

/* Whether fd's file lies on hugetlbfs (fstatfs f_type HUGETLBFS_MAGIC): 1 or 0, or -1
 * with fstatfs's errno. */
int cvfio_on_hugetlbfs(int fd);

/* The largest number of descriptors one message may carry here. */
#define CVFIO_MAX_FDS 253

/*
 * The socket calls below enter the kernel directly (syscall(2)), not through libc's
 * wrappers: those are pthread cancellation points, which in a process with more than one
 * thread costs two calls around every system call. This library never cancels threads;
 * a program that does must not cancel a thread inside these calls.
 */

/*
 * sendmsg on a stream socket with iovcnt buffers and, when nfds > 0, the descriptors in
 * fds as one SCM_RIGHTS control message. flags are sendmsg's (MSG_NOSIGNAL is added).
 * Returns the bytes sent or -1 with errno: EINVAL when nfds exceeds CVFIO_MAX_FDS, or
 * when nfds > 0 but the buffers hold no byte (a stream socket would drop the descriptors).
 */
ssize_t cvfio_sendmsg_fds(int sock, const struct iovec *iov, int iovcnt,
                          const int *fds, int nfds, int flags);

/*
 * recvmsg into iovcnt buffers, receiving at most max_fds descriptors into fds; *nfds is
 * set to the number received. Descriptors arrive with O_CLOEXEC (MSG_CMSG_CLOEXEC).
 * If the sender passed more descriptors than max_fds, or the control data was truncated,
 * *truncated is set to 1: the first max_fds descriptors are returned in fds (the caller
 * owns and must close them) and the rest are closed here, so none leak. Returns the bytes received (0 at end of stream) or -1 with errno.
 */
ssize_t cvfio_recvmsg_fds(int sock, struct iovec *iov, int iovcnt,
                          int *fds, int max_fds, int *nfds, int *truncated, int flags);

/* send(sock, buf, len, flags | MSG_NOSIGNAL). Returns the bytes sent or -1 with errno. */
ssize_t cvfio_send(int sock, const void *buf, size_t len, int flags);

/*
 * recv(sock, buf, len, flags): no control buffer, so descriptors that come with the
 * bytes are closed by the kernel, never received. Cheaper than recvmsg (no msghdr to copy
 * in and out), for a reader that knows no descriptor may come. Returns the bytes received
 * (0 at end of stream) or -1 with errno.
 */
ssize_t cvfio_recv(int sock, void *buf, size_t len, int flags);

/* errno of the calling thread, for Swift code that must read it right after a call. */
int cvfio_errno(void);

#ifdef __cplusplus
}
#endif

#endif
