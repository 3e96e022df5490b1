"""Drive gafferd with the original gaffer 0.5.2 Python client.

Usage: client_check.py URL   (GAFFER_PY_SRC / GAFFER_PY_PATH as in gaffer052.py)

Each check prints one JSON line {"check", "ok", "detail"}: ok is whether
gafferd answered as gaffer 0.5.2 does (or as the reference's Recommended
behaviour where 0.5.2 has a bug; the detail says which). The Go test
cmd/gafferd/pyclient_test.go turns the lines into subtests.
"""

import json
import os
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gaffer052  # noqa: E402

gaffer052.load()

import pyuv  # noqa: E402
from gaffer.httpclient import (Server, Job, Process, GafferNotFound,  # noqa: E402
                               GafferConflict)
from gaffer.process import ProcessConfig  # noqa: E402

URL = sys.argv[1]
PROG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "echo_prog.py")
loop = pyuv.Loop.default_loop()
s = Server(URL, loop=loop)
failed = 0


def report(name, ok, detail=""):
    global failed
    if not ok:
        failed += 1
    print(json.dumps({"check": name, "ok": bool(ok), "detail": detail}), flush=True)


def check(name):
    """Decorator: run the check now; an exception or a False return fails it."""
    def wrap(fn):
        try:
            res = fn()
            if res is None or res is True:
                report(name, True)
            else:
                report(name, False, str(res))
        except AssertionError as e:
            report(name, False, "assertion: %s" % (e,))
        except Exception as e:  # noqa: BLE001 - any error is a failed check
            report(name, False, "%s: %s\n%s" % (type(e).__name__, e,
                                              traceback.format_exc(limit=4)))
        return fn
    return wrap


def wait_for(what, cond, timeout=10.0):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(0.02)
    raise AssertionError("timed out after %.0fs waiting for %s (last %r)" % (timeout, what, last))


def run_loop_until(cond, timeout=10.0):
    """Runs the pyuv loop (websocket traffic) until cond() or timeout."""
    t = pyuv.Timer(loop)
    deadline = time.time() + timeout

    def tick(h):
        if cond() or time.time() > deadline:
            loop.stop()
    t.start(tick, 0.01, 0.01)
    loop.run()
    t.close()
    return cond()


def config(name, **kw):
    env = kw.pop("env", {})
    return ProcessConfig(name, sys.executable, args=["-u", PROG], env=env, **kw)


# ---------------------------------------------------------------- basics

@check("version")
def _():
    assert s.version == "0.5.2", s.version


@check("ping")
def _():
    assert s.ping() is True


@check("empty listings")
def _():
    assert s.jobs() == [], s.jobs()
    assert s.sessions() == [], s.sessions()
    assert s.pids() == [], s.pids()


# ---------------------------------------------------------------- a job

@check("load start=False")
def _():
    job = s.load(config("w"), start=False)
    assert isinstance(job, Job)
    assert s.jobs() == ["default.w"], s.jobs()
    assert s.sessions() == ["default"], s.sessions()
    assert job.active is False
    assert job.running == 0
    assert job.numprocesses == 1
    assert job.pids == []


@check("load twice is GafferConflict (409)")
def _():
    try:
        s.load(config("w"), start=False)
    except GafferConflict:
        return
    return "no conflict"


@check("get_job, job_exists (HEAD), config round trip")
def _():
    job = s.get_job("w")
    assert job.config["cmd"] == sys.executable, job.config.to_dict()
    assert job.config["args"] == ["-u", PROG], job.config.to_dict()
    assert s.job_exists("w") is True
    assert s.job_exists("nope") is False


@check("job.start, state, info")
def _():
    job = s.get_job("default.w")
    job.start()
    wait_for("a running process", lambda: job.running == 1)
    assert job.active is True
    info = job.info()
    for k in ("name", "active", "running", "running_out", "max_processes",
              "processes", "config"):
        assert k in info, "job info lacks %s: %s" % (k, info)
    assert info["name"] == "default.w"
    assert info["running_out"] == 0
    assert job.pids == info["processes"], (job.pids, info["processes"])


@check("process info fields")
def _():
    pid = s.get_job("w").pids[0]
    p = s.get_process(pid)
    assert isinstance(p, Process)
    want = ["pid", "name", "cmd", "args", "env", "uid", "gid", "os_pid",
            "create_time", "commited", "redirect_output", "redirect_input",
            "custom_streams", "active"]
    miss = [k for k in want if k not in p.info]
    assert not miss, "missing %s in %s" % (miss, p.info)
    assert p.pid == pid and p.name == "default.w"
    assert p.commited is False
    assert isinstance(p.os_pid, int)
    assert isinstance(p.create_time, float), type(p.create_time)
    assert p.active is True


@check("process stats (5 fields)")
def _():
    p = s.get_process(s.get_job("w").pids[0])
    st = p.stats
    miss = [k for k in ("mem_info1", "mem_info2", "cpu", "mem", "ctime") if k not in st]
    assert not miss, "missing %s in %s" % (miss, st)


@check("job stats shape")
def _():
    st = s.get_job("w").stats()
    for k in ("name", "stats", "mem", "max_mem", "min_mem", "cpu", "max_cpu", "min_cpu"):
        assert k in st, "job stats lack %s: %s" % (k, st)
    assert st["name"] == "default.w"
    assert len(st["stats"]) == 1 and "pid" in st["stats"][0] and "os_pid" in st["stats"][0], st


@check("scale +2 / -2")
def _():
    job = s.get_job("w")
    assert job.scale(2) == 3
    wait_for("3 processes", lambda: job.running == 3)
    assert job.numprocesses == 3
    assert job.scale(-2) == 1
    wait_for("1 process", lambda: len(job.pids) == 1)
    assert job.numprocesses == 1


@check("process.kill by name and number (202)")
def _():
    p = s.get_process(s.get_job("w").pids[0])
    assert p.kill("HUP") is True
    assert p.kill(signal.SIGHUP) is True


@check("job.kill (0.5.2 BUG: always 404; Recommended 202)")
def _():
    assert s.get_job("w").kill("HUP") is True


@check("unknown pid / session / job are GafferNotFound (404)")
def _():
    for fn in (lambda: s.get_process(9999), lambda: s.jobs("nosession"),
               lambda: s.get_job("nojob")):
        try:
            fn()
        except GafferNotFound:
            continue
        return "no GafferNotFound"


# ---------------------------------------------------------------- issue 14

def _gone_at_once(job, old, what):
    """Problems if the pids in old are still listed right after `what`."""
    problems = []
    listed = [p for p in old if p in s.pids()]
    if listed:
        problems.append("%s: pids %s still in GET /pids right after" % (what, listed))
    listed = [p for p in old if p in job.pids]
    if listed:
        problems.append("%s: pids %s still in the job's pids right after" % (what, listed))
    for p in old:
        try:
            s.get_process(p)
            problems.append("%s: GET /%d still 200 right after" % (what, p))
        except GafferNotFound:
            pass
    return problems


STOPPING = {}


@check("DELETE /<pid>: the pid leaves /pids, job pids and /<pid> at once")
def _():
    s.load(config("slow", env={"TERM_DELAY": "3"}, graceful_timeout=10))
    job = s.get_job("slow")
    wait_for("slow to run", lambda: job.running == 1)
    time.sleep(0.3)  # let the program install its SIGTERM handler
    old = job.pids[0]
    s.get_process(old).stop()
    t0 = time.time()
    # No waiting: in 0.5.2 stop_process drops the process from the running
    # list before it even sends SIGTERM.
    problems = _gone_at_once(job, [old], "DELETE /%d" % old)
    new = wait_for("a replacement", lambda: [p for p in job.pids if p != old], timeout=8)
    STOPPING["replacement_after"] = time.time() - t0
    s.unload("slow")
    return "; ".join(problems) or None


@check("DELETE /<pid>: replacement spawned at once (issue 14; 0.5.2 spawns it on the old one's exit)")
def _():
    took = STOPPING.get("replacement_after")
    assert took is not None, "previous check did not get that far"
    if took > 1.5:
        return "replacement spawned %.1fs after DELETE, when the old process exited (it takes 3s)" % took


@check("scale down / stop / reload / unload: stopping pids leave GET /pids and GET /<pid> at once; the target survives stop/start")
def _():
    job = s.load(config("st", env={"TERM_DELAY": "2"}, graceful_timeout=10, numprocesses=3))
    wait_for("3 processes", lambda: job.running == 3)
    time.sleep(0.3)
    problems = []
    before = job.pids
    job.scale(-2)
    problems += _gone_at_once(job, before[:2], "scale(-2)")
    before = job.pids
    job.stop()
    problems += _gone_at_once(job, before, "job.stop()")
    # gafferd keeps the target across stop and start (0.5.2 set it to 0 on
    # stop and back to the config's on start, discarding the scaling; the
    # README says which): after scale(-2) of 3, it is 1.
    if job.numprocesses != 1:
        problems.append("job.stop(): max_processes %r, gafferd keeps the target (1)" % job.numprocesses)
    wait_for("st to be empty", lambda: not [p for p in s.pids() if p in before], timeout=8)
    job.start()
    if job.numprocesses != 1:
        problems.append("job.start() after scale(-2): max_processes %r, gafferd keeps the scaled target (1)" % job.numprocesses)
    wait_for("st to run", lambda: job.running == job.numprocesses and job.running > 0)
    time.sleep(0.3)
    before = job.pids
    job.restart()
    problems += _gone_at_once(job, before, "job.restart()")
    after = job.pids
    if not after or set(after) & set(before):
        problems.append("job.restart(): new pids %s right after (old %s)" % (after, before))
    time.sleep(0.3)
    before = job.pids
    s.unload("st")
    listed = [p for p in before if p in s.pids()]
    if listed:
        problems.append("unload: pids %s still in GET /pids right after" % listed)
    return "; ".join(problems) or None


@check("start:false numprocesses:0, commit, scale 1 spawns (test_job_commit)")
def _():
    job = s.load(config("c", numprocesses=0), start=False)
    problems = []
    assert job.active is False and job.numprocesses == 0 and job.running == 0 and job.running_out == 0
    c = job.commit()
    assert isinstance(c, int), c
    if c not in s.pids():
        problems.append("committed pid %d not in GET /pids %s" % (c, s.pids()))
    others = [p for p in s.pids() if p != c]
    if not (job.active is True and job.numprocesses == 0 and job.running == 1 and job.running_out == 1):
        problems.append("after commit: %s" % job.info())
    pinfo = s.get_process(c).info
    if pinfo.get("commited") is not True:
        problems.append("GET /%d commited=%r" % (c, pinfo.get("commited")))
    n = job.scale(1)
    if n != 1:
        problems.append("scale(1) answered %r" % n)
    # 0.5.2 spawns before answering the scale (test_job_commit asserts
    # s.pids() == [1, 2] at once); allow a little more here.
    mine = lambda: [p for p in s.pids() if p not in others]
    try:
        wait_for("a spawned process besides the committed one", lambda: len(mine()) == 2, timeout=5)
    except AssertionError:
        problems.append("scale(1) spawned nothing within 5s: job pids %s, info %s" % (mine(), job.info()))
    s.unload("c")
    return "; ".join(problems) or None


@check("job pids list the committed pid (issue 14; 0.5.2 code excludes it)")
def _():
    job = s.load(config("c2", numprocesses=1))
    wait_for("c2 to run", lambda: job.running == 1)
    c = job.commit()
    pids = job.pids
    info = job.info()
    s.unload("c2")
    assert c in info["processes"], info
    assert c in pids, "job.pids %s lacks committed %d (info.processes %s)" % (pids, c, info["processes"])


# ---------------------------------------------------------------- lifecycle

@check("job.stop / job.start / job.restart / s.reload")
def _():
    job = s.get_job("w")
    job.stop()
    wait_for("w to stop", lambda: job.running == 0)
    assert job.active is False
    job.start()
    wait_for("w to run", lambda: job.running == 1)
    before = job.pids
    job.restart()
    wait_for("new pids after restart", lambda: job.pids and job.pids != before and job.running == 1)
    before = job.pids
    assert s.reload("w") is True
    wait_for("new pids after reload", lambda: job.pids and job.pids != before and job.running == 1)


@check("load force=True on an existing job (PUT) updates it")
def _():
    s.load(config("w", numprocesses=2, env={"X": "1"}), force=True)
    job = s.get_job("w")
    assert job.config["env"] == {"X": "1"}, job.config.to_dict()
    wait_for("2 processes", lambda: job.running == 2)


# ---------------------------------------------------------------- channels

def _socket():
    sock = s.socket()
    sock.start()
    return sock


@check("channel: SUB EVENTS delivers load/start/spawn for a new job")
def _():
    sock = _socket()
    got = []
    ready = []
    sock.bind("subscription_success", lambda ev, msg: ready.append(msg))
    sock.subscribe("EVENTS")
    sock["EVENTS"].bind_all(lambda ev, data: got.append((ev, data)))
    run_loop_until(lambda: ready, 10)
    assert ready, "no subscription_success"
    s.load(config("ev"))
    run_loop_until(lambda: any(e == "spawn" for e, _ in got), 10)
    sock.close()
    s.unload("ev")
    names = [e for e, _ in got]
    for want in ("load", "start", "spawn"):
        assert want in names, "event %s not delivered; got %s" % (want, names)
    spawn = [d for e, d in got if e == "spawn"][0]
    assert spawn.get("name") == "default.ev" and "pid" in spawn, spawn


@check("channel: STATS:<pid> delivers stat events with pid and os_pid")
def _():
    pid = s.get_job("w").pids[0]
    sock = _socket()
    got = []
    sock.subscribe("STATS:%d" % pid)
    sock["STATS:%d" % pid].bind_all(lambda ev, data: got.append((ev, data)))
    run_loop_until(lambda: got, 10)
    sock.close()
    assert got, "no stats"
    ev, d = got[0]
    miss = [k for k in ("mem_info1", "mem_info2", "cpu", "mem", "ctime", "pid", "os_pid") if k not in d]
    assert ev == "stat" and not miss, (ev, d)


@check("channel: CMD jobs / info / pids / scale / process_info / unknown")
def _():
    sock = _socket()
    cmds = {
        "jobs": sock.send_command("jobs"),
        "info": sock.send_command("info", "default.w"),
        "pids": sock.send_command("pids"),
        "scale": sock.send_command("scale", "default.w", 1),
        "pinfo": sock.send_command("process_info", s.pids()[0]),
        "bad": sock.send_command("no_such_command"),
    }
    run_loop_until(lambda: all(c.done() for c in cmds.values()), 10)
    sock.close()
    problems = []
    if cmds["jobs"].result() != {"jobs": s.jobs()}:
        problems.append("jobs -> %r" % cmds["jobs"].result())
    r = cmds["info"].result() or {}
    if "info" not in r or r["info"].get("name") != "default.w":
        problems.append("info -> %r / %r" % (r, cmds["info"].error()))
    if "pids" not in (cmds["pids"].result() or {}):
        problems.append("pids -> %r" % cmds["pids"].result())
    if (cmds["scale"].result() or {}).get("numprocesses") != 3:
        problems.append("scale -> %r / %r" % (cmds["scale"].result(), cmds["scale"].error()))
    if "info" not in (cmds["pinfo"].result() or {}):
        problems.append("process_info -> %r / %r" % (cmds["pinfo"].result(), cmds["pinfo"].error()))
    err = cmds["bad"].error()
    if not (err and err.get("errno") == 404 and err.get("reason") == "command_not_found"):
        problems.append("unknown command -> error %r result %r" % (err, cmds["bad"].result()))
    s.get_job("w").scale(-1)
    return "; ".join(problems) or None


@check("pid channel (IOChannel): write stdin, read stdout, OK response")
def _():
    s.load(config("io", redirect_input=True, redirect_output=["stdout"]))
    job = s.get_job("io")
    wait_for("io to run", lambda: job.running == 1)
    p = s.get_process(job.pids[0])
    ch = p.socket()
    ch.start()
    out = []
    resp = []
    ch.start_read(lambda c, data: out.append(data))
    ch.write(b"hello\n", lambda c, result, error: resp.append((result, error)))
    run_loop_until(lambda: resp and b"ECHO:hello" in b"".join(out), 10)
    ch.close()
    s.unload("io")
    assert resp == [(b"OK", None)], resp
    assert b"ECHO:hello" in b"".join(out), out


@check("pid channel on an unknown pid: error frame gaffer_error not_found")
def _():
    # On Python 3 the 0.5.2 IOChannel compares the frame id (bytes) with
    # "gaffer_error" (str), so its on_error callback never fires: read the
    # frames it receives instead.
    from gaffer.httpclient.websocket import IOChannel
    from gaffer.message import decode_frame
    ch = IOChannel(loop, URL.replace("http", "ws", 1) + "/9999/channel?mode=3")
    frames = []
    ch.on_message = lambda raw: frames.append(decode_frame(raw))
    ch.start()
    run_loop_until(lambda: frames, 10)
    ch.close()
    assert frames, "no frame"
    f = frames[0]
    assert (f.type, f.id) == (b"error", b"gaffer_error"), (f.type, f.id, f.body)
    assert json.loads(f.body.decode()) == {"error": "not_found", "errno": 404}, f.body


@check("channel: JOB:<job> events without prefix, STREAM:<pid> output")
def _():
    job = s.load(config("tp", redirect_output=["stdout"]), start=False)
    sock = _socket()
    jev, out, ready = [], [], []
    sock.bind("subscription_success", lambda ev, msg: ready.append(msg))
    sock.subscribe("JOB:default.tp")
    sock["JOB:default.tp"].bind_all(lambda ev, data: jev.append(ev))
    run_loop_until(lambda: ready, 10)
    job.start()
    pid = wait_for("tp to run", lambda: job.pids)[0]
    time.sleep(0.5)  # SIGHUP before the program's handler is installed kills it
    sock.subscribe("STREAM:%d" % pid)
    sock["STREAM:%d" % pid].bind_all(lambda ev, data: out.append(data))
    run_loop_until(lambda: len(ready) >= 2, 10)
    s.get_process(pid).kill("HUP")
    run_loop_until(lambda: "start" in jev and "spawn" in jev and
                   "HUP" in "".join(d.get("data", "") for d in out), 10)
    sock.close()
    s.unload("tp")
    problems = []
    if not ("start" in jev and "spawn" in jev):
        problems.append("JOB: events %s (want start, spawn)" % jev)
    text = "".join(d.get("data", "") for d in out)
    if "HUP" not in text:
        problems.append("STREAM: got %r" % out)
    elif not all(d.get("pid") == pid and d.get("name") == "default.tp" for d in out):
        problems.append("STREAM: payload %r" % out[0])
    return "; ".join(problems) or None


@check("channel: CMD commit / send / kill / stop_process")
def _():
    job = s.load(config("cm", redirect_input=True, redirect_output=["stdout"],
                        env={"TERM_DELAY": "2"}, graceful_timeout=10))
    pid = wait_for("cm to run", lambda: job.pids)[0]
    time.sleep(0.5)  # SIGHUP before the program's handler is installed kills it
    sock = _socket()
    cmds = {
        "commit": sock.send_command("commit", "default.cm"),
        "send": sock.send_command("send", pid, "hi\n"),
        "kill": sock.send_command("kill", pid, "HUP"),
    }
    run_loop_until(lambda: all(c.done() for c in cmds.values()), 10)
    stop = sock.send_command("stop_process", pid)
    run_loop_until(lambda: stop.done(), 10)
    sock.close()
    problems = []
    r = cmds["commit"].result() or {}
    if not (r.get("ok") is True and isinstance(r.get("pid"), int)):
        problems.append("commit -> %r / %r" % (r, cmds["commit"].error()))
    for k in ("send", "kill"):
        if cmds[k].result() != {"ok": True}:
            problems.append("%s -> %r / %r" % (k, cmds[k].result(), cmds[k].error()))
    if stop.result() != {"ok": True}:
        problems.append("stop_process -> %r / %r" % (stop.result(), stop.error()))
    elif pid in s.pids():
        problems.append("stop_process: pid %d still in GET /pids right after" % pid)
    s.unload("cm")
    return "; ".join(problems) or None


# ---------------------------------------------------------------- cleanup

@check("unload")
def _():
    s.unload("w")
    assert s.jobs() == [], s.jobs()
    try:
        s.get_job("w")
        return "job still there"
    except GafferNotFound:
        pass


print(json.dumps({"done": True, "failed": failed}), flush=True)
