//! The library as a C library: its SONAME, `install.sh` (the library under its version with
//! the SONAME and `-l` links, `goheap.h`, `goheap.pc`), and `goheap.h`'s API from a C
//! program built with `pkg-config`'s flags and linked to the installed library, and from one
//! that only finds the library preloaded (`tests/c/c_api.c` checks every function).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);
const SONAME: &str = "libgoheap_malloc.so.0";

fn readelf_dynamic(file: &Path) -> String {
    let readelf = require_tool("readelf", "binutils");
    let out = Command::new(readelf)
        .arg("-d")
        .arg(file)
        .output()
        .expect("running readelf");
    assert!(out.status.success(), "readelf -d {}", file.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_library_has_its_soname() {
    let dynamic = readelf_dynamic(so_path());
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(SONAME)") && l.contains(&format!("[{SONAME}]"))),
        "no SONAME {SONAME} in readelf -d {}:\n{dynamic}",
        so_path().display()
    );
}

/// Runs `install.sh --no-ldconfig PREFIX` on the library under test.
fn install(prefix: &Path) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("install.sh");
    let r = run(
        Command::new("sh")
            .arg(script)
            .arg("--no-ldconfig")
            .arg(prefix)
            .env("GOHEAP_SO", so_path()),
        b"",
        TIMEOUT,
    );
    r.assert_ok("install.sh");
}

/// `pkg-config --cflags --libs goheap` with the installed `goheap.pc`.
fn pkg_config_flags(prefix: &Path) -> Vec<String> {
    let pkg_config = require_tool("pkg-config", "pkg-config");
    let out = Command::new(pkg_config)
        .args(["--cflags", "--libs", "goheap"])
        .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig"))
        .output()
        .expect("running pkg-config");
    assert!(
        out.status.success(),
        "pkg-config goheap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn install_lays_out_a_c_library() {
    let dir = scratch("install");
    let prefix = dir.join("prefix");
    install(&prefix);
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let real = lib.join(format!("libgoheap_malloc.so.{version}"));
    assert_eq!(
        std::fs::read(&real).expect("the versioned library"),
        std::fs::read(so_path()).unwrap()
    );
    let link = |name: &str| -> PathBuf {
        std::fs::read_link(lib.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    assert_eq!(
        link(SONAME),
        PathBuf::from(format!("libgoheap_malloc.so.{version}"))
    );
    assert_eq!(link("libgoheap_malloc.so"), PathBuf::from(SONAME));
    assert!(prefix.join("include/goheap.h").is_file());
    let pc = std::fs::read_to_string(lib.join("pkgconfig/goheap.pc")).unwrap();
    assert!(
        pc.contains(&format!("prefix={}\n", prefix.display())),
        "{pc}"
    );
    assert!(pc.contains(&format!("Version: {version}\n")), "{pc}");
    assert!(!pc.contains('@'), "unfilled template field:\n{pc}");
    let flags = pkg_config_flags(&prefix);
    assert!(flags.contains(&"-lgoheap_malloc".to_string()), "{flags:?}");
    assert!(
        flags.contains(&format!("-I{}", prefix.join("include").display())),
        "{flags:?}"
    );
    // The header's version is the crate's (the C program checks it against the library).
    let header = std::fs::read_to_string(prefix.join("include/goheap.h")).unwrap();
    assert!(
        header.contains(&format!("#define GOHEAP_VERSION_STRING \"{version}\"")),
        "goheap.h's GOHEAP_VERSION_STRING is not {version}"
    );
}

#[test]
fn linked_program_uses_the_c_api() {
    let dir = scratch("linked");
    let prefix = dir.join("prefix");
    install(&prefix);
    let flags = pkg_config_flags(&prefix);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let exe = compile(&dir, "c_api.c", "c_api", &flags);
    // The program names the library by its SONAME.
    let dynamic = readelf_dynamic(&exe);
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(NEEDED)") && l.contains(&format!("[{SONAME}]"))),
        "c_api does not need {SONAME}:\n{dynamic}"
    );
    let r = run(
        Command::new(&exe).env("LD_LIBRARY_PATH", prefix.join("lib")),
        b"",
        TIMEOUT,
    );
    r.assert_ok("c_api linked");
    assert_eq!(r.stdout, "c_api ok\n", "{}", r.stderr);
}

#[test]
fn preloaded_program_uses_the_c_api() {
    let dir = scratch("preloaded");
    let include = format!("-I{}/include", env!("CARGO_MANIFEST_DIR"));
    let exe = compile(&dir, "c_api.c", "c_api_weak", &["-DGOHEAP_WEAK", &include]);
    let dynamic = readelf_dynamic(&exe);
    assert!(!dynamic.contains("goheap"), "linked to goheap:\n{dynamic}");
    // Without the library the weak symbols stay null, and the program says so.
    let r = run(Command::new(&exe).env_remove("LD_PRELOAD"), b"", TIMEOUT);
    assert_eq!(r.status.code(), Some(3), "{r:?}");
    assert_eq!(r.stdout, "goheap not loaded\n");
    let r = run(preload(&mut Command::new(&exe)), b"", TIMEOUT);
    r.assert_ok("c_api preloaded");
    assert_eq!(r.stdout, "c_api ok\n", "{}", r.stderr);
}
