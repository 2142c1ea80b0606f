#!/bin/sh
# Leaves in a production node_modules only what Node loads at run time: no type declarations,
# source maps, TypeScript sources, docs, or other platforms' prebuilt addons. Shared by
# image/build.sh and the Containerfile, so both images carry the same files.
#   image/prune-node-modules.sh DIR/node_modules
set -eu
dir=${1:?usage: prune-node-modules.sh NODE_MODULES_DIR}
find "$dir" -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' \
  -o -name '*.ts' -o -name '*.md' -o -name '*.markdown' \) -delete
rm -rf "$dir/@types" "$dir/.package-lock.json"
find "$dir" -path '*/prebuilds/*' -prune -type d ! -name linux-x64 -exec rm -rf {} +
