//! `tug-image`: build the demo images, import tarballs into a store, list a store.

fn main() {}
