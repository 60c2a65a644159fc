//! fs-verity built-in signatures as PKCS#7 (being written).
