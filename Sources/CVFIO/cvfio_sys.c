#include "cvfio_sys.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

int cvfio_epoll_add(int epfd, int fd, uint32_t events, uint64_t token)
{
    struct epoll_event event;
    memset(&event, 0, sizeof(event));
    event.events = events;
    event.data.u64 = token;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &event);
}

int cvfio_epoll_del(int epfd, int fd)
{
    struct epoll_event unused;
    memset(&unused, 0, sizeof(unused));
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &unused);
}

int cvfio_epoll_wait(int epfd, uint64_t *tokens, uint32_t *events, int max, int timeout_ms)
{
    struct epoll_event ready[64];
    if (max > 64)
        max = 64;
    int n = epoll_wait(epfd, ready, max, timeout_ms);
    for (int i = 0; i < n; i++) {
        tokens[i] = ready[i].data.u64;
        events[i] = ready[i].events;
    }
    return n;
}
