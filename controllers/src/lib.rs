//! tug-controllers (being written)
