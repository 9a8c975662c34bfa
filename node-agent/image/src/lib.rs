//! tug-image: placeholder until its owner lands it.
