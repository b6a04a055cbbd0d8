/*
 * The socket calls of every vfio-user message, inlined into their Swift callers.
 *
 * They enter the kernel with the `syscall` instruction itself (on x86-64 and AArch64;
 * elsewhere through syscall(2)), not through libc: libc's wrappers are pthread
 * cancellation points, which in a process with more than one thread costs two calls
 * around every system call, and syscall(2) shuffles seven arguments. This library never
 * cancels threads; a program that does must not cancel a thread inside these calls.
 * Results follow the C convention: -1 and errno on failure.
 */
#ifndef CVFIO_SOCKET_H
#define CVFIO_SOCKET_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* The largest number of descriptors one message may carry here. */
#define CVFIO_MAX_FDS 253

/* System call `number` with six arguments; the kernel's result (-errno on failure). */
static inline long cvfio_syscall6(long number, long a1, long a2, long a3, long a4, long a5, long a6)
{
#if defined(__x86_64__)
    register long r10 __asm__("r10") = a4;
    register long r8 __asm__("r8") = a5;
    register long r9 __asm__("r9") = a6;
    long result;
    __asm__ __volatile__("syscall"
                         : "=a"(result)
                         : "a"(number), "D"(a1), "S"(a2), "d"(a3), "r"(r10), "r"(r8), "r"(r9)
                         : "rcx", "r11", "memory");
    return result;
#elif defined(__aarch64__)
    register long x8 __asm__("x8") = number;
    register long x0 __asm__("x0") = a1;
    register long x1 __asm__("x1") = a2;
    register long x2 __asm__("x2") = a3;
    register long x3 __asm__("x3") = a4;
    register long x4 __asm__("x4") = a5;
    register long x5 __asm__("x5") = a6;
    __asm__ __volatile__("svc 0"
                         : "+r"(x0)
                         : "r"(x8), "r"(x1), "r"(x2), "r"(x3), "r"(x4), "r"(x5)
                         : "memory");
    return x0;
#else
    long result = syscall(number, a1, a2, a3, a4, a5, a6);
    return result == -1 ? -errno : result;
#endif
}

/* A kernel result as C returns it: -1 with errno for -4095...-1. */
static inline ssize_t cvfio_syscall_result(long result)
{
    if ((unsigned long)result > -4096UL) {
        errno = (int)-result;
        return -1;
    }
    return result;
}

/* send(sock, buf, len, flags | MSG_NOSIGNAL). Returns the bytes sent or -1 with errno. */
static inline ssize_t cvfio_send(int sock, const void *buf, size_t len, int flags)
{
    return cvfio_syscall_result(cvfio_syscall6(SYS_sendto, sock, (long)buf, (long)len, flags | MSG_NOSIGNAL, 0, 0));
}

/*
 * recv(sock, buf, len, flags): no control buffer, so descriptors that come with the
 * bytes are closed by the kernel, never received. Cheaper than recvmsg (no msghdr to copy
 * in and out), for a reader that knows no descriptor may come. Returns the bytes received
 * (0 at end of stream) or -1 with errno.
 */
static inline ssize_t cvfio_recv(int sock, void *buf, size_t len, int flags)
{
    return cvfio_syscall_result(cvfio_syscall6(SYS_recvfrom, sock, (long)buf, (long)len, flags, 0, 0));
}

/*
 * recvmsg into iovcnt buffers, receiving at most max_fds descriptors into fds; *nfds is
 * set to the number received. Descriptors arrive with O_CLOEXEC (MSG_CMSG_CLOEXEC).
 * If the sender passed more descriptors than max_fds, or the control data was truncated,
 * *truncated is set to 1: the first max_fds descriptors are returned in fds (the caller
 * owns and must close them) and the rest are closed here, so none leak. Returns the bytes
 * received (0 at end of stream) or -1 with errno: EINVAL for a negative count or a
 * missing buffer.
 */
static inline ssize_t cvfio_recvmsg_fds(int sock, struct iovec *iov, int iovcnt,
                                        int *fds, int max_fds, int *nfds, int *truncated, int flags)
{
    *nfds = 0;
    *truncated = 0;
    if (max_fds < 0 || iovcnt < 0 || (iovcnt > 0 && iov == NULL) || (max_fds > 0 && fds == NULL)) {
        errno = EINVAL;
        return -1;
    }
    /* Room for more than max_fds so that excess descriptors are received (and can be
     * closed here) rather than silently dropped by the kernel. */
    union {
        char buf[CMSG_SPACE(sizeof(int) * CVFIO_MAX_FDS)];
        struct cmsghdr align;
    } control;
    struct msghdr msg = {
        .msg_iov = iov,
        .msg_iovlen = (size_t)iovcnt,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t n = cvfio_syscall_result(cvfio_syscall6(SYS_recvmsg, sock, (long)&msg, flags | MSG_CMSG_CLOEXEC, 0, 0, 0));
    if (n < 0)
        return n;
    if (msg.msg_flags & MSG_CTRUNC)
        *truncated = 1;
    if (msg.msg_controllen == 0)
        return n;   /* no descriptor came (the common case) */
    int stored = 0;
    for (struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg); cmsg != NULL; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
        if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        int *incoming = (int *)CMSG_DATA(cmsg);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, incoming + i, sizeof(int));
            if (stored < max_fds) {
                fds[stored++] = fd;
            } else {
                /* Over the caller's limit: report it and close what cannot be handed back. */
                *truncated = 1;
                (void)close(fd);
            }
        }
    }
    *nfds = stored;
    return n;
}

#endif
