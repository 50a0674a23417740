//! Attention kernels (in progress).
