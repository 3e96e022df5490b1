"""Load the original gaffer 0.5.2 client, unchanged, on Python 3.11.

The 0.5.2 source is not part of this repository: GAFFER_PY_SRC names a
directory holding its tree (gaffer/, test/), and GAFFER_PY_PATH (colon
separated) names where its run-time dependencies are found: tornado 2.4.1
(converted with 2to3, as its setup.py did on Python 3) and pyuv.
See README.md beside this file for how to prepare them.

Only the environment around the client is adapted, never its code:
- the package `gaffer` is registered without running gaffer/__init__.py,
  which imports the whole server (manager, C extension gaffer.sync);
- gaffer.sync (a C extension the client reaches through gaffer.process)
  is replaced by its pure-Python meaning: each function returns the
  arithmetic result for a plain int;
- psutil.error (gone since psutil 2) is aliased to psutil's exceptions;
- pyuv >= 1.0 spells handle.unref() as handle.ref = False: ref/unref
  methods are added back;
- array.array.tostring (gone since Python 3.9), which the websocket
  client calls, is provided as tobytes in the websocket module's view.
"""

import array as _array
import os
import sys
import types


def missing():
    """Returns why the client cannot be loaded, or None when it can."""
    src = os.environ.get("GAFFER_PY_SRC", "")
    if not src:
        return "GAFFER_PY_SRC is not set (see test/python/README.md)"
    if not os.path.isfile(os.path.join(src, "gaffer", "httpclient", "__init__.py")):
        return "GAFFER_PY_SRC=%s holds no gaffer/httpclient" % src
    _extend_path()
    for mod in ("six", "psutil", "pyuv", "tornado"):
        try:
            __import__(mod)
        except Exception as exc:  # noqa: BLE001 - any import failure means skip
            return "python module %s: %s" % (mod, exc)
    import tornado
    if not tornado.version.startswith("2."):
        return "tornado %s found; the 0.5.2 client needs tornado 2.x" % tornado.version
    return None


def _extend_path():
    extra = [p for p in os.environ.get("GAFFER_PY_PATH", "").split(":") if p]
    for p in reversed(extra):
        if p not in sys.path:
            sys.path.insert(0, p)


def _sync_module():
    m = types.ModuleType("gaffer.sync")
    m.increment = lambda v: v + 1
    m.decrement = lambda v: v - 1
    m.atomic_read = lambda v: v
    m.add = lambda v, inc: v + inc
    m.sub = lambda v, dec: v - dec
    m.compare_and_swap = lambda old, new: new
    return m


def _pyuv_compat(pyuv):
    def unref(self):
        self.ref = False

    def ref(self):
        self.ref = True

    for name in ("Timer", "Async", "Prepare", "Idle", "Check", "Poll",
                 "Signal", "TCP", "Pipe", "TTY", "UDP"):
        base = getattr(pyuv, name, None)
        if base is None or hasattr(base, "unref"):
            continue
        sub = type(name, (base,), {"unref": unref})
        setattr(pyuv, name, sub)


class _ArrayWithTostring(_array.array):
    def tostring(self):
        return self.tobytes()


def load():
    """Registers the compatibility modules and returns the gaffer package."""
    why = missing()
    if why:
        raise RuntimeError(why)
    src = os.environ["GAFFER_PY_SRC"]
    if "gaffer" in sys.modules:
        return sys.modules["gaffer"]
    pkg = types.ModuleType("gaffer")
    pkg.__path__ = [os.path.join(src, "gaffer")]
    pkg.version_info = (0, 5, 2)
    pkg.__version__ = "0.5.2"
    sys.modules["gaffer"] = pkg
    sys.modules["gaffer.sync"] = _sync_module()

    import psutil
    if "psutil.error" not in sys.modules:
        err = types.ModuleType("psutil.error")
        err.AccessDenied = psutil.AccessDenied
        err.NoSuchProcess = psutil.NoSuchProcess
        err.TimeoutExpired = psutil.TimeoutExpired
        sys.modules["psutil.error"] = err
        psutil.error = err

    import pyuv
    _pyuv_compat(pyuv)

    import gaffer.httpclient.websocket as ws
    ws.array = types.SimpleNamespace(array=_ArrayWithTostring)
    return pkg
