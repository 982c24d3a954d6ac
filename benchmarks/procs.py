"""Processes and ports the benchmarks share: a free loopback port, waiting for a listener or a
logged URL (each wait bounded by a deadline), reading a child's stderr, stopping children."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import time
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_tcp(port: int, deadline: float, proc: subprocess.Popen[Any]) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port} in time")


def read_lines(stream: Any, sink: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        sink.put(line.rstrip("\n"))


def wait_url(proc: subprocess.Popen[Any], lines: queue.Queue[str], deadline: float, what: str) -> str:
    """The `http://127.0.0.1:PORT/mcp` a `serve --transport http` child logs on stderr (read into
    `lines` by read_lines); RuntimeError with its last lines if it exits or the deadline passes."""
    seen: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            raise RuntimeError(f"{what} did not start:\n" + "\n".join(seen[-10:]))
        try:
            line = lines.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        seen.append(line)
        match = re.search(r"at (http://127\.0\.0\.1:\d+/mcp)", line)
        if match:
            return match.group(1)


def stop_all(procs: list[subprocess.Popen[Any]]) -> None:
    """Terminate the processes newest first (servers before the sandbox they call), each given 10 s
    before it is killed: a benchmark never leaves a process behind nor waits without a bound."""
    for proc in reversed(procs):
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
