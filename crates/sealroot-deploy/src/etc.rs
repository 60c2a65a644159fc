//! The three-way merge of `/etc`.
