//! Gives `libgoheap_malloc.so` its SONAME, `libgoheap_malloc.so.<ABI>`, as a C library
//! should have: a program linked with `-lgoheap_malloc` records that name (its `DT_NEEDED`),
//! and the dynamic linker looks for it, so an installed library can be replaced by a newer
//! build of the same ABI (`include/goheap.h`, "Compatibility") while programs built against
//! an older ABI keep theirs. `install.sh` installs the file under its full version with the
//! SONAME and the bare `.so` (for `-l`) as symbolic links, as libmimalloc and every Debian
//! library are laid out.

/// The C ABI's major version: raised only when a function of `goheap.h` is removed or
/// changes meaning (a new function or a new `goheap_stats_t` field keeps it).
const ABI_MAJOR: u32 = 0;

fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libgoheap_malloc.so.{ABI_MAJOR}");
    println!("cargo:rerun-if-changed=build.rs");
}
