//! Layer kinds: one file per kind.

mod dense;

pub use dense::{Dense, ParamKind};
