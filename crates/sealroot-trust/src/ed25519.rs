//! ed25519 keys, keyrings and commit signatures (being written).
