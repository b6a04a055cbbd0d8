#define _GNU_SOURCE
#include "cvfio_cond.h"

#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

void cvfio_cond_wait(cvfio_cond *cond, cvfio_lock *lock, int has_deadline, uint64_t deadline)
{
    /* Read under the lock: a signal for a state change made after this wait released
     * the lock moves the number first, so the futex call below returns at once. */
    uint32_t sequence = __atomic_load_n(&cond->sequence, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&cond->sleepers, 1, __ATOMIC_SEQ_CST);
    cvfio_lock_release(lock);
    struct timespec at = { .tv_sec = (time_t)(deadline / 1000000000u), .tv_nsec = (long)(deadline % 1000000000u) };
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC time. EAGAIN (the number
     * moved), EINTR and ETIMEDOUT all end the wait; the caller re-checks. */
    syscall(SYS_futex, &cond->sequence, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, sequence,
            has_deadline ? &at : NULL, NULL, FUTEX_BITSET_MATCH_ANY);
    __atomic_fetch_sub(&cond->sleepers, 1, __ATOMIC_SEQ_CST);
    cvfio_lock_acquire(lock);
}

void cvfio_cond_signal(cvfio_cond *cond, int all)
{
    /* No sleeper: nothing to do. A wait that looked at the state before the change this
     * signal is for counted itself a sleeper before it released the mutex, that is,
     * before the change was made; a wait that looks later sees the change. */
    if (__atomic_load_n(&cond->sleepers, __ATOMIC_SEQ_CST) == 0)
        return;
    __atomic_fetch_add(&cond->sequence, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &cond->sequence, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, all ? INT_MAX : 1, NULL, NULL, 0);
}
