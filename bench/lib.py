"""Helpers shared by the bench scripts' own Python helpers (each script writes its helper to its
work directory and runs it with this directory on PYTHONPATH): free ports, the `ready` line a
Sekisho process prints, JSON fields, writing the result table, and the command dispatch."""

import json
import socket
import sys


def port():
    # a free TCP port on 127.0.0.1 (bound, read, released)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])
    s.close()


def ready(path, key):
    # `key` of the first JSON line with "event": "ready" in the file at `path` (exit 1 if absent)
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("event") == "ready":
                x = v.get(key)
                if x is None:
                    sys.exit(1)
                print(x)
                return
    sys.exit(1)


def field(key):
    # a top-level field of the JSON object on stdin (exit 1 if absent)
    v = json.load(sys.stdin)
    x = v.get(key)
    if x is None:
        sys.exit(1)
    print(x)


def write_table(lines, out):
    # the Markdown result: to the file `out` and to stdout
    text = "\n".join(lines) + "\n"
    with open(out, "w") as f:
        f.write(text)
    sys.stdout.write(text)


def main(commands):
    # `helper.py COMMAND ARGS…` runs the function COMMAND of the calling helper
    cmd, args = sys.argv[1], sys.argv[2:]
    commands[cmd](*args)
