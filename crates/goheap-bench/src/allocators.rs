//! The allocators under test.
//!
//! Each is a unit struct implementing `GlobalAlloc`, used as a plain value
//! (never installed as `#[global_allocator]`). The workloads are monomorphized
//! per allocator, so an allocator whose fast path is Rust can inline it.
//! Adding an allocator is one line in [`ALLOCATORS`].

use crate::workloads::{Params, Workload};

/// One allocator under test.
pub struct Allocator {
    /// Name used on the command line and in the report.
    pub name: &'static str,
    /// Runs one workload with this allocator.
    pub run: fn(Workload, &Params) -> Result<f64, String>,
}

/// Builds an [`Allocator`] entry from a name and a unit-struct allocator.
macro_rules! allocator {
    ($name:literal, $alloc:path) => {
        Allocator {
            name: $name,
            run: |workload, params| {
                static ALLOC: $alloc = $alloc;
                workload.run(&ALLOC, params)
            },
        }
    };
}

/// Every allocator this binary knows, in report order. Ratios in the report
/// are relative to "mimalloc".
pub const ALLOCATORS: &[Allocator] = &[
    allocator!("glibc", std::alloc::System),
    allocator!("mimalloc", mimalloc::MiMalloc), // v3: see Cargo.toml
    allocator!("jemalloc", tikv_jemallocator::Jemalloc),
    // Enabled by `--features goheap` (see Cargo.toml).
    #[cfg(feature = "goheap")]
    allocator!("goheap", goheap::GoAlloc),
    // goheap with its heap profiler sampling at Go's default rate (512 KiB): the
    // profiler's overhead is this column over goheap's.
    #[cfg(feature = "goheap")]
    Allocator {
        name: "goheap-profiled",
        run: |workload, params| {
            goheap::profile::set_rate(goheap::profile::DEFAULT_RATE);
            static ALLOC: goheap::GoAlloc = goheap::GoAlloc;
            workload.run(&ALLOC, params)
        },
    },
];

/// Allocators that exist but were left out of this build.
pub const DISABLED: &[(&str, &str)] = &[
    #[cfg(not(feature = "goheap"))]
    ("goheap", "rebuild with `--features goheap`"),
];

pub fn find(name: &str) -> Result<&'static Allocator, String> {
    if let Some(a) = ALLOCATORS.iter().find(|a| a.name == name) {
        return Ok(a);
    }
    if let Some((_, how)) = DISABLED.iter().find(|(n, _)| *n == name) {
        return Err(format!("allocator `{name}` is not in this build: {how}"));
    }
    let known: Vec<_> = ALLOCATORS.iter().map(|a| a.name).collect();
    Err(format!(
        "unknown allocator `{name}` (known: {})",
        known.join(", ")
    ))
}
