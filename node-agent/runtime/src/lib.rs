//! tug-runtime: placeholder until its owner lands it.
