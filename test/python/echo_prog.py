"""The job program of client_check.py.

Prints READY, then "ECHO:<line>" for each stdin line (when stdin is a
pipe). SIGHUP prints HUP. SIGTERM prints TERM and exits after
$TERM_DELAY seconds, so a test can tell "stopping" from "exited".
"""
import os
import signal
import sys
import time


def on_hup(signum, frame):
    print("HUP", flush=True)


def on_term(signum, frame):
    print("TERM", flush=True)
    time.sleep(float(os.environ.get("TERM_DELAY", "0")))
    sys.exit(0)


signal.signal(signal.SIGHUP, on_hup)
signal.signal(signal.SIGTERM, on_term)
print("READY", flush=True)
try:
    for line in sys.stdin:
        print("ECHO:" + line.rstrip("\n"), flush=True)
except (OSError, ValueError):
    pass
while True:
    time.sleep(3600)
