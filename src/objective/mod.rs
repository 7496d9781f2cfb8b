//! The training objective: reconstruction losses and penalties.

pub(crate) mod loss;
pub(crate) mod penalty;
