"""``write_report(dir)``: one self-contained report.html for a shards folder.

Plots (matplotlib, PNG, embedded as base64): key press rates, mouse d_pitch/d_yaw histograms, speed
histogram, rejects by stage, hours by source; a table of the most frequent reject reasons; preview strips
(JPEG thumbnails of a few frames) of clips spread over the dataset; and the :func:`inspect_shards` summary.
Action-label check (:mod:`curation.consistency`): scatter plots of labelled against visual yaw and pitch rates,
the histogram of the clips' best lags, per-source scores and each failed episode's diagnosis.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from curation.schema import REJECTS_FILE
from curation.shards import inspect_shards, read_manifest

REPORT_FILE = "report.html"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _bar(labels, values, title: str, ylabel: str) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3))
    ax.bar([str(x) for x in labels], values, color="#4878a8")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.tick_params(axis="x", rotation=30)
    return _png(fig)


def _hist(h: dict, title: str, xlabel: str) -> str | None:
    import matplotlib.pyplot as plt

    if not h or not h.get("counts"):
        return None
    edges = np.asarray(h["edges"])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.stairs(h["counts"], edges, fill=True, color="#6a9f58")
    ax.set_yscale("symlog")
    ax.set_title(title + (" (sampled)" if h.get("sampled") else ""))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("frames")
    return _png(fig)


def _strips(d: Path, m: dict[str, Any], clips: int, frames_per_strip: int) -> list[tuple[str, str]]:
    """``(caption, data URL)`` of JPEG strips of ``clips`` clips spread over the dataset."""
    import cv2

    from curation.reader import ShardDataset

    ds = ShardDataset(d)
    if len(ds) == 0:
        return []
    out = []
    for i in np.unique(np.linspace(0, len(ds) - 1, min(clips, len(ds))).round().astype(int)):
        item = ds[int(i)]
        fr = item["frames"].permute(0, 2, 3, 1).numpy()
        pick = np.unique(np.linspace(0, len(fr) - 1, frames_per_strip).round().astype(int))
        th_h = 90
        th_w = max(1, int(round(fr.shape[2] * th_h / fr.shape[1])))
        strip = np.hstack([cv2.resize(fr[j], (th_w, th_h), interpolation=cv2.INTER_AREA) for j in pick])
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(strip, cv2.COLOR_RGB2BGR), [int(cv2.IMWRITE_JPEG_QUALITY), 80])
        if ok:
            keys = item["keyboard"].numpy().mean(axis=0)
            pressed = ", ".join(f"{k} {v:.0%}" for k, v in zip(m["action_space"]["keys"], keys) if v > 0)
            cap = (f"{item['clip_id']} ({item['source']}/{item['scene']}): frames {pick.tolist()}; "
                   f"keys held {pressed or 'none'}; yaw {item['mouse'][:, 1].sum():.1f} deg")
            out.append((cap, "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode()))
    return out


def _consistency_section(d: Path, m: dict[str, Any]) -> list[str]:
    """HTML of the action-label check: scatter, lag histogram, per-source scores, failed episodes."""
    import matplotlib.pyplot as plt
    import pyarrow.parquet as pq

    c = m.get("consistency") or {}
    if not c.get("episodes"):
        return []
    parts = ["<h2>Action labels against the video</h2>"]
    imgs = []
    sp = d / (c.get("file") or "consistency.parquet")
    if sp.is_file():
        t = pq.read_table(sp).to_pandas()
        if len(t):
            fig, axes = plt.subplots(1, 2, figsize=(9, 4))
            for ax, axis in zip(axes, ("yaw", "pitch")):
                for src, g in t.groupby("source"):
                    ax.scatter(g[f"label_{axis}"], g[f"visual_{axis}"], s=4, alpha=0.5, label=src)
                lim = float(np.nanmax(np.abs(t[[f"label_{axis}", f"visual_{axis}"]].to_numpy()))) or 1.0
                ax.plot([-lim, lim], [-lim, lim], color="grey", lw=0.8)
                ax.set_xlabel(f"labelled d_{axis} (deg/frame)")
                ax.set_ylabel(f"visual d_{axis} (deg/frame)")
                ax.set_title(f"{axis}: labels vs video (confident frames)")
            axes[0].legend(fontsize=7)
            fig.tight_layout()
            imgs.append(("labelled vs visual rotation", _png(fig)))
    lags: list[int] = []
    for s in m.get("shards", []):
        try:
            col = pq.read_table(d / s["file"], columns=["check_lag"]).column("check_lag").to_pylist()
        except Exception:  # shards curated without the check
            col = []
        lags += [int(x) for x in col if x is not None]
    lags += [int(e["scores"].get("lag") or 0) for e in c["episodes"].values()]
    if lags:
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.hist(lags, bins=np.arange(-6.5, 7.5, 1.0), color="#4878a8")
        ax.set_xlabel("best lag, frames (clips and episodes; 0 = aligned)")
        ax.set_ylabel("count")
        imgs.append(("lag histogram", _png(fig)))
    parts += [f"<figure><img src='{src}'><figcaption>{html.escape(t)}</figcaption></figure>" for t, src in imgs]
    rows = ""
    for src, v in (c.get("by_source") or {}).items():
        rows += (f"<tr><td>{html.escape(src)}</td><td>{v['episodes']}</td><td>{v['failed']}</td>"
                 f"<td>{html.escape(', '.join(f'{k} x{n}' for k, n in v['faults'].items()) or '-')}</td></tr>")
    ep_rows = ""
    for eid, e in sorted(c["episodes"].items()):
        s = e["scores"]

        def f(x):
            return "n/a" if x is None else f"{x:.2f}"

        verdict = "ok" if e["ok"] else "; ".join(f"{x['what']} (fix: {x['fix']})" for x in e["faults"])
        ep_rows += (f"<tr><td>{html.escape(eid)}</td><td>{f(s.get('yaw_r'))}</td><td>{f(s.get('pitch_r'))}</td>"
                    f"<td>{f(s.get('slope'))}</td><td>{s.get('lag')}</td><td>{f(s.get('fwd_agree'))}</td>"
                    f"<td>{f(s.get('side_agree'))}</td><td>{f(s.get('confident'))}</td><td>{html.escape(verdict)}</td></tr>")
    parts.append("<h3>Per source</h3><table><tr><th>source</th><th>episodes</th><th>failed</th><th>faults</th></tr>"
                 + rows + "</table>")
    parts.append("<h3>Per episode</h3><table><tr><th>episode</th><th>yaw r</th><th>pitch r</th><th>slope</th><th>lag</th>"
                 "<th>W/S agree</th><th>A/D agree</th><th>confident</th><th>verdict</th></tr>" + ep_rows + "</table>")
    return parts


def write_report(shards_dir: str | os.PathLike, *, preview_clips: int = 6, frames_per_strip: int = 8,
                 out: str | os.PathLike | None = None) -> Path:
    """Write ``report.html`` (or ``out``) for a shards folder and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import pyarrow.parquet as pq

    d = Path(shards_dir)
    m = read_manifest(d)
    st = m.get("stats", {})
    imgs: list[tuple[str, str | None]] = []
    kb = st.get("keyboard", {}).get("press_rate", {})
    if kb:
        imgs.append(("Key press rates", _bar(list(kb), list(kb.values()), "key press rate (share of frames)", "rate")))
    hists = st.get("mouse", {}).get("histograms", {})
    imgs.append(("Mouse d_pitch", _hist(hists.get("d_pitch", {}), "mouse d_pitch per frame", "degrees")))
    imgs.append(("Mouse d_yaw", _hist(hists.get("d_yaw", {}), "mouse d_yaw per frame", "degrees")))
    imgs.append(("Speed", _hist(st.get("speed", {}).get("histogram", {}), "signed forward ground speed", "cm/s")))
    hours = st.get("hours_by_source", {})
    if hours:
        imgs.append(("Hours by source", _bar(list(hours), list(hours.values()), "curated hours by source", "hours")))
    rej_frames = m.get("rejects", {}).get("frames_by_stage")
    rej_stage = m.get("rejects", {}).get("by_stage", {})
    if rej_frames:
        imgs.append(("Frames removed by stage", _bar(list(rej_frames), list(rej_frames.values()),
                                                     "source frames removed by stage", "frames")))
    elif rej_stage:
        imgs.append(("Rejects by stage", _bar(list(rej_stage), list(rej_stage.values()), "rejects by stage", "rows")))
    reasons_rows = ""
    rp = d / REJECTS_FILE
    if rp.is_file():
        from curation.schema import normalise_rejects

        rj = normalise_rejects(pq.read_table(rp)).to_pandas()
        if len(rj):
            rj["what"] = rj["reason"].map(lambda s: re.sub(r"[-\d.]+", "N", s)[:120])
            top = (rj.groupby(["stage", "what"]).agg(rows=("what", "size"), frames=("frames", "sum"))
                   .reset_index().sort_values("rows", ascending=False).head(20))
            reasons_rows = "".join(
                f"<tr><td>{html.escape(r.stage)}</td><td>{html.escape(r.what)}</td><td>{r.rows}</td>"
                f"<td>{r.frames}</td></tr>" for r in top.itertuples())
    strips = _strips(d, m, preview_clips, frames_per_strip)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>playmill shards report</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}img{max-width:100%}"
        "td,th{padding:2px 8px;text-align:left}table{border-collapse:collapse}"
        "tr:nth-child(even){background:#f3f3f3}figure{display:inline-block;margin:8px}</style></head><body>",
        f"<h1>Shards report: {html.escape(str(d))}</h1>",
        f"<pre>{html.escape(inspect_shards(d))}</pre>",
        "<h2>Distributions</h2>",
        *(f"<figure><img src='{src}' alt='{html.escape(t)}'><figcaption>{html.escape(t)}</figcaption></figure>"
          for t, src in imgs if src),
    ]
    if reasons_rows:
        parts += ["<h2>Most frequent reject reasons</h2><table><tr><th>stage</th><th>reason (numbers as N)</th>"
                  "<th>rows</th><th>frames</th></tr>", reasons_rows, "</table>"]
    parts += _consistency_section(d, m)
    if strips:
        parts.append("<h2>Preview strips</h2>")
        parts += [f"<figure><img src='{src}'><figcaption>{html.escape(cap)}</figcaption></figure><br>"
                  for cap, src in strips]
    parts.append("</body></html>")
    path = Path(out) if out else d / REPORT_FILE
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path
