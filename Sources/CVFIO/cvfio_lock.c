#define _GNU_SOURCE
#include "cvfio_lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

void cvfio_lock_contended(uint32_t *word)
{
    /* Mark the lock waited for; sleep while it stays held and marked. Whoever takes it
     * here keeps the mark (2), so its unlock wakes the next waiter, if any. */
    while (__atomic_exchange_n(word, 2, __ATOMIC_ACQUIRE) != 0)
        syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, 2, NULL, NULL, 0);
}

void cvfio_unlock_wake(uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}
