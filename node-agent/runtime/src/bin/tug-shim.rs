//! `tug-shim`: the shim as a standalone binary (for this crate's tests); the agent hosts
//! the same code as `tug-agent shim ...`.

fn main() {
    std::process::exit(tug_runtime::shim::main(
        std::env::args_os().skip(1).collect(),
    ))
}
