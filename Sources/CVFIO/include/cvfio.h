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
#include "cvfio_socket.h"
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

/* The socket calls of every message (cvfio_send, cvfio_recv, cvfio_recvmsg_fds, and
 * CVFIO_MAX_FDS) are inlined: cvfio_socket.h. cvfio_sendmsg_fds below enters the kernel
 * through syscall(2), for the same reason (no cancellation point). */

/*
 * sendmsg on a stream socket with iovcnt buffers and, when nfds > 0, the descriptors in
 * fds as one SCM_RIGHTS control message. flags are sendmsg's (MSG_NOSIGNAL is added).
 * Returns the bytes sent or -1 with errno: EINVAL when nfds exceeds CVFIO_MAX_FDS, or
 * when nfds > 0 but the buffers hold no byte (a stream socket would drop the descriptors).
 */
ssize_t cvfio_sendmsg_fds(int sock, const struct iovec *iov, int iovcnt,
                          const int *fds, int nfds, int flags);

/* accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC): a connection that no exec'd program
 * inherits, even from a thread that forks meanwhile (Swift's Glibc module has no
 * accept4). Returns the descriptor or -1 with errno. */
int cvfio_accept_cloexec(int listen_fd);

/* errno of the calling thread, for Swift code that must read it right after a call. */
int cvfio_errno(void);

#ifdef __cplusplus
}
#endif

#endif
