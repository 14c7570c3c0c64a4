#!/usr/bin/env bash
# The boot test's `docker-credential-gcr`: `configure-docker` only, failing
# the first $CCD_BOOT_FAIL_CREDS times. Calls go to $CCD_BOOT_STATE/calls.
set -euo pipefail
state=${CCD_BOOT_STATE:?the boot test sets CCD_BOOT_STATE}
echo "docker-credential-gcr $*" >>"$state/calls"
[[ ${1:-} == configure-docker ]] ||
  { echo "docker-credential-gcr double: only configure-docker is implemented" >&2 && exit 2; }
n=0
[[ -f $state/creds.count ]] && n=$(<"$state/creds.count")
n=$((n + 1))
echo "$n" >"$state/creds.count"
if ((n <= ${CCD_BOOT_FAIL_CREDS:-0})); then
  echo "ERROR: Unable to save docker config: read-only file system" >&2
  exit 1
fi
echo "Docker configuration file updated for ${2#--registries=}."
