/// The VFIO API version (`VFIO_API_VERSION`).
///
/// `VFIO_GET_API_VERSION` on `/dev/vfio/vfio` returns this number; a container that answers
/// anything else speaks an API this package does not know and must not be used.
public enum APIVersion {
    /// `VFIO_API_VERSION`: 0 since the API was merged, and still 0 in Linux 6.14.
    public static let current: Int32 = 0
}
