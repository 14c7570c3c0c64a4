#!/usr/bin/env bash
# A command a test needs from Debian's packages: prints its path, installing
# the package first when the command is missing.
#
#   need.sh COMMAND [PACKAGE]    PACKAGE defaults to COMMAND
#
# Used by the boot test (iptables) and the folder store's durability test
# (strace). When the install cannot happen (not root, not Debian or Ubuntu,
# no network), it says what to run by hand and exits 1. Diagnostics go to stderr.
set -euo pipefail

cmd=${1:?usage: need.sh COMMAND [PACKAGE]}
pkg=${2:-$cmd}
die() { echo "need.sh: $*" >&2; exit 1; }
find_it() { PATH=$PATH:/usr/sbin:/sbin command -v "$cmd"; }

if path=$(find_it); then
  echo "$path"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "$cmd is missing; install it as root: apt-get install -y $pkg"
command -v apt-get >/dev/null ||
  die "$cmd is missing and apt-get is not here; install $pkg with this system's package manager"
# Parallel test binaries may all get here at once: one installs, the others wait.
exec 9>"${TMPDIR:-/tmp}/ccd-need-$pkg.lock"
flock 9
if ! path=$(find_it); then
  echo "need.sh: installing $pkg with apt-get" >&2
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$pkg" >&2; }
  install || { apt-get update >&2 && install; } ||
    die "apt-get could not install $pkg (offline?); run 'apt-get update && apt-get install -y $pkg' as root"
  path=$(find_it) || die "$pkg was installed but $cmd is not on PATH"
fi
echo "$path"
