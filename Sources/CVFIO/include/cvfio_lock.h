/*
 * A mutual-exclusion lock on one futex word: the lock of a `Monitor`
 * (Sources/VFIOSystem/Threading.swift), and the lock its `cvfio_cond` waits release.
 *
 * The word is 0 (free), 1 (held) or 2 (held, and a thread may be asleep waiting for it).
 * Taking a free lock is one compare-and-swap; releasing it one exchange, plus a futex
 * wake system call only when the word said 2. A thread that finds the lock held sets 2
 * and sleeps in the kernel at once (no spinning: where more threads contend than there
 * are CPUs, a spinner burns the time slice the holder needs to finish).
 *
 * Why not pthread_mutex_t: its lock and unlock calls cost about 70 instructions a pair,
 * against about 12 here, and a request of the vfio-user client or server takes two or
 * three pairs (measured with callgrind on `vfio-bench --only read4`). The word is read and
 * written with the compiler's atomic builtins, acquire on taking and release on giving up,
 * which ThreadSanitizer sees when this file is built with it (unlike a lock inside the
 * standard library's uninstrumented code, whose hand-over in the kernel it cannot see).
 *
 * Initialize with zeros; no destruction is needed. Not recursive; no owner is recorded:
 * releasing a lock the caller does not hold is undefined.
 */
#ifndef CVFIO_LOCK_H
#define CVFIO_LOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint32_t word; /* 0 free, 1 held, 2 held and maybe awaited; the futex word */
} cvfio_lock;

/* Takes the lock, sleeping while another thread holds it. */
void cvfio_lock_acquire(cvfio_lock *lock);

/* Takes the lock when it is free and returns 1; returns 0 at once when it is held. */
int cvfio_lock_try_acquire(cvfio_lock *lock);

/* Gives the lock up, waking one thread that sleeps waiting for it. */
void cvfio_lock_release(cvfio_lock *lock);

#ifdef __cplusplus
}
#endif

#endif
