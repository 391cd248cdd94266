"""``eval.html``: one self-contained page for an evaluation report (:func:`playmill.evaluation.run_eval`).

Sections: the summary table (baselines and each model: mouse and keyboard accuracy with kappa, yaw error,
PSNR/SSIM, flicker, warp error), PSNR and SSIM over time (drift) for each model under the recorded actions and
the frozen first frame, per-action-class accuracy bars, scene-consistency loops, and side-by-side strips of the
recording and each model's video. Plots are matplotlib PNGs embedded as base64.
"""

from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np


def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return html.escape(str(v))


def _curves(results: list[Mapping[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    if not results:
        return None
    r = results[0]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    series = {f"{m}: recorded actions": v.get("recorded", {}).get("fidelity") for m, v in r.get("models", {}).items()}
    series["frozen first frame"] = r.get("baselines", {}).get("frozen_first_frame", {}).get("fidelity")
    for name, fid in series.items():
        if not fid:
            continue
        p = [x if x is not None else np.nan for x in fid.get("psnr_curve", [])]
        axes[0].plot(range(len(p)), p, label=name)
        axes[1].plot(range(len(fid.get("ssim_curve", []))), fid.get("ssim_curve", []), label=name)
    axes[0].set_title(f"PSNR against the recording ({r.get('episode')})")
    axes[0].set_xlabel("frame")
    axes[0].set_ylabel("dB")
    axes[1].set_title("SSIM against the recording")
    axes[1].set_xlabel("frame")
    axes[0].legend(fontsize=7)
    return _png(fig)


def _class_bars(results: list[Mapping[str, Any]]) -> str | None:
    import matplotlib.pyplot as plt

    rows: dict[str, dict[str, list[float]]] = {}

    def add(name: str, per_class: Mapping[str, float] | None) -> None:
        for c, v in (per_class or {}).items():
            rows.setdefault(name, {}).setdefault(c, []).append(v)

    for r in results:
        add("recording", r.get("baselines", {}).get("recording", {}).get("controllability", {}).get("per_class"))
        for m, v in r.get("models", {}).items():
            add(f"{m}: recorded", v.get("recorded", {}).get("controllability", {}).get("per_class"))
            if v.get("scripts_mean"):
                add(f"{m}: scripts", v["scripts_mean"].get("per_class"))
    if not rows:
        return None
    classes = sorted({c for d in rows.values() for c in d})
    fig, ax = plt.subplots(figsize=(10, 3.2))
    width = 0.8 / len(rows)
    for i, (name, d) in enumerate(rows.items()):
        ax.bar(np.arange(len(classes)) + i * width, [np.mean(d.get(c, [np.nan])) for c in classes], width, label=name)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2)
    ax.set_xticklabels(classes, rotation=30)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of frames moving the commanded way")
    ax.legend(fontsize=7)
    return _png(fig)


def _strip(videos: Mapping[str, np.ndarray], columns: int) -> str | None:
    import cv2

    if not videos:
        return None
    n = min(len(v) for v in videos.values())
    picks = np.linspace(0, n - 1, min(columns, n)).round().astype(int)
    rows = []
    for label, v in videos.items():
        row = np.concatenate([v[i] for i in picks], axis=1).copy()
        cv2.putText(row, label, (3, 11), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 0), 1, cv2.LINE_AA)
        rows.append(row)
    img = np.concatenate(rows, axis=0)
    scale = max(1, 720 // img.shape[1])
    img = cv2.resize(img, (img.shape[1] * scale, img.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return "data:image/png;base64," + base64.b64encode(buf.tobytes()).decode() if ok else None


def write_eval_html(report: Mapping[str, Any], strips: Mapping[str, np.ndarray], path: str | os.PathLike,
                    columns: int = 8) -> Path:
    """Write the page for ``report`` (the eval.json object) with ``strips`` ({label: frames}) and return its path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    results = list(report.get("results", []))
    cols = ["mouse_acc", "mouse_kappa", "keyboard_acc", "keyboard_kappa", "yaw_mae_deg", "coverage", "psnr_db", "ssim",
            "flicker", "warp_error"]
    table = "".join(f"<tr><td>{html.escape(name)}</td>" + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in cols)
                    + "</tr>" for name, row in report.get("summary", {}).items())
    loops = ""
    for r in results:
        for m, v in r.get("models", {}).items():
            for lp in v.get("loops", []):
                loops += (f"<tr><td>{html.escape(r.get('episode', ''))}</td><td>{html.escape(m)}</td><td>{lp['kind']}</td>"
                          f"<td>{lp['length']}</td><td>{_fmt(lp.get('psnr_db'))}</td><td>{_fmt(lp.get('ssim'))}</td>"
                          f"<td>{_fmt(lp.get('world_psnr_db'))}</td><td>{_fmt(lp.get('world_ssim'))}</td></tr>")
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>playmill evaluation</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:1150px}img{max-width:100%}td,th{padding:2px 8px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}table{border-collapse:collapse}"
        "tr:nth-child(even){background:#f3f3f3}</style></head><body>",
        "<h1>Evaluation on held-out test episodes</h1>",
        f"<p>models: {html.escape(', '.join(report.get('models', [])))}; episodes: "
        f"{html.escape(', '.join(report.get('episodes', [])))}</p>",
        "<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in report.get("notes", [])) + "</ul>",
        "<h2>Summary</h2><table><tr><th>video</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>" + table + "</table>",
    ]
    for title, src in (("Fidelity over time (drift)", _curves(results)), ("Per action class", _class_bars(results)),
                       ("Side by side (recorded actions)", _strip(strips, columns))):
        if src:
            parts.append(f"<h2>{title}</h2><img src='{src}'>")
    if loops:
        parts.append("<h2>Scene consistency: back at the start pose after a loop</h2><table><tr><th>episode</th><th>model"
                     "</th><th>loop</th><th>frames</th><th>PSNR end vs start</th><th>SSIM</th><th>world replay PSNR</th>"
                     "<th>world SSIM</th></tr>" + loops + "</table>")
    parts.append("</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path
