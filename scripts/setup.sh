#!/usr/bin/env bash
# Installs what building, testing and the demo need on Debian 12 (as root). Quick when all is there already.
set -euo pipefail

cd "$(dirname "$0")"
mapfile -t apt_packages < <(grep -v '^\s*#' debian-packages.txt | grep -v '^\s*$')
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# A standard gRPC client for the reflection test (grpcurl is not packaged for Debian 12).
if ! python3 -c 'import grpc, grpc_reflection' 2>/dev/null; then
  echo "installing Python grpcio and grpcio-reflection"
  python3 -m pip install --quiet --disable-pip-version-check 'grpcio==1.85.*' 'grpcio-reflection==1.85.*'
fi
