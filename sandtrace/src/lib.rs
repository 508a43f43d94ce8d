//! sandtrace library
