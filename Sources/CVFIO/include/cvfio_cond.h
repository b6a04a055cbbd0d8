/*
 * A condition variable for a pthread mutex, on one futex word: the `Condition` of a
 * `Monitor` (Sources/VFIOSystem/Threading.swift).
 *
 * A wait counts itself a sleeper and reads the sequence number (with the mutex held),
 * releases the mutex, sleeps while the number is unchanged (or until the deadline), and
 * takes the mutex again; a signal does nothing when nobody sleeps (one load), else moves
 * the number and wakes with a futex system call. Spurious wake-ups happen (a signal
 * meant for an earlier wait, EINTR): callers re-check their state.
 *
 * Why not pthread_cond_t: a thread woken from pthread_cond_wait takes the mutex back in
 * glibc's "contended" state whether or not anyone waits for it, so its next unlock costs
 * a futex wake system call; with a reply waiter woken per message that was 6% of the
 * client's time. Here the mutex is taken again the ordinary way.
 *
 * Initialize with zeros; no destruction is needed. Signal with or without the mutex held,
 * but always after changing, under the mutex, the state the waiter looks at: that is what
 * lets a signal that finds no sleeper do nothing.
 */
#ifndef CVFIO_COND_H
#define CVFIO_COND_H

#include <pthread.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t sequence; /* moved by every signal; the futex word */
    uint32_t sleepers; /* threads between their read of `sequence` and their wake-up */
} cvfio_cond;

/* Waits (the caller holds `mutex`; released meanwhile, held again on return) until
 * signalled, or until `deadline` nanoseconds on CLOCK_MONOTONIC when `has_deadline`. */
void cvfio_cond_wait(cvfio_cond *cond, pthread_mutex_t *mutex, int has_deadline, uint64_t deadline);

/* Wakes one waiting thread (`all` 0) or every one. */
void cvfio_cond_signal(cvfio_cond *cond, int all);

#ifdef __cplusplus
}
#endif

#endif
