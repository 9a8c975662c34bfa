//! memconsumer: the seeds' memory hog. Grows by 1 MiB per step up to 50 MiB, writing
//! every page so the memory is really resident (and counted by the memory cgroup),
//! prints each step, then sleeps forever. With a 20Mi limit it is OOM-killed around
//! step 20; with 100Mi it keeps running.
//!
//! Env: MEMCONSUMER_STEPS (default 50), MEMCONSUMER_STEP_MS (pause per step, default 0).
//! std only: built by `tug-image build-demo` with
//! `rustc -O -C target-feature=+crt-static --edition 2021`.

use std::time::Duration;

extern "C" {
    fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    fn _exit(status: i32) -> !;
}

extern "C" fn on_terminate(_: i32) {
    // SAFETY: _exit is async-signal-safe.
    unsafe { _exit(0) }
}

const MIB: usize = 1 << 20;
const PAGE: usize = 4096;

fn main() {
    // As PID 1 of a container, signals without a handler are ignored.
    // SAFETY: installs a handler that only calls _exit.
    unsafe {
        signal(15, on_terminate);
        signal(2, on_terminate);
    }
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let steps = env("MEMCONSUMER_STEPS", 50);
    let pause = Duration::from_millis(env("MEMCONSUMER_STEP_MS", 0));
    let mut held: Vec<Vec<u8>> = Vec::new();
    for i in 1..=steps {
        let mut chunk = vec![0u8; MIB];
        // Zeroed allocations are lazily mapped; a write per page makes them resident.
        for p in (0..MIB).step_by(PAGE) {
            chunk[p] = i as u8;
        }
        held.push(std::hint::black_box(chunk));
        println!("==============={i}===============");
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
    println!("holding {} MiB", held.len());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        std::hint::black_box(&held);
    }
}
