//! `tug`: parses nothing itself; everything lives in the tug-ctl library.

use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TUG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    tug_ctl::style::output_is_stdout();
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let code = runtime.block_on(tug_ctl::run(std::env::args_os(), &mut out, &mut err));
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
