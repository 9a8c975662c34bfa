//! End-to-end tests of the logs/exec server.
