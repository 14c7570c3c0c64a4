#!/usr/bin/env bash
# schemathesis for tests: installs it when missing and prints its path.
#
#   schemathesis.sh bin     install if missing, print the `schemathesis` executable's path
#
# schemathesis (PyPI) generates requests from an OpenAPI document and checks the answers
# against it. It is installed, pinned, into its own virtualenv under $CCD_TOOLS_DIR (default
# ~/.cache/ccd-tools). SCHEMATHESIS_BIN, when set, names an executable to use instead.
# Diagnostics go to stderr.
set -euo pipefail

PACKAGE=schemathesis
VERSION=4.32.5
TOOLS_DIR=${CCD_TOOLS_DIR:-${HOME}/.cache/ccd-tools}
VENV=$TOOLS_DIR/schemathesis-venv

die() { echo "schemathesis.sh: $*" >&2; exit 1; }

installed() {
  [[ -x $VENV/bin/schemathesis ]] &&
    [[ $("$VENV/bin/python" -m pip show "$PACKAGE" 2>/dev/null | sed -n 's/^Version: //p') == "$VERSION" ]]
}

install() {
  command -v python3 >/dev/null || die "python3 is needed to install $PACKAGE (apt-get install python3 python3-venv)"
  mkdir -p "$TOOLS_DIR"
  # Parallel test binaries may all get here at once: one installs, the others wait.
  exec 9>"$TOOLS_DIR/schemathesis.lock"
  flock 9
  if ! installed; then
    echo "schemathesis.sh: installing $PACKAGE==$VERSION into $VENV" >&2
    python3 -m venv "$VENV" >&2 ||
      die "cannot create a virtualenv at $VENV (on Debian: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "$PACKAGE==$VERSION" >&2 ||
      die "pip could not install $PACKAGE==$VERSION from PyPI"
  fi
  flock -u 9
}

case ${1:-bin} in
  bin)
    if [[ -n ${SCHEMATHESIS_BIN:-} ]]; then
      [[ -x $SCHEMATHESIS_BIN ]] || die "SCHEMATHESIS_BIN=$SCHEMATHESIS_BIN is not an executable"
      echo "$SCHEMATHESIS_BIN"
      exit 0
    fi
    installed || install
    echo "$VENV/bin/schemathesis"
    ;;
  *)
    die "usage: schemathesis.sh bin"
    ;;
esac
