#!/usr/bin/env bash
# Build a preloadable release mimalloc v3 from the source the libmimalloc-sys crate ships.
#
# bench/malloc compares goheap's malloc face against mimalloc. Debian's libmimalloc is 2.0.9,
# two major versions old; the newest is the v3 line, and the libmimalloc-sys crate that
# goheap-bench already depends on (pinned by Cargo.lock) bundles its source. This script
# compiles that source the way mimalloc's own single-file build does:
#
#     cc -O3 -DNDEBUG -DMI_BUILD_RELEASE -DMI_MALLOC_OVERRIDE -shared -fPIC \
#        -ftls-model=initial-exec -fno-builtin-malloc \
#        -I include src/static.c -o libmimalloc-v3.so -pthread
#
# NDEBUG and MI_BUILD_RELEASE matter: without them mimalloc builds with its debug checks and
# statistics on and is no fair anchor. MI_MALLOC_OVERRIDE makes it export malloc, free and
# the rest, so LD_PRELOAD replaces glibc's. The last two flags are what mimalloc's own
# CMakeLists.txt adds for its shared library with GCC or Clang (unless MI_LOCAL_DYNAMIC_TLS;
# -fno-builtin-malloc when it overrides malloc). Without initial-exec TLS, -fPIC code reaches
# mimalloc's thread-local heap through __tls_get_addr on every call: callgrind counted 11 of
# its 66 instructions per malloc/free pair there (alloc-test), a handicap its real builds do
# not have (goheap's malloc face uses initial-exec TLS too).
#
# It works on a fresh machine: when the crate's source is not in Cargo's registry yet, it
# runs `cargo fetch --locked` for the workspace (network once), so the version built is the
# one Cargo.lock names. The header's MI_MALLOC_VERSION must be 3xxyy, or the build stops.
#
#     bench/malloc/build-mimalloc.sh [OUT.so]     # default target/bench-malloc/libmimalloc-v3.so
#
# On success it prints two lines on stdout: the library's path, then a description
# ("mimalloc 3.3.2 from libmimalloc-sys 0.1.49, cc (Debian 14.2.0-19) 14.2.0, -O3 ...").
# Progress and errors go to stderr; exit 1 on any failure. CC overrides the compiler.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-$root/target/bench-malloc/libmimalloc-v3.so}
cc=${CC:-cc}
flags=(-O3 -DNDEBUG -DMI_BUILD_RELEASE -DMI_MALLOC_OVERRIDE -shared -fPIC
       -ftls-model=initial-exec -fno-builtin-malloc)

fail() { echo "build-mimalloc: $*" >&2; exit 1; }

# The version Cargo.lock pins: the line after `name = "libmimalloc-sys"`.
crate_version=$(awk '/^name = "libmimalloc-sys"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' \
    "$root/Cargo.lock")
[ -n "$crate_version" ] || fail "Cargo.lock names no libmimalloc-sys (goheap-bench depends on the mimalloc crate)"

find_src() {
    local home=${CARGO_HOME:-$HOME/.cargo} d
    for d in "$home"/registry/src/*/libmimalloc-sys-"$crate_version"/c_src/mimalloc/v3; do
        if [ -f "$d/src/static.c" ]; then echo "$d"; return 0; fi
    done
    return 1
}

if ! src=$(find_src); then
    echo "build-mimalloc: libmimalloc-sys $crate_version is not in Cargo's registry; cargo fetch --locked" >&2
    (cd "$root" && cargo fetch --locked >&2) || fail "cargo fetch failed"
    src=$(find_src) || fail "libmimalloc-sys $crate_version has no c_src/mimalloc/v3/src/static.c after cargo fetch"
fi

code=$(sed -n 's/^#define MI_MALLOC_VERSION \([0-9]*\).*/\1/p' "$src/include/mimalloc.h")
[ -n "$code" ] || fail "no MI_MALLOC_VERSION in $src/include/mimalloc.h"
major=$((10#$code / 10000)); minor=$((10#$code / 100 % 100)); patch=$((10#$code % 100))
[ "$major" -eq 3 ] || fail "$src holds mimalloc $major.$minor.$patch, not v3"

mkdir -p "$(dirname "$out")"
tmp="$out.tmp$$"
echo "build-mimalloc: $cc ${flags[*]} -I $src/include $src/src/static.c -o $out -pthread" >&2
"$cc" "${flags[@]}" -I "$src/include" "$src/src/static.c" -o "$tmp" -pthread \
    || { rm -f "$tmp"; fail "the compiler failed"; }
mv -f "$tmp" "$out"
echo "$out"
echo "mimalloc $major.$minor.$patch from libmimalloc-sys $crate_version, $("$cc" --version | head -n1), ${flags[*]}"
