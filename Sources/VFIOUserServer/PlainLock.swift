import Glibc

/// STOPGAP for the `client` branch only (issue 12): `PlainLock` left `VFIOSystem` (the
/// package keeps `Synchronization.Mutex` and `Monitor`), and the server's serving lock,
/// which the server's rewrite removes, still uses one. A pthread mutex with the same
/// interface, so that this branch builds: delete this file when merging with the server
/// rewrite (or once nothing in `VFIOUserServer` says `PlainLock`).
final class PlainLock: @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        pthread_mutex_init(mutex, nil)
    }

    /// Takes the lock; the same thread must `unlock` it.
    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }
}
