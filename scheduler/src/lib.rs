//! tug-scheduler (being written)
