//! An in-memory network for tests: delivers peer traffic between replicas of one process
//! and can drop, delay and partition it.
