#!/usr/bin/env bash
# The boot test's `docker`: as much of docker's command line as ccd's startup
# script uses. `run` starts the sample app ($CCD_BOOT_APP, standing for any
# image) as a host-network container runs: a process in this network
# namespace, with the -e and --env-file variables. Like a registry or a
# daemon that is not ready yet, the first $CCD_BOOT_FAIL_PULLS pulls and
# $CCD_BOOT_FAIL_RUNS runs fail; a failed run leaves its container created,
# as docker's can. Every call is appended to $CCD_BOOT_STATE/calls.
set -euo pipefail
state=${CCD_BOOT_STATE:?the boot test sets CCD_BOOT_STATE}
echo "docker $*" >>"$state/calls"

# nth WHAT: how many times WHAT has happened, this time included.
nth() {
  local file=$state/$1.count n=0
  [[ -f $file ]] && n=$(<"$file")
  echo $((n + 1)) >"$file"
  echo $((n + 1))
}

exists() { [[ -e $state/$1.pid || -e $state/$1.created ]]; }

case ${1:-} in
pull)
  if (($(nth pull) <= ${CCD_BOOT_FAIL_PULLS:-0})); then
    echo "Error response from daemon: Get \"https://${2%%/*}/v2/\": dial tcp: i/o timeout" >&2
    exit 1
  fi
  echo "$2" >>"$state/pulled"
  ;;
rm)
  name=${*: -1}
  if ! exists "$name"; then
    echo "Error response from daemon: No such container: $name" >&2
    exit 1
  fi
  if [[ -f $state/$name.pid ]]; then
    pid=$(<"$state/$name.pid")
    # Like docker, return once the container is gone (its port free).
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -f "$state/$name.pid" "$state/$name.created"
  ;;
run)
  shift
  name='' network=''
  env=(HOST=0.0.0.0) # the image's own default: listen on every address
  while (($#)); do
    case $1 in
    -d | --restart=*) shift ;;
    --name) name=$2 && shift 2 ;;
    --network) network=$2 && shift 2 ;;
    --network=*) network=${1#--network=} && shift ;;
    -e) env+=("$2") && shift 2 ;;
    --env-file) mapfile -t lines <"$2" && env+=("${lines[@]}") && shift 2 ;;
    -*) echo "docker double: run $1 is not implemented" >&2 && exit 2 ;;
    *) break ;;
    esac
  done
  image=${1:?docker run needs an image}
  [[ -n $name ]] || { echo "docker double: run without --name" >&2 && exit 2; }
  [[ $network == host ]] || { echo "docker double: only --network host runs here" >&2 && exit 2; }
  if exists "$name"; then
    echo "docker: Error response from daemon: Conflict. The container name \"/$name\" is already in use." >&2
    exit 125
  fi
  # Strict on purpose: the script pulls first (with retries), so a run that
  # would pull on its own shows a script that skipped that.
  grep -qxF "$image" "$state/pulled" 2>/dev/null ||
    { echo "docker double: $image was not pulled first" >&2 && exit 125; }
  if (($(nth run) <= ${CCD_BOOT_FAIL_RUNS:-0})); then
    touch "$state/$name.created"
    echo "docker: Error response from daemon: failed to create task for container: context deadline exceeded" >&2
    exit 125
  fi
  setsid env -i "${env[@]}" "${CCD_BOOT_APP:?the boot test sets CCD_BOOT_APP}" \
    >"$state/$name.log" 2>&1 </dev/null &
  echo $! >"$state/$name.pid"
  echo "fake-$name-$!"
  ;;
*)
  echo "docker double: '${1:-}' is not implemented" >&2
  exit 2
  ;;
esac
