//! Backups: scheduled, manual and final backups of a node, their retention and their targets.

pub mod schedule;
