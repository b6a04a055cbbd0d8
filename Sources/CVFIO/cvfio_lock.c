#define _GNU_SOURCE
#include "cvfio_lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void cvfio_lock_acquire(cvfio_lock *lock)
{
    uint32_t seen = 0;
    if (__atomic_compare_exchange_n(&lock->word, &seen, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
        return;
    /* Held. From here on the word says 2 whenever this thread may sleep, so the holder's
     * release wakes it; it takes the lock as 2 too, since others may sleep behind it
     * (at worst one wake system call too many). */
    if (seen != 2)
        seen = __atomic_exchange_n(&lock->word, 2, __ATOMIC_ACQUIRE);
    while (seen != 0) {
        /* Returns at once (EAGAIN) when the word is no longer 2; EINTR: look again. */
        syscall(SYS_futex, &lock->word, FUTEX_WAIT | FUTEX_PRIVATE_FLAG, 2, NULL, NULL, 0);
        seen = __atomic_exchange_n(&lock->word, 2, __ATOMIC_ACQUIRE);
    }
}

int cvfio_lock_try_acquire(cvfio_lock *lock)
{
    uint32_t seen = 0;
    return __atomic_compare_exchange_n(&lock->word, &seen, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED) ? 1 : 0;
}

void cvfio_lock_release(cvfio_lock *lock)
{
    if (__atomic_exchange_n(&lock->word, 0, __ATOMIC_RELEASE) == 2)
        syscall(SYS_futex, &lock->word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, 1, NULL, NULL, 0);
}
