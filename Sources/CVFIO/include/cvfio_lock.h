/*
 * A lock of one 32-bit word on futexes: the uncontended lock and unlock are one atomic
 * instruction each, inlined into the caller (a pthread mutex costs two library calls of
 * some 25 instructions each). No condition variable goes with it.
 *
 * The word is 0 when free, 1 when held, 2 when held and a thread sleeps (or is about to
 * sleep) waiting for it. Initialize it to 0; it needs no destruction. Not recursive; the
 * thread that locked it must unlock it.
 */
#ifndef CVFIO_LOCK_H
#define CVFIO_LOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The slow paths: waiting for a held lock, waking a waiter. */
void cvfio_lock_contended(uint32_t *word);
void cvfio_unlock_wake(uint32_t *word);

static inline void cvfio_lock(uint32_t *word)
{
    uint32_t expected = 0;
    if (__atomic_compare_exchange_n(word, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    cvfio_lock_contended(word);
}

static inline void cvfio_unlock(uint32_t *word)
{
    if (__atomic_exchange_n(word, 0, __ATOMIC_RELEASE) == 2)
        cvfio_unlock_wake(word);
}

#ifdef __cplusplus
}
#endif

#endif
