/*
 * A condition variable for a `cvfio_lock`, on one futex word: the `Condition` of a
 * `Monitor` (Sources/VFIOSystem/Threading.swift).
 *
 * A wait counts itself a sleeper and reads the sequence number (with the lock held),
 * releases the lock, sleeps while the number is unchanged (or until the deadline), and
 * takes the lock again; a signal does nothing when nobody sleeps (one load), else moves
 * the number and wakes with a futex system call. Spurious wake-ups happen (a signal
 * meant for an earlier wait, EINTR): callers re-check their state.
 *
 * Why not pthread_cond_t: a thread woken from pthread_cond_wait takes the mutex back in
 * glibc's "contended" state whether or not anyone waits for it, so its next unlock costs
 * a futex wake system call; with a reply waiter woken per message that was 6% of the
 * client's time. Here the lock is taken again the ordinary way (`cvfio_lock_acquire`).
 *
 * Initialize with zeros; no destruction is needed. Signal with or without the lock held,
 * but always after changing, under the lock, the state the waiter looks at: that is what
 * lets a signal that finds no sleeper do nothing.
 */
#ifndef CVFIO_COND_H
#define CVFIO_COND_H

#include <stdint.h>

#include "cvfio_lock.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t sequence; /* moved by every signal; the futex word */
    uint32_t sleepers; /* threads between their read of `sequence` and their wake-up */
} cvfio_cond;

/* Waits (the caller holds `lock`; released meanwhile, held again on return) until
 * signalled, or until `deadline` nanoseconds on CLOCK_MONOTONIC when `has_deadline`. */
void cvfio_cond_wait(cvfio_cond *cond, cvfio_lock *lock, int has_deadline, uint64_t deadline);

/* Wakes one waiting thread (`all` 0) or every one. */
void cvfio_cond_signal(cvfio_cond *cond, int all);

#ifdef __cplusplus
}
#endif

#endif
