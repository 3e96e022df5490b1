"""pytest plugin: run the original gaffer 0.5.2 test suite against gafferd.

The 0.5.2 tests (test/test_http.py, test_webchannel.py, test_pid_channel.py)
start an in-process `gaffer.manager.Manager` with an HTTP handler and then
talk to it with the original client. This plugin registers stand-ins for
`gaffer.manager` and `gaffer.gafferd.http` so that `Manager.start` runs the
gafferd binary (GAFFERD_BIN) on the handler's address instead, and the
manager methods the tests call go to gafferd's HTTP API. The tests and the
client themselves run unchanged.

Environment: GAFFERD_BIN, GAFFERD_PORT (a free loopback port), plus what
gaffer052.py needs (GAFFER_PY_SRC, GAFFER_PY_PATH).
"""

import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import types
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gaffer052  # noqa: E402

gaffer052.load()

import pyuv  # noqa: E402

PORT = int(os.environ.get("GAFFERD_PORT", "0"))


def _api(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (PORT, path),
                                 data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        raise RuntimeError("%s %s: %d %s" % (method, path, e.code, e.read()))
    try:
        return json.loads(raw.decode())
    except ValueError:
        return raw


def _split(name, sessionid=None):
    if sessionid:
        return sessionid, name
    if "." in name:
        return tuple(name.split(".", 1))
    return "default", name


class HttpHandler(object):
    """Stand-in for gaffer.gafferd.http.HttpHandler: keeps the bind address."""

    def __init__(self, config):
        self.config = config


class _Proc(object):
    def __init__(self, pid):
        self.pid = pid
        info = _api("GET", "/%d" % pid)
        self.os_pid = info.get("os_pid")
        self.info = info


class _Running(object):
    """The manager's `running` map (pid -> process), read from GET /pids."""

    def _pids(self):
        return _api("GET", "/pids")["pids"]

    def __len__(self):
        return len(self._pids())

    def __contains__(self, pid):
        return pid in self._pids()

    def __getitem__(self, pid):
        return _Proc(pid)

    def __iter__(self):
        return iter(self._pids())


class _Events(object):
    """The manager's event emitter, fed by gafferd's EVENTS channel through
    the original client's websocket (GafferSocket)."""

    def __init__(self, manager):
        self._m = manager
        self._socket = None
        self._subs = []

    def _ensure(self):
        if self._socket is not None:
            return
        from gaffer.httpclient import Server
        srv = Server("http://127.0.0.1:%d" % PORT, loop=self._m.loop)
        sock = srv.socket()
        ready = []
        sock.bind("subscription_success", lambda *a: ready.append(True) or self._m.loop.stop())
        sock.start()
        sock.subscribe("EVENTS")
        sock["EVENTS"].bind_all(self._dispatch)
        guard = pyuv.Timer(self._m.loop)
        guard.start(lambda h: self._m.loop.stop(), 10.0, 0.0)
        self._m.loop.run()
        guard.close()
        if not ready:
            raise RuntimeError("no subscription_success on EVENTS within 10 s")
        self._socket = sock

    def _dispatch(self, event, data):
        for ev, cb in list(self._subs):
            if ev == event or ev == ".":
                cb(event, data)

    def subscribe(self, event, cb):
        self._ensure()
        self._subs.append((event, cb))

    def unsubscribe(self, event, cb):
        if (event, cb) in self._subs:
            self._subs.remove((event, cb))

    def close(self):
        if self._socket is not None:
            self._socket.close()
            self._socket = None


class _State(object):
    def __init__(self, info):
        self.numprocesses = info.get("max_processes")
        self.running = list(info.get("processes", []))[:info.get("running", 0) - info.get("running_out", 0)]
        self.running_out = [None] * info.get("running_out", 0)


_MANAGERS = []


class Manager(object):
    """Stand-in for gaffer.manager.Manager backed by a gafferd process."""

    def __init__(self, loop=None, **kwargs):
        _MANAGERS.append(self)
        self.loop = loop or pyuv.Loop.default_loop()
        self.events = _Events(self)
        self.running = _Running()
        self._proc = None
        self._tmp = None

    def start(self, apps=None):
        bind = "127.0.0.1:%d" % PORT
        self._tmp = tempfile.mkdtemp(prefix="gafferd-py")
        bindir = self._bindir = os.path.join(self._tmp, "bin")
        os.mkdir(bindir)
        # the 0.5.2 test programs start with #!/usr/bin/env python
        os.symlink(sys.executable, os.path.join(bindir, "python"))
        ini = os.path.join(self._tmp, "gaffer.ini")
        with open(ini, "w") as f:
            f.write("[gaffer]\nhttp_endpoints = public\n\n[endpoint:public]\nbind = %s\n" % bind)
        env = dict(os.environ, PATH=bindir + ":" + os.environ.get("PATH", ""))
        log = open(os.path.join(self._tmp, "gafferd.log"), "w")
        self._proc = subprocess.Popen(
            [os.environ["GAFFERD_BIN"], "-c", ini, "--data-dir",
             os.path.join(self._tmp, "data")], stdout=log, stderr=log, env=env)
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen("http://%s/ping" % bind, timeout=2):
                    return
            except Exception:
                if self._proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("gafferd did not answer /ping; log in %s" % log.name)
                time.sleep(0.02)

    def stop(self, callback=None):
        self.events.close()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        if callback is not None:
            callback(self)

    def run(self):
        # Stop the loop after a while in case some handle stays active.
        guard = pyuv.Timer(self.loop)
        guard.start(lambda h: self.loop.stop(), 20.0, 0.0)
        guard.unref()
        self.loop.run()
        guard.close()
        self.stop()

    def load(self, config, sessionid=None, env=None, start=True):
        body = config.to_dict()
        body["start"] = start
        if env:
            body["env"] = env
        if not body.get("env") and not body.get("os_env"):
            # The 0.5.2 test programs start with "#!/usr/bin/env python" and
            # a job's environment is empty by default (in 0.5.2 too); Debian
            # 12 has no "python": give the job a PATH where it is python3.
            body["env"] = {"PATH": self._bindir + ":/usr/bin:/bin"}
        _api("POST", "/jobs/%s" % (sessionid or "default"), body)

    def unload(self, name, sessionid=None):
        sid, name = _split(name, sessionid)
        _api("DELETE", "/jobs/%s/%s" % (sid, name))

    def scale(self, name, n):
        sid, name = _split(name)
        return _api("POST", "/jobs/%s/%s/numprocesses" % (sid, name), {"scale": n})

    def jobs(self, sessionid=None):
        if sessionid:
            return _api("GET", "/jobs/%s" % sessionid)["jobs"]
        return _api("GET", "/jobs")["jobs"]

    def pids(self, name=None):
        if name:
            sid, name = _split(name)
            return _api("GET", "/jobs/%s/%s/pids" % (sid, name))["pids"]
        return _api("GET", "/pids")["pids"]

    @property
    def sessions(self):
        return _api("GET", "/sessions")["sessions"]

    def _get_locked_state(self, name):
        sid, name = _split(name)
        return _State(_api("GET", "/jobs/%s/%s" % (sid, name)))


def _register():
    mgr = types.ModuleType("gaffer.manager")
    mgr.Manager = Manager
    sys.modules["gaffer.manager"] = mgr
    gd = types.ModuleType("gaffer.gafferd")
    gd.__path__ = []
    sys.modules["gaffer.gafferd"] = gd
    http = types.ModuleType("gaffer.gafferd.http")
    http.HttpHandler = HttpHandler
    sys.modules["gaffer.gafferd.http"] = http
    sys.modules["gaffer"].Manager = Manager


_register()


@atexit.register
def _stop_all():
    while _MANAGERS:
        _MANAGERS.pop().stop()


def pytest_runtest_teardown(item, nextitem):
    """Stop the gafferd of a test that failed before its own m.stop()."""
    _stop_all()


def pytest_collection_modifyitems(session, config, items):
    """Point every test module's fixed TEST_PORT at the port we were given."""
    for item in items:
        mod = item.module
        if getattr(mod, "TEST_PORT", None) == PORT:
            continue
        mod.TEST_PORT = PORT
        host = getattr(mod, "TEST_HOST", "127.0.0.1")
        if hasattr(mod, "TEST_URI"):
            mod.TEST_URI = "%s:%s" % (host, PORT)
        if hasattr(mod, "TEST_URL"):
            mod.TEST_URL = mod.TEST_URL.rsplit(":", 1)[0] + ":%d/%s" % (
                PORT, mod.TEST_URL.split("/", 3)[3])
