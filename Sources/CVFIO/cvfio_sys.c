#define _GNU_SOURCE
#include "cvfio_sys.h"

#include <pthread.h>
#include <sched.h>

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

int cvfio_allowed_cpus(int *cpus, int max)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -1;
    int count = 0;
    for (int cpu = 0; cpu < CPU_SETSIZE && count < max; cpu++)
        if (CPU_ISSET(cpu, &set))
            cpus[count++] = cpu;
    return count;
}

int cvfio_pin_to_cpu(int cpu)
{
    if (cpu < 0 || cpu >= CPU_SETSIZE) {
        errno = EINVAL;
        return -1;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof(set), &set);
}

int cvfio_thread_set_name(const char *name)
{
    return pthread_setname_np(pthread_self(), name);
}

int cvfio_thread_get_name(char *name, size_t size)
{
    return pthread_getname_np(pthread_self(), name, size);
}
