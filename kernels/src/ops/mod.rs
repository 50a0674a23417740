//! Per-layer ops (in progress).
