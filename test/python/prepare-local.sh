#!/usr/bin/env bash
# Prepares, in OUT, what the original gaffer 0.5.2 Python client needs to
# run against gafferd on Python 3.11, from git clones the caller already
# has (none of this code is part of this repository):
#   GAFFER_GIT   a clone of benoitc/gaffer   (tag 0.5.2)
#   TORNADO_GIT  a clone of tornadoweb/tornado (tag v2.4.1)
#   PYUV_GIT     a clone of saghul/pyuv      (tag pyuv-1.4.0)
# Each may be a bare repository or a work tree. Needs gcc, python3-dev,
# libuv1-dev, python3-six, python3-psutil, python3-pytest (apt).
# Prints the environment to export for `go test ./cmd/gafferd -run PyClient`.
set -euo pipefail
out=${1:?usage: prepare-local.sh OUT}
py=${PYTHON:-/usr/bin/python3}
mkdir -p "$out"
out=$(cd "$out" && pwd)

extract() { # git-dir tag dest [path]
  rm -rf "$3" && mkdir -p "$3"
  git --git-dir="$(git -C "$1" rev-parse --absolute-git-dir 2>/dev/null || echo "$1")" archive "$2" ${4:-} | tar -x -C "$3"
}

extract "$GAFFER_GIT" 0.5.2 "$out/gaffer"
extract "$TORNADO_GIT" v2.4.1 "$out/tornado" tornado
# tornado 2.4 is Python 2 code that its setup.py converted with 2to3.
"$py" -W ignore -m lib2to3 -w -n "$out/tornado/tornado" >/dev/null 2>&1

extract "$PYUV_GIT" pyuv-1.4.0 "$out/pyuv"
# Two Python 3.10+ C-API spellings; libuv comes from the system.
sed -i 's/Py_REFCNT(self) = refcnt;/Py_SET_REFCNT(self, refcnt);/' "$out/pyuv/src/handle.c"
sed -i 's/PyUnicode_EncodeUTF8(PyUnicode_AS_UNICODE(unicode), PyUnicode_GET_SIZE(unicode), "surrogateescape")/PyUnicode_AsEncodedString(unicode, "utf-8", "surrogateescape")/' "$out/pyuv/src/common.c"
(cd "$out/pyuv" && "$py" setup.py build_ext --use-system-libuv --inplace >"$out/pyuv-build.log" 2>&1) \
  || { echo "pyuv build failed, see $out/pyuv-build.log" >&2; exit 1; }

echo "export GAFFER_PY_SRC=$out/gaffer"
echo "export GAFFER_PY_PATH=$out/pyuv:$out/tornado"
echo "export GAFFER_PYTHON=$py"
