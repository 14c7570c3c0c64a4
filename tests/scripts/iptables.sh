#!/usr/bin/env bash
# iptables for the boot test (tests/boot): prints the path of the iptables
# command, installing Debian's package first when it is missing.
#
#   iptables.sh     print the path, installing iptables if needed (root, apt-get)
#
# When the install cannot happen (not root, not Debian or Ubuntu, no network),
# it says what to run by hand and exits 1. Diagnostics go to stderr.
set -euo pipefail

die() { echo "iptables.sh: $*" >&2; exit 1; }
find_it() { PATH=$PATH:/usr/sbin:/sbin command -v iptables; }

if path=$(find_it); then
  echo "$path"
  exit 0
fi
[[ $(id -u) -eq 0 ]] || die "iptables is missing; install it as root: apt-get install -y iptables"
command -v apt-get >/dev/null ||
  die "iptables is missing and apt-get is not here; install iptables with this system's package manager"
# Parallel test binaries may all get here at once: one installs, the others wait.
exec 9>"${TMPDIR:-/tmp}/ccd-iptables-install.lock"
flock 9
if ! path=$(find_it); then
  echo "iptables.sh: installing iptables with apt-get" >&2
  install() { DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables >&2; }
  install || { apt-get update >&2 && install; } ||
    die "apt-get could not install iptables (offline?); run 'apt-get update && apt-get install -y iptables' as root"
  path=$(find_it) || die "iptables was installed but is not on PATH"
fi
echo "$path"
