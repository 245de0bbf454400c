//! Live fan-out: one publisher per stream name, any number of players sharing one copy of
//! every payload.
