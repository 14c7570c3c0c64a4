#!/usr/bin/env bash
# Google's Pub/Sub emulator for tests and benches, on loopback.
#
#   pubsub-emulator.sh jar     print the emulator's jar, or say how to install it and fail
#   pubsub-emulator.sh start   pick a free loopback port, print it on the first stdout line, then
#                              exec the emulator in the foreground (in memory, any project ID).
#                              Java replaces this script's process, so whoever started the script
#                              stops the emulator by killing that one pid; it is also killed when
#                              its parent dies (setpriv --pdeathsig), so none is left behind by a
#                              test binary that exits without stopping it.
#
# The emulator is the jar of the Cloud SDK's pubsub-emulator component
# (platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar), run with java directly: gcloud's
# `beta emulators pubsub start` takes a second more to start (Python), and runs java as a child
# that outlives a killed gcloud. Clients reach it at http://127.0.0.1:PORT, gRPC and REST alike
# (PUBSUB_EMULATOR_HOST=127.0.0.1:PORT).
#
# PUBSUB_EMULATOR_JAR names a jar to use instead of the SDK's. PUBSUB_EMULATOR_LOG_LEVEL (default
# WARNING; INFO shows every request) sets the emulator's java.util.logging level, and
# PUBSUB_EMULATOR_JAVA_OPTS adds JVM options. Diagnostics and the emulator's log go to stderr.
set -euo pipefail

TOOLS_DIR=${CCD_TOOLS_DIR:-${HOME}/.cache/ccd-tools}

die() { echo "pubsub-emulator.sh: $*" >&2; exit 1; }

# The Cloud SDK's root folders to look in, best first.
sdk_roots() {
  [[ -n ${CLOUDSDK_ROOT_DIR:-} ]] && echo "$CLOUDSDK_ROOT_DIR"
  local gcloud
  if gcloud=$(command -v gcloud); then
    gcloud=$(readlink -f "$gcloud")
    dirname "$(dirname "$gcloud")"
  fi
  echo /usr/lib/google-cloud-sdk
  echo /usr/share/google-cloud-sdk
  echo /opt/google-cloud-sdk
  echo "$HOME/google-cloud-sdk"
}

find_jar() {
  if [[ -n ${PUBSUB_EMULATOR_JAR:-} ]]; then
    [[ -f $PUBSUB_EMULATOR_JAR ]] || die "PUBSUB_EMULATOR_JAR=$PUBSUB_EMULATOR_JAR is not a file"
    echo "$PUBSUB_EMULATOR_JAR"
    return
  fi
  local root jar sdk=""
  while read -r root; do
    [[ -d $root/platform ]] || continue
    [[ -n $sdk ]] || sdk=$root
    jar=$(compgen -G "$root/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar" | sort -V | tail -n 1 || true)
    if [[ -n $jar ]]; then
      echo "$jar"
      return
    fi
  done < <(sdk_roots)
  if [[ -z $sdk ]]; then
    die "no Google Cloud SDK found (gcloud): install it with its Pub/Sub emulator from Google's
  Cloud SDK apt repository: apt-get install google-cloud-cli google-cloud-cli-pubsub-emulator
  (or set PUBSUB_EMULATOR_JAR to the emulator's cloud-pubsub-emulator-*-all.jar)"
  fi
  die "the Cloud SDK at $sdk has no Pub/Sub emulator: apt-get install google-cloud-cli-pubsub-emulator
  (an SDK not installed by apt: gcloud components install pubsub-emulator)"
}

find_java() {
  if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
    echo "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null; then
    command -v java
  else
    die "the Pub/Sub emulator needs Java 11 or later: apt-get install openjdk-17-jre-headless"
  fi
}

free_port() {
  command -v python3 >/dev/null || die "python3 is needed to pick a free port (apt-get install python3)"
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# A java.util.logging configuration at the level asked for; prints its path.
logging_config() {
  local level=${PUBSUB_EMULATOR_LOG_LEVEL:-WARNING}
  [[ $level =~ ^(SEVERE|WARNING|INFO|CONFIG|FINE|FINER|FINEST|ALL|OFF)$ ]] ||
    die "PUBSUB_EMULATOR_LOG_LEVEL=$level is not a java.util.logging level (WARNING, INFO, ...)"
  mkdir -p "$TOOLS_DIR"
  local file=$TOOLS_DIR/pubsub-emulator-logging-$level.properties
  if [[ ! -f $file ]]; then
    printf 'handlers=java.util.logging.ConsoleHandler\n.level=%s\njava.util.logging.ConsoleHandler.level=%s\n' \
      "$level" "$level" >"$file.$$"
    mv "$file.$$" "$file"
  fi
  echo "$file"
}

case ${1:-start} in
  jar)
    find_jar
    ;;
  start)
    jar=$(find_jar)
    java=$(find_java)
    logging=$(logging_config)
    port=$(free_port)
    echo "$port"
    # Dies with whoever started it, even when that was killed.
    die_with_parent=()
    if command -v setpriv >/dev/null; then
      die_with_parent=(setpriv --pdeathsig KILL --)
    fi
    # shellcheck disable=SC2086 # PUBSUB_EMULATOR_JAVA_OPTS is a list of options
    exec "${die_with_parent[@]}" "$java" -Djava.util.logging.config.file="$logging" \
      ${PUBSUB_EMULATOR_JAVA_OPTS:-} -jar "$jar" --host=127.0.0.1 --port="$port" 1>&2
    ;;
  *)
    die "usage: pubsub-emulator.sh [jar|start]"
    ;;
esac
