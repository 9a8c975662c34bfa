//! `tug-agent`: the node agent. `tug-agent shim ...` is the per-container shim the
//! agent starts (the same binary, so a node needs one file).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The shim must run before any thread exists (libcontainer forks).
    if args.first().is_some_and(|a| a == "shim") {
        std::process::exit(tug_runtime::shim::main(args[1..].to_vec()));
    }
    std::process::exit(tug_agent::cli::main(args));
}
