#!/usr/bin/env bash
# Installs the LLVM that burn's CUDA backend links, from Debian's package
# registry, so that `cargo build --features cuda` works without GitHub.
#
#   scripts/offline-llvm.sh          (then: cargo build --release --features cuda)
#
# Why: burn-cuda 0.22 compiles kernels through cubecl-llvm (LLVM 23's NVPTX
# back end). Its build script (tracel-llvm-bundler) downloads a prebuilt LLVM
# from GitHub releases into ~/.local/share/tracel/tracel-llvm-<version>/ and
# skips the download when that folder carries its sentinel file. Machines that
# reach only the package registries get the same LLVM major version from
# Debian unstable: its static libraries, headers and llvm-config go into that
# folder, and the sentinel is written.
#
# Two mismatches with a Debian 12 host are bridged here:
#   - sid's llvm-config needs a newer glibc: it runs on sid's own loader and
#     libraries (patchelf), kept in sysroot/ inside the folder;
#   - sid's static libraries call glibc 2.38's C23 strto* names: a tiny
#     compatibility archive maps them onto the classic functions (the only C23
#     change is accepting "0b" prefixes, which LLVM does not rely on).
# The resulting binary runs on glibc 2.36 and later.
set -euo pipefail
cd "$(dirname "$0")/.."

mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
bundle_version=$(sed -n '/^name = "tracel-llvm-bundler"/{n;s/^version = "\(.*\)"$/\1/p;}' Cargo.lock)
[ -n "$bundle_version" ] || { echo "tracel-llvm-bundler is not in Cargo.lock" >&2; exit 1; }
major="${bundle_version%%.*}"
prefix="${XDG_DATA_HOME:-$HOME/.local/share}/tracel/tracel-llvm-$bundle_version"
sentinel="$prefix/.tracel-llvm-installed"
if [ -e "$sentinel" ]; then
    echo "LLVM for tracel-llvm-bundler $bundle_version is already in $prefix"
    exit 0
fi

echo "== host tools and libraries"
if ! command -v patchelf >/dev/null || [ ! -e /usr/include/zstd.h ] || [ ! -e /usr/include/libxml2 ] || [ ! -e /usr/include/zlib.h ]; then
    apt-get install -y patchelf zlib1g-dev libzstd-dev libxml2-dev >/dev/null \
        || { apt-get update >/dev/null && apt-get install -y patchelf zlib1g-dev libzstd-dev libxml2-dev >/dev/null; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "== Debian unstable's package index"
curl -fsS --retry 3 -o "$work/Packages.xz" "$mirror/dists/sid/main/binary-amd64/Packages.xz"
xz -dc "$work/Packages.xz" > "$work/Packages"

# The LLVM packages, and what sid's llvm-config needs to run.
packages="llvm-$major-dev llvm-$major libllvm$major libpolly-$major-dev
          libc6 libstdc++6 libgcc-s1 libz3-4 libzstd1 zlib1g"
mkdir -p "$work/root"
for package in $packages; do
    file=$(awk -v p="$package" '/^Package: /{cur=$2} cur==p && /^Filename: /{print $2; exit}' "$work/Packages")
    [ -n "$file" ] || { echo "Debian unstable has no package $package" >&2; exit 1; }
    echo "   $file"
    curl -fsS --retry 3 -o "$work/p.deb" "$mirror/$file"
    dpkg-deb -x "$work/p.deb" "$work/root"
done

echo "== installing into $prefix"
staging="$prefix.partial"
rm -rf "$staging"
mkdir -p "$staging/bin" "$staging/include" "$staging/lib" "$staging/sysroot"
llvm="$work/root/usr/lib/llvm-$major"
cp -a "$llvm"/lib/*.a "$staging/lib/"
cp -a "$work/root/usr/include/llvm-$major/llvm" "$work/root/usr/include/llvm-c-$major/llvm-c" "$staging/include/"
cp -a "$work/root/usr/lib/x86_64-linux-gnu" "$staging/sysroot/lib"
cp "$llvm/bin/llvm-config" "$staging/bin/llvm-config.real"
patchelf --set-interpreter "$prefix/sysroot/lib/ld-linux-x86-64.so.2" \
         --set-rpath "$prefix/sysroot/lib:$prefix/lib" "$staging/bin/llvm-config.real"

cat > "$work/c23compat.c" <<'EOF'
#include <stdlib.h>
long __isoc23_strtol(const char *s, char **e, int b) { return strtol(s, e, b); }
long long __isoc23_strtoll(const char *s, char **e, int b) { return strtoll(s, e, b); }
unsigned long __isoc23_strtoul(const char *s, char **e, int b) { return strtoul(s, e, b); }
unsigned long long __isoc23_strtoull(const char *s, char **e, int b) { return strtoull(s, e, b); }
EOF
gcc -O2 -fPIC -c "$work/c23compat.c" -o "$work/c23compat.o"
ar rcs "$staging/lib/libglibc_c23_compat.a" "$work/c23compat.o"

# The bundler asks llvm-config for static libraries and system libraries; the
# latter are named for this host (sid's names an absolute libz3 path that
# nothing here needs).
cat > "$staging/bin/llvm-config" <<'EOF'
#!/bin/sh
here=$(dirname "$0")
case " $* " in
  *" --libs "*) echo "$("$here/llvm-config.real" "$@") -lglibc_c23_compat"; exit 0;;
  *" --system-libs "*) echo "-lrt -ldl -lm -lz -lzstd -lxml2"; exit 0;;
esac
exec "$here/llvm-config.real" "$@"
EOF
chmod +x "$staging/bin/llvm-config"

rm -rf "$prefix"
mv "$staging" "$prefix"
"$prefix/bin/llvm-config" --version >/dev/null
touch "$sentinel"
echo "LLVM $("$prefix/bin/llvm-config" --version) ready in $prefix"
