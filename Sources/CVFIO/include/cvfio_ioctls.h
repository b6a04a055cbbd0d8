/* Filled by the ioctl-constants work: extern const declarations of every request number. */
#ifndef CVFIO_IOCTLS_H
#define CVFIO_IOCTLS_H
#endif
