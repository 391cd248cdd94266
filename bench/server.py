"""The sandbox UnrealCV server under load: 50 clients x 100 requests over loopback with the real ``unrealcv`` client.

Each scenario starts ``playmill sandbox serve`` (level indoor_2, camera 160x120) in its own
process and drives it from this process with PyPI's ``unrealcv.Client``, one client per thread. Every client
sends the same mix of requests: set and read camera 0's location and rotation, the level name, and every 10th
request a PNG render (``vget /camera/0/lit png``). A request counts as answered when its reply is the expected
one (the location it set, the level's name, a PNG).

Scenarios, on the same requests in the same run:

1. ``concurrent``: the 50 clients connect together and send their requests at once. Three hostile connections
   are open beside them: an idle client (connected, silent), a stalled one (a frame header promising
   1,000 bytes, then nothing: the server drops it after ``io_timeout_s``, 30 s) and one that sends a 1 MiB request
   (answered ``error``, its connection kept).
2. ``sequential`` (peer): one client sends all the requests one after the other: the per-request cost
   without contention, and the throughput the world thread allows.
3. ``one_at_a_time`` (peer: the behaviour before issue 15): the server serves one client at a time (``--max-clients 1``);
   the others are turned away with an error and retry every 50 ms until admitted.

Per scenario: requests answered, wall time, throughput, request latency p50 / p99 / max (ms; from sending a
request to its reply, on an open connection), the wait for the first reply (from when a client starts: connect,
wait for a turn, first request) p50 / max, and the server process's RSS once its level is built (``VmRSS``, before
any client) and its peak (``VmHWM``): the difference is what the clients cost. The machine is
shared and has 2 cores: compare the scenarios of one run.

    python bench/server.py --quick      # 50 clients x 100 requests (~15 s on 2 cores)
    python bench/server.py              # 200 clients x 100 requests

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import unrealcv  # noqa: E402  (the real PyPI client)

unrealcv.print = lambda *a, **k: None  # the client prints "=>Info: using ip-port socket" at every connect

from unreal_bridge.unrealcv_server import MAGIC, encode_frame  # noqa: E402

LEVEL = "indoor_2"


@dataclass
class Outcome:
    """What one scenario measured."""

    name: str
    clients: int
    requests: int
    answered: int = 0
    wrong: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    first_reply_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    peak_rss_mb: float = 0.0
    start_rss_mb: float = 0.0
    refusals: int = 0
    hostile: dict[str, str] = field(default_factory=dict)

    def figures(self) -> dict:
        lat = np.asarray(self.latencies_s) * 1000.0
        q = (lambda p: float(np.percentile(lat, p))) if lat.size else (lambda p: float("nan"))
        first = np.asarray(self.first_reply_s) * 1000.0
        return {"clients": self.clients, "requests": self.requests, "answered": self.answered,
                "wall_s": round(self.wall_s, 3), "req_per_s": round(self.answered / self.wall_s, 1),
                "p50_ms": round(q(50), 3), "p99_ms": round(q(99), 3), "max_ms": round(q(100), 3),
                "first_reply_p50_ms": round(float(np.median(first)), 2) if first.size else None,
                "first_reply_max_ms": round(float(first.max()), 2) if first.size else None,
                "peak_rss_mb": round(self.peak_rss_mb, 1), "start_rss_mb": round(self.start_rss_mb, 1),
                "refusals": self.refusals, **self.hostile}


class Server:
    """The server in its own process; its port and peak RSS."""

    def __init__(self, *extra: str) -> None:
        cmd = [sys.executable, "-m", "playmill", "sandbox", "serve", "--port", "0", "--scene", "indoor", "--seed",
               "2", "--width", "160", "--height", "120", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m is None:
            self.proc.kill()
            raise RuntimeError(f"the server did not start: {line!r}")
        self.port = int(m.group(1))
        self.start_rss_mb = self._status_mb("VmRSS")  # the process once its level is built, before any client

    def _status_mb(self, key: str) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"{key}:\s+(\d+) kB", text).group(1)) / 1024.0

    def peak_rss_mb(self) -> float:
        return self._status_mb("VmHWM")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def plan(client: int, n: int) -> list[tuple[str, object]]:
    """Client ``client``'s requests and what each reply must be (a string, or "png")."""
    out: list[tuple[str, object]] = []
    for k in range(n):
        x, yaw = 100.0 + client, float((client * 7 + k) % 360)
        kind = k % 10
        if kind == 9:
            out.append(("vget /camera/0/lit png", "png"))
        elif kind in (0, 4):
            out.append((f"vset /camera/0/location {x:.1f} {k:.1f} 170", "ok"))
        elif kind in (1, 5):
            out.append(("vget /camera/0/location", "location"))
        elif kind in (2, 6):
            out.append((f"vset /camera/0/rotation 0 {yaw:.1f} 0", "ok"))
        elif kind in (3, 7):
            out.append(("vget /camera/0/rotation", "rotation"))
        else:
            out.append(("vget /level/name", LEVEL))
    return out


def _ok(reply: object, want: object) -> bool:
    if want == "png":
        return isinstance(reply, bytes) and reply[:8] == b"\x89PNG\r\n\x1a\n"
    if want in ("location", "rotation"):  # camera 0 is shared: any three numbers (another client may have set it)
        return isinstance(reply, str) and len(reply.split()) == 3 and not reply.startswith("error")
    return reply == want


def connect(port: int, retry_s: float | None = None) -> tuple[unrealcv.Client, int]:
    """A connected real client (retrying every ``retry_s`` while the server turns it away); and the refusals."""
    refusals = 0
    while True:
        c = unrealcv.Client(("127.0.0.1", port))
        ok = c.connect(timeout=5)
        if ok:
            return c, refusals
        refusals += 1
        if retry_s is None:
            raise RuntimeError(f"the server at port {port} refused the connection")
        time.sleep(retry_s)


def run_clients(port: int, clients: int, per_client: int, retry_s: float | None, out: Outcome) -> None:
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)

    def one(i: int) -> None:
        reqs = plan(i, per_client)
        lats, answered, wrong, first = [], 0, [], 0.0
        start.wait()
        t_start = time.perf_counter()
        c, refused = connect(port, retry_s)
        try:
            for k, (cmd, want) in enumerate(reqs):
                t0 = time.perf_counter()
                reply = c.request(cmd, timeout=120)
                t1 = time.perf_counter()
                lats.append(t1 - t0)
                if k == 0:
                    first = t1 - t_start
                if _ok(reply, want):
                    answered += 1
                else:
                    wrong.append(f"client {i} {cmd!r} -> {str(reply)[:60]!r}")
        finally:
            c.disconnect()
        with lock:
            out.latencies_s += lats
            out.first_reply_s.append(first)
            out.answered += answered
            out.wrong += wrong
            out.refusals += refused

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    out.wall_s = time.perf_counter() - t0


def hostile_clients(port: int) -> tuple[list[socket.socket], dict[str, str]]:
    """An idle client, a stalled one (a header promising 1,000 bytes, then nothing) and a 1 MiB request; the
    sockets (kept open during the run) and what the server answered the big request."""
    def greet(s: socket.socket) -> None:
        hdr = s.recv(8, socket.MSG_WAITALL)
        s.recv(struct.unpack("<II", hdr)[1], socket.MSG_WAITALL)

    socks = []
    for _ in range(3):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        greet(s)
        socks.append(s)
    socks[1].sendall(struct.pack("<II", MAGIC, 1000))  # stalled mid-frame
    socks[2].sendall(encode_frame(b"1:vget /level/name " + b"x" * (1 << 20)))
    size = struct.unpack("<II", socks[2].recv(8, socket.MSG_WAITALL))[1]
    reply = socks[2].recv(size, socket.MSG_WAITALL).decode()
    return socks, {"oversized_request_reply": reply}


def scenario_concurrent(clients: int, per: int) -> Outcome:
    out = Outcome("concurrent", clients, clients * per)
    srv = Server("--max-clients", str(clients + 8))
    try:
        socks, info = hostile_clients(srv.port)
        run_clients(srv.port, clients, per, None, out)
        out.hostile = info
        out.peak_rss_mb, out.start_rss_mb = srv.peak_rss_mb(), srv.start_rss_mb
        for s in socks:
            s.close()
    finally:
        srv.close()
    return out


def scenario_sequential(clients: int, per: int) -> Outcome:
    out = Outcome("sequential", 1, clients * per)
    srv = Server()
    try:
        c, _ = connect(srv.port)
        t0 = time.perf_counter()
        for i in range(clients):
            for cmd, want in plan(i, per):
                t = time.perf_counter()
                reply = c.request(cmd, timeout=120)
                out.latencies_s.append(time.perf_counter() - t)
                if _ok(reply, want):
                    out.answered += 1
                else:
                    out.wrong.append(f"{cmd!r} -> {str(reply)[:60]!r}")
        out.wall_s = time.perf_counter() - t0
        c.disconnect()
        out.peak_rss_mb, out.start_rss_mb = srv.peak_rss_mb(), srv.start_rss_mb
    finally:
        srv.close()
    return out


def scenario_one_at_a_time(clients: int, per: int) -> Outcome:
    out = Outcome("one_at_a_time", clients, clients * per)
    srv = Server("--max-clients", "1")
    try:
        run_clients(srv.port, clients, per, 0.05, out)
        out.peak_rss_mb, out.start_rss_mb = srv.peak_rss_mb(), srv.start_rss_mb
    finally:
        srv.close()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="50 clients x 100 requests (under a minute)")
    ap.add_argument("--clients", type=int, help="clients (default 200; --quick 50)")
    ap.add_argument("--requests", type=int, default=100, help="requests per client (default 100)")
    args = ap.parse_args(argv)
    args.clients = args.clients or (50 if args.quick else 200)
    per = args.requests
    logging.getLogger("unrealcv").setLevel(logging.CRITICAL)  # refused connects are expected in scenario 3
    logging.disable(logging.ERROR)
    results = [scenario_concurrent(args.clients, per), scenario_sequential(args.clients, per),
               scenario_one_at_a_time(args.clients, per)]
    print(f"UnrealCV sandbox server, {args.clients} clients x {per} requests over loopback (real unrealcv client; "
          f"{os.cpu_count()} CPUs, shared machine)\n")
    print(f"{'scenario':<15}{'answered':>14}{'wall s':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>10}{'max ms':>10}"
          f"{'1st reply p50/max ms':>22}{'RSS MB start/peak':>19}{'refused':>9}")
    for r in results:
        f = r.figures()
        fr = "-" if f["first_reply_p50_ms"] is None else f"{f['first_reply_p50_ms']:.0f} / {f['first_reply_max_ms']:.0f}"
        rss = f"{f['start_rss_mb']:.0f} / {f['peak_rss_mb']:.0f}"
        print(f"{r.name:<15}{f'{r.answered}/{r.requests}':>14}{f['wall_s']:>9.2f}{f['req_per_s']:>9.0f}"
              f"{f['p50_ms']:>9.2f}{f['p99_ms']:>10.1f}{f['max_ms']:>10.1f}{fr:>22}{rss:>19}"
              f"{r.refusals:>9}")
        for w in r.wrong[:5]:
            print(f"  WRONG {w}")
    conc, seq, old = results
    print(f"\nconcurrent: the 1 MiB request was answered {conc.hostile['oversized_request_reply']!r}; an idle and a "
          f"stalled connection (dropped by the server after io_timeout_s = 30 s) were open beside the {args.clients} "
          "clients")
    summary = {
        "bench": "server", "clients": args.clients, "requests_per_client": per,
        "all_answered": all(r.answered == r.requests for r in results),
        **{f"{r.name}_{k}": v for r in results for k, v in r.figures().items()
           if k in ("answered", "wall_s", "req_per_s", "p50_ms", "p99_ms", "max_ms", "first_reply_p50_ms",
                    "first_reply_max_ms", "peak_rss_mb", "start_rss_mb") and v is not None},
        "throughput_concurrent_vs_sequential": round(conc.answered / conc.wall_s / (seq.answered / seq.wall_s), 3),
        "first_reply_max_one_at_a_time_vs_concurrent": round(old.figures()["first_reply_max_ms"]
                                                             / conc.figures()["first_reply_max_ms"], 1),
        "oversized_request_reply": conc.hostile["oversized_request_reply"],
    }
    print(json.dumps(summary))
    return 0 if summary["all_answered"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
