//! What the CLI's tests share: running the `goheap` binary with a clean GC environment.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// Runs `goheap args` with `env` set and the GC knobs of the calling environment removed.
pub fn goheap<V: AsRef<OsStr>>(args: &[&str], env: &[(&str, V)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_goheap"));
    cmd.args(args)
        .env_remove("GOHEAP_GOGC")
        .env_remove("GOHEAP_MEMLIMIT")
        .env_remove("GOHEAP_DEBUG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("cannot run the goheap binary")
}
