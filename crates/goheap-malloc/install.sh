#!/bin/sh
# Installs libgoheap_malloc as a C library: the shared library under its full version with
# its SONAME and the bare name as symbolic links, the header goheap.h, and the pkg-config
# file goheap.pc; then runs ldconfig (as root, unless --no-ldconfig).
#
#   cargo build --release -p goheap-malloc
#   crates/goheap-malloc/install.sh [--no-ldconfig] [PREFIX]      # PREFIX: /usr/local
#
# GOHEAP_SO names the library to install (default: the workspace's
# target/release/libgoheap_malloc.so); DESTDIR, as for `make install`, is put before every
# installed path but not into goheap.pc. The README ("goheap as a C library") lists the same
# steps by hand.
set -eu

ldconfig=yes
if [ "${1:-}" = "--no-ldconfig" ]; then
    ldconfig=no
    shift
fi
prefix=${1:-/usr/local}
here=$(cd "$(dirname "$0")" && pwd)
so=${GOHEAP_SO:-$here/../../target/release/libgoheap_malloc.so}
dest=${DESTDIR:-}

[ -f "$so" ] || { echo "install.sh: $so not found (cargo build --release -p goheap-malloc)" >&2; exit 1; }
version=$(sed -n 's/^version = "\([^"]*\)"$/\1/p' "$here/Cargo.toml" | head -n 1)
[ -n "$version" ] || { echo "install.sh: no version in $here/Cargo.toml" >&2; exit 1; }
soname=$(readelf -d "$so" | sed -n 's/.*(SONAME).*\[\(.*\)\]$/\1/p')
[ -n "$soname" ] || { echo "install.sh: $so has no SONAME" >&2; exit 1; }

lib=$dest$prefix/lib
install -d "$lib" "$lib/pkgconfig" "$dest$prefix/include"
install -m 0755 "$so" "$lib/libgoheap_malloc.so.$version"
ln -sf "libgoheap_malloc.so.$version" "$lib/$soname"
ln -sf "$soname" "$lib/libgoheap_malloc.so"
install -m 0644 "$here/include/goheap.h" "$dest$prefix/include/goheap.h"
sed -e "s|@PREFIX@|$prefix|" -e "s|@VERSION@|$version|" "$here/goheap.pc.in" \
    > "$lib/pkgconfig/goheap.pc"
chmod 0644 "$lib/pkgconfig/goheap.pc"

if [ "$ldconfig" = yes ] && [ -z "$dest" ] && [ "$(id -u)" = 0 ]; then
    ldconfig
fi
echo "installed libgoheap_malloc $version ($soname) under $dest$prefix"
