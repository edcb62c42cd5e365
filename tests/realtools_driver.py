"""Runs inside ``fakesysfs run`` for tests/test_real_tools.py: executes steps in order and
records, per step, what the tool printed and which stores the daemon received meanwhile.

    python realtools_driver.py STEPS.json RESULTS.json TRACE.jsonl

A step is one of:
- ``{"sh": "shell command"}`` or ``{"run": [argv...]}``, optionally with ``"env"`` (added) and
  ``"unset"`` (names removed): result ``rc``, ``out``, ``err`` and ``stores`` (the trace
  records the daemon wrote while the step ran: it writes each one before the store returns);
- ``{"probe": [paths...]}``: result ``paths`` mapping each path to ``{"type": "file",
  "text": ...}``, ``{"type": "link", "target": ...}``, ``{"type": "dir", "names": [...]}``,
  ``{"type": "chr", "rdev": "MAJ:MIN"}`` or ``{"type": "missing"}`` (``lstat``, never
  following the final link);
- ``{"write": path, "data": latin-1 text}``: one ``open(O_WRONLY|O_TRUNC)`` + ``write``,
  result ``count`` or ``errno`` (the errno name), as a C tool would store.

Plain Python with no fakesysfs import: it only sees the namespace, as a tool does.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys


def trace_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def probe(path: str) -> dict[str, object]:
    try:
        st = os.lstat(path)
    except OSError as exc:
        return {"type": "missing", "errno": errno.errorcode.get(exc.errno, str(exc.errno))}
    if stat.S_ISLNK(st.st_mode):
        return {"type": "link", "target": os.readlink(path)}
    if stat.S_ISDIR(st.st_mode):
        return {"type": "dir", "names": sorted(os.listdir(path))}
    if stat.S_ISCHR(st.st_mode):
        return {"type": "chr", "rdev": f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"}
    try:
        with open(path, encoding="latin-1") as f:
            return {"type": "file", "text": f.read()}
    except OSError as exc:
        return {"type": "file", "errno": errno.errorcode.get(exc.errno, str(exc.errno))}


def store(path: str, data: str) -> dict[str, object]:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    except OSError as exc:
        return {"errno": errno.errorcode.get(exc.errno, str(exc.errno)), "at": "open"}
    try:
        return {"count": os.write(fd, data.encode("latin-1"))}
    except OSError as exc:
        return {"errno": errno.errorcode.get(exc.errno, str(exc.errno)), "at": "write"}
    finally:
        os.close(fd)


def run_step(step: dict[str, object]) -> dict[str, object]:
    if "probe" in step:
        return {"paths": {p: probe(p) for p in step["probe"]}}  # type: ignore[union-attr]
    if "write" in step:
        return store(str(step["write"]), str(step["data"]))
    env = dict(os.environ)
    env.update(step.get("env", {}))  # type: ignore[arg-type]
    for name in step.get("unset", []):  # type: ignore[union-attr]
        env.pop(name, None)
    argv = ["sh", "-c", step["sh"]] if "sh" in step else list(step["run"])  # type: ignore[arg-type]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, errors="replace", timeout=120, check=False)
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr}


def main(argv: list[str]) -> int:
    steps_file, results_file, trace_file = argv[1:4]
    with open(steps_file, encoding="utf-8") as f:
        steps = json.load(f)
    results = []
    for step in steps:
        before = len(trace_lines(trace_file))
        result = run_step(step)
        result["stores"] = [json.loads(line) for line in trace_lines(trace_file)[before:]]
        results.append(result)
    with open(results_file, "w", encoding="utf-8") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
