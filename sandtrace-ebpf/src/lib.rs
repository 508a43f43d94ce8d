//! Empty on purpose: see the `[lib]` note in Cargo.toml. The programs live in `main.rs`.
#![no_std]
