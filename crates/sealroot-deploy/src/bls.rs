//! Boot Loader Specification Type 1 entries.
