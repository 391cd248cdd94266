"""Navmesh path queries: playmill vs pynavmesh (PyPI ``pynavmesh``, ``import pathfinder``) vs networkx A*.

Meshes: zig-zag corridor grids (1 m cells, 1 cell thick walls leaving a gap alternately at the right and left
end) of 1,922 and 18,794 triangles, and, when the sandbox is importable, the walkable area of a city seed.
Queries: the 20 longest of 200 seeded random pairs ("far pairs"), the same for every finder; playmill is also
timed on 500 random pairs. Latency includes snapping, the search and string pulling (the full path); each
query is timed 3 times (best kept, garbage collector off, as timeit does) for every finder alike.

Columns: build time; query latency p50/p99 (ms); path length relative to pynavmesh on the same pairs
(playmill / pynavmesh: <= 1.001 is the target; < 1 means shorter); inside: every path sampled every 5 cm lies
on the mesh. networkx A* runs on the polygon adjacency graph (centroid distances, Euclidean heuristic) and
returns polygons only: no snapping, no string pulling, so its latency is a lower bound for a full query.

    python bench/navmesh.py --quick      # < 1 min on 2 cores (skips the 18,794-triangle pynavmesh build)
    python bench/navmesh.py              # full sizes (pynavmesh's 18,794-triangle build takes ~2 min)

The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unreal_bridge.navmesh import (  # noqa: E402
    ZIGZAG_LARGE,
    ZIGZAG_SMALL,
    NavMesh,
    load_walkable,
    recast_to_unreal,
    unreal_to_recast,
    zigzag_grid,
)


def timed(fn, repeats: int):
    """``(result, wall seconds, cpu seconds)``: the best of ``repeats`` runs (timeit-style: the garbage
    collector is off and the minimum is kept, so a query preempted by another process on this shared
    machine does not count). CPU time is this process's (``time.process_time``)."""
    best, best_cpu, out = math.inf, math.inf, None
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            out = fn()
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    finally:
        if gc_was:
            gc.enable()
    return out, best, best_cpu


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    a = np.asarray(seconds) * 1e3
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


def polyline_length(points: np.ndarray) -> float:
    return float(np.sum(np.linalg.norm(np.diff(points, axis=0), axis=1))) if len(points) > 1 else 0.0


def far_pairs(mesh: NavMesh, n_pool: int, n_far: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n_far`` longest (by playmill path length) of ``n_pool`` seeded random pairs on the largest island."""
    pts, _ = mesh.random_points(2 * n_pool, seed, island=mesh.largest_island())
    a, b = pts[:n_pool], pts[n_pool:]
    lengths = np.array([mesh.find_path(p, q).length_cm for p, q in zip(a, b)])
    idx = np.argsort(-lengths)[:n_far]
    return a[idx], b[idx]


# ------------------------------------------------------------------------------------------------ peers
def build_pynavmesh(mesh: NavMesh):
    """pynavmesh in its own Y-up frame (Unreal2Recast), polygons reversed to the winding it expects; built
    in a thread with a large stack because its island labelling recurses once per polygon."""
    import pathfinder

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * mesh.num_polys + 10_000))
    verts = [tuple(v) for v in unreal_to_recast(mesh.vertices_cm).tolist()]
    polys = [mesh.poly_verts[i, : mesh.poly_nverts[i]].tolist()[::-1] for i in range(mesh.num_polys)]
    out: dict = {}

    def run() -> None:
        t = time.perf_counter()
        out["pf"] = pathfinder.PathFinder(verts, polys)
        out["t"] = time.perf_counter() - t

    old = threading.stack_size(512 * 1024 * 1024)
    th = threading.Thread(target=run)
    th.start()
    th.join()
    threading.stack_size(old)
    return out["pf"], out["t"]


def query_pynavmesh(pf, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    path = pf.search_path(tuple(unreal_to_recast(a).tolist()), tuple(unreal_to_recast(b).tolist()))
    return recast_to_unreal(np.asarray(path, dtype=np.float64)) if path else np.zeros((0, 3))


def build_networkx(mesh: NavMesh):
    import networkx as nx

    t = time.perf_counter()
    g = nx.Graph()
    c = mesh.centroids_cm
    for a, b in mesh._portal_pairs.tolist():
        g.add_edge(a, b, weight=float(np.linalg.norm(c[a] - c[b])))
    return g, time.perf_counter() - t


def query_networkx(g, mesh: NavMesh, pa: int, pb: int) -> list[int]:
    import networkx as nx

    c = mesh.centroids_cm

    def h(u, v):
        return math.dist(c[u], c[v])

    return nx.astar_path(g, pa, pb, heuristic=h, weight="weight")


# ------------------------------------------------------------------------------------------------ runs
def bench_mesh(name: str, mesh_factory, args, run_pynavmesh: bool, note: str = "") -> dict:
    mesh, build_s, build_cpu_s = timed(mesh_factory, 1)
    n_far = args.pairs
    a, b = far_pairs(mesh, args.pool, n_far, seed=1)
    row: dict = {"mesh": name, "polys": mesh.num_polys, "corners": mesh.corners.num_corners if mesh.corners else 0,
                 "build_s": build_s, "build_cpu_s": build_cpu_s, "note": note}

    # playmill (default method) on the far pairs, then on many random pairs
    times, cpu, lengths, inside = [], [], [], True
    for p, q in zip(a, b):
        r, dt, dc = timed(lambda: mesh.find_path(p, q), args.repeats)
        times.append(dt)
        cpu.append(dc)
        assert r.status == "complete", r.reason
        lengths.append(r.length_cm)
        inside &= mesh.path_inside(r.points_cm, step_cm=5.0)
    row["p50_ms"], row["p99_ms"] = percentiles_ms(times)
    row["p50_cpu_ms"], row["p99_cpu_ms"] = percentiles_ms(cpu)
    row["inside"] = bool(inside)
    rnd, _ = mesh.random_points(2 * args.random, 7, island=mesh.largest_island())
    rt = []
    for p, q in zip(rnd[: args.random], rnd[args.random :]):
        rt.append(timed(lambda: mesh.find_path(p, q), args.repeats)[1])
    row["random_p50_ms"], row["random_p99_ms"] = percentiles_ms(rt)

    # playmill, Detour-style corridor search (A* over edge midpoints + funnel), for reference
    ct, clen = [], []
    for p, q in zip(a[: args.corridor_pairs], b[: args.corridor_pairs]):
        r, dt, _ = timed(lambda: mesh.find_path(p, q, method="corridor"), 1)
        ct.append(dt)
        clen.append(r.length_cm / max(lengths[len(clen)], 1e-9))
    row["corridor_p50_ms"], row["corridor_p99_ms"] = percentiles_ms(ct)
    row["corridor_len_vs_exact_max"] = float(max(clen))

    # networkx A* on the polygon graph (polygon path only)
    g, row["networkx_build_s"] = build_networkx(mesh)
    pa = [mesh.nearest_poly(p).poly for p in a]
    pb = [mesh.nearest_poly(q).poly for q in b]
    nt = []
    for x, y in zip(pa, pb):
        nt.append(timed(lambda: query_networkx(g, mesh, x, y), args.repeats)[1])
    row["networkx_p50_ms"], row["networkx_p99_ms"] = percentiles_ms(nt)

    # pynavmesh
    if run_pynavmesh:
        pf, row["pynavmesh_build_s"] = build_pynavmesh(mesh)
        pt, pc, ratio, pin = [], [], [], True
        n_q = n_far if args.pynavmesh_pairs is None else min(n_far, args.pynavmesh_pairs)
        for i in range(n_q):
            path, dt, dc = timed(lambda: query_pynavmesh(pf, a[i], b[i]), args.repeats)
            pt.append(dt)
            pc.append(dc)
            if len(path) == 0:
                continue
            ratio.append(lengths[i] / polyline_length(path))
            pin &= mesh.path_inside(path, step_cm=5.0)
        row["pynavmesh_p50_ms"], row["pynavmesh_p99_ms"] = percentiles_ms(pt)
        row["pynavmesh_p50_cpu_ms"] = percentiles_ms(pc)[0]
        row["pynavmesh_queries"] = n_q
        row["len_ratio_max"] = float(max(ratio))
        row["len_ratio_mean"] = float(np.mean(ratio))
        row["pynavmesh_inside"] = bool(pin)
        row["speedup_p50"] = row["pynavmesh_p50_ms"] / row["p50_ms"]
        row["speedup_p50_cpu"] = row["pynavmesh_p50_cpu_ms"] / row["p50_cpu_ms"]
    return row


def sandbox_city(seed: int):
    """The sandbox's walkable export of a city seed, or ``(None, reason)``."""
    try:
        from unreal_bridge.sandbox import SandboxWorld
    except Exception as exc:  # the sandbox is optional here (Panda3D, work in progress)
        return None, f"sandbox not importable: {type(exc).__name__}: {exc}"
    try:
        world = SandboxWorld("city", width=64, height=64)
        world.reset(seed)
        with tempfile.TemporaryDirectory() as d:
            path = world.export_walkable(Path(d) / "walkable.json")
            text = path.read_text()
        world.close()
    except Exception as exc:
        return None, f"sandbox export failed: {type(exc).__name__}: {exc}"
    data = json.loads(text)
    return (lambda: load_walkable(data)), f"sandbox city seed {seed}"


def fmt(x, spec=".2f") -> str:
    return "-" if x is None else format(x, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="< 1 min: skip pynavmesh on the 18,794-triangle mesh")
    ap.add_argument("--pairs", type=int, default=20)
    ap.add_argument("--pool", type=int, default=200)
    ap.add_argument("--random", type=int, default=None)
    ap.add_argument("--city-seed", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3, help="time each query this many times, keep the best")
    args = ap.parse_args()
    args.random = args.random or (200 if args.quick else 500)
    args.corridor_pairs = 5 if args.quick else args.pairs
    args.pynavmesh_pairs = None
    t0 = time.perf_counter()
    rows = []
    notes = []
    small = lambda: NavMesh(*zigzag_grid(**ZIGZAG_SMALL), name="zigzag")  # noqa: E731
    large = lambda: NavMesh(*zigzag_grid(**ZIGZAG_LARGE), name="zigzag")  # noqa: E731
    rows.append(bench_mesh("zigzag 1,922 tris", small, args, run_pynavmesh=True))
    rows.append(bench_mesh("zigzag 18,794 tris", large, args, run_pynavmesh=not args.quick))
    if args.quick:
        notes.append("--quick: pynavmesh skipped on 18,794 triangles (its build takes ~131 s); run without --quick")
    city, why = sandbox_city(args.city_seed)
    if city is None:
        notes.append(f"city row skipped: {why}")
    else:
        rows.append(bench_mesh(f"city seed {args.city_seed}", city, args, run_pynavmesh=not args.quick, note=why))
        if args.quick:
            notes.append("--quick: pynavmesh skipped on the city mesh")

    print(f"navmesh bench ({'quick' if args.quick else 'full'}); far pairs: the {args.pairs} longest of {args.pool} random pairs")
    head = (f"{'mesh':<20} {'polys':>6} {'build s':>8} {'cpu s':>6} {'p50 ms':>7} {'p99 ms':>7} {'cpu p99':>7} {'rnd p99':>7} {'inside':>6} "
            f"{'corr p50':>8} {'nx p50':>7} {'pyn build':>9} {'pyn p50':>8} {'speedup':>8} {'len/pyn max':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['mesh']:<20} {r['polys']:>6} {r['build_s']:>8.3f} {r['build_cpu_s']:>6.3f} {r['p50_ms']:>7.3f} {r['p99_ms']:>7.3f} {r['p99_cpu_ms']:>7.3f} "
              f"{r['random_p99_ms']:>7.3f} {str(r['inside']):>6} {r['corridor_p50_ms']:>8.2f} {r['networkx_p50_ms']:>7.2f} "
              f"{fmt(r.get('pynavmesh_build_s')):>9} {fmt(r.get('pynavmesh_p50_ms')):>8} {fmt(r.get('speedup_p50'), '.0f'):>8} "
              f"{fmt(r.get('len_ratio_max'), '.5f'):>11}")
    print()
    print(f"p50/p99: playmill find_path (snap + exact shortest path + polygons) on the far pairs; rnd p99: {args.random} random pairs;")
    print("corr: playmill's Detour-style A* + funnel; nx: networkx A* polygon path only; pyn: pynavmesh search_path;")
    print("speedup: pynavmesh p50 / playmill p50 (wall); len/pyn: playmill length / pynavmesh length on the same pairs;")
    print("cpu s / cpu p99: the same figures in this process's CPU time (robust to other load on a shared machine).")
    for r in rows:
        if "len_ratio_max" in r:
            print(f"  {r['mesh']}: corridor/exact length max {r['corridor_len_vs_exact_max']:.4f}; "
                  f"pynavmesh paths inside: {r['pynavmesh_inside']}; mean len ratio {r['len_ratio_mean']:.4f}")
    for n in notes:
        print("note:", n)
    main_row = next((r for r in rows if r["mesh"].startswith("zigzag 18") and "speedup_p50" in r), None)
    ratio_row = main_row or rows[0]
    summary = {
        "bench": "navmesh",
        "quick": args.quick,
        "p50_ms": rows[1]["p50_ms"],
        "p99_ms": rows[1]["p99_ms"],
        "build_s": rows[1]["build_s"],
        "build_cpu_s": rows[1]["build_cpu_s"],
        "p99_cpu_ms": rows[1]["p99_cpu_ms"],
        "speedup_vs_pynavmesh": ratio_row.get("speedup_p50"),
        "speedup_vs_pynavmesh_cpu": ratio_row.get("speedup_p50_cpu"),
        "speedup_mesh": ratio_row["mesh"],
        "max_len_ratio_vs_pynavmesh": max(r.get("len_ratio_max", 0.0) for r in rows),
        "all_inside": all(r["inside"] for r in rows),
        "rows": rows,
        "notes": notes,
        "wall_s": time.perf_counter() - t0,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
