#!/usr/bin/env bash
# Debian's image tools for the image tests and `make bench`: buildah (builds, as root, with
# chroot isolation), podman (only for `podman import`), debootstrap (the base image),
# docker-registry (a real registry on loopback), and wrk (the service benchmark's load). Installs only what is missing; without root
# or apt-get it says what is missing and leaves it to the image tests to fail clearly.
set -u
missing=()
for pair in buildah:buildah podman:podman debootstrap:debootstrap docker-registry:docker-registry wrk:wrk; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "image tools missing: ${missing[*]} (install them with apt-get as root; the image tests need them)" >&2
  exit 0
fi
echo "installing image tools: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
  || echo "could not install: ${missing[*]}" >&2
# The Debian package starts a registry service on :5000; the tests start their own.
exit 0
