#define _GNU_SOURCE
#include "cvfio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

int cvfio_ioctl_ptr(int fd, unsigned long request, void *arg)
{
    return ioctl(fd, request, arg);
}

int cvfio_ioctl_int(int fd, unsigned long request, unsigned long value)
{
    return ioctl(fd, request, value);
}

int cvfio_eventfd(unsigned int initval, int flags)
{
    return eventfd(initval, flags);
}

int cvfio_memfd_create(const char *name, unsigned int flags)
{
    return memfd_create(name, flags);
}

_Static_assert(CVFIO_F_SEAL_SEAL == F_SEAL_SEAL, "F_SEAL_SEAL");
_Static_assert(CVFIO_F_SEAL_SHRINK == F_SEAL_SHRINK, "F_SEAL_SHRINK");
_Static_assert(CVFIO_F_SEAL_GROW == F_SEAL_GROW, "F_SEAL_GROW");
_Static_assert(CVFIO_F_SEAL_WRITE == F_SEAL_WRITE, "F_SEAL_WRITE");
_Static_assert(CVFIO_F_SEAL_FUTURE_WRITE == F_SEAL_FUTURE_WRITE, "F_SEAL_FUTURE_WRITE");

int cvfio_add_seals(int fd, unsigned int seals)
{
    return fcntl(fd, F_ADD_SEALS, seals);
}

int cvfio_get_seals(int fd)
{
    return fcntl(fd, F_GET_SEALS);
}

int cvfio_on_hugetlbfs(int fd)
{
    struct statfs info;
    if (fstatfs(fd, &info) != 0)
        return -1;
    return info.f_type == HUGETLBFS_MAGIC;
}

ssize_t cvfio_sendmsg_fds(int sock, const struct iovec *iov, int iovcnt,
                          const int *fds, int nfds, int flags)
{
    if (nfds < 0 || nfds > CVFIO_MAX_FDS || iovcnt < 0 || (iovcnt > 0 && iov == NULL) ||
        (nfds > 0 && fds == NULL)) {
        errno = EINVAL;
        return -1;
    }
    if (nfds > 0) {
        /* A stream socket attaches descriptors to data bytes: with nothing to send, the
         * kernel returns 0 and silently drops them. Refuse instead. */
        size_t total = 0;
        for (int i = 0; i < iovcnt; i++)
            total += iov[i].iov_len;
        if (total == 0) {
            errno = EINVAL;
            return -1;
        }
    }
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = (struct iovec *)iov;
    msg.msg_iovlen = (size_t)iovcnt;
    union {
        char buf[CMSG_SPACE(sizeof(int) * CVFIO_MAX_FDS)];
        struct cmsghdr align;
    } control;
    if (nfds > 0) {
        size_t payload = sizeof(int) * (size_t)nfds;
        memset(control.buf, 0, CMSG_SPACE(payload));
        msg.msg_control = control.buf;
        msg.msg_controllen = CMSG_SPACE(payload);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(payload);
        memcpy(CMSG_DATA(cmsg), fds, payload);
    }
    return syscall(SYS_sendmsg, sock, &msg, flags | MSG_NOSIGNAL);
}

int cvfio_accept_cloexec(int listen_fd)
{
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

int cvfio_errno(void)
{
    return errno;
}
