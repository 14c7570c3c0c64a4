#!/usr/bin/env bash
# redis-server for tests (Redis 7: ACL users with key and channel patterns).
#
#   redis.sh bin    print the server's path, installing Debian's redis-server first when missing
#
# The test starts the server itself with a configuration file of its own (port, admin password,
# no persistence) and stops it when done. Diagnostics go to stderr.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
case ${1:-bin} in
  bin)
    bin=$(bash "$here/need.sh" redis-server redis-server)
    version=$("$bin" --version | sed -n 's/.* v=\([0-9]*\)\..*/\1/p')
    if [[ -z $version || $version -lt 7 ]]; then
      echo "redis.sh: $bin is Redis ${version:-?}; ccd's cache needs Redis 7 or later (ACL channel patterns)" >&2
      exit 1
    fi
    echo "$bin"
    ;;
  *)
    echo "redis.sh: usage: redis.sh bin" >&2
    exit 2
    ;;
esac
