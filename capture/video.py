"""H.264 video I/O through the ffmpeg command-line tool (no ffprobe needed).

* :func:`ffmpeg_exe` finds the binary: ``$PLAYMILL_FFMPEG``, else ``ffmpeg`` on ``PATH``, else the binary
  shipped by the ``imageio-ffmpeg`` wheel.
* :class:`VideoWriter` pipes raw RGB frames into ``libx264`` (``yuv420p``, constant frame rate,
  ``+faststart``).
* :func:`probe_video` reads width, height, nominal fps, codec and pixel format from ``ffmpeg -i`` and counts
  frames by stream-copying the packets into the ``framecrc`` muxer (fast: nothing is decoded).
* :func:`iter_frames` streams decoded RGB frames with their presentation timestamps, taken from the
  ``showinfo`` filter (``-fps_mode passthrough``: no frame is duplicated or dropped, so variable frame rate
  files give their real timestamps). :func:`read_video` loads a whole (short) video.

Commands are built with ffmpeg-python; file names are passed with the ``file:`` protocol prefix so names
that start with ``-`` or contain ``:`` are never read as options or protocols.
"""

from __future__ import annotations

import collections
import os
import queue
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import IO, Iterator, Literal

import numpy as np

#: x264 presets, fastest first.
X264_PRESETS: tuple[str, ...] = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
#: The type of a config key that names an x264 preset.
X264Preset = Literal[X264_PRESETS]
#: Default x264 preset of :class:`VideoWriter`. Measured encode-only at 640x352, one core (taskset), on
#: panning rendered-like content: ultrafast ~430-490 frames/s, superfast ~300, veryfast ~290-300, with files
#: about 4x smaller for veryfast (0.6 vs 2.3-2.5 Mbit/s at crf 18). veryfast costs ~3.4 ms a frame, which
#: leaves ~6.5 ms a frame for rendering and the CSV row within the 100 frames/s collection budget, for a
#: quarter of the disk and I/O of the faster presets. (Pure noise, the worst case: 270 / 80 / 60 frames/s.)
DEFAULT_PRESET = "veryfast"
#: Default constant rate factor (visually near-lossless for rendered gameplay).
DEFAULT_CRF = 18
#: Environment variable that names the ffmpeg binary to use.
FFMPEG_ENV = "PLAYMILL_FFMPEG"

_STDERR_TAIL_LINES = 20


class FFmpegNotFoundError(RuntimeError):
    """No working ffmpeg binary was found."""


class VideoError(RuntimeError):
    """A video could not be written, probed or decoded; the message names the file."""


# --------------------------------------------------------------------------------------------------------
# the ffmpeg binary


@lru_cache(maxsize=16)
def _version_text(exe: str) -> str | None:
    """Output of ``exe -version`` when it runs, exits 0 and is ffmpeg; else None (cached per path)."""
    try:
        res = subprocess.run(
            [exe, "-hide_banner", "-version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=30, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = res.stdout.decode("utf-8", "replace")
    return text if res.returncode == 0 and "ffmpeg" in text.lower() else None


def _runs(exe: str) -> bool:
    return _version_text(exe) is not None


_HOW_TO_FIX = (
    "install one of: `pip install imageio-ffmpeg` (ships an ffmpeg binary), or ffmpeg from your system "
    "package manager (e.g. `apt-get install ffmpeg`, `brew install ffmpeg`, `conda install ffmpeg`), "
    f"or set {FFMPEG_ENV}=/path/to/ffmpeg"
)


def ffmpeg_exe() -> str:
    """Path of a working ffmpeg binary.

    Order: the environment variable ``PLAYMILL_FFMPEG`` (when set it must work: a broken value is an error,
    never silently skipped), then ``ffmpeg`` on ``PATH``, then ``imageio_ffmpeg.get_ffmpeg_exe()``.
    Raises :class:`FFmpegNotFoundError` saying what to install or set.
    """
    env = os.environ.get(FFMPEG_ENV, "").strip()
    if env:
        exe = shutil.which(env) or env
        if _runs(exe):
            return exe
        raise FFmpegNotFoundError(
            f"{FFMPEG_ENV}={env!r} does not point to a working ffmpeg binary; fix or unset {FFMPEG_ENV}, or "
            + _HOW_TO_FIX.split(", or set")[0]
        )
    on_path = shutil.which("ffmpeg")
    if on_path and _runs(on_path):
        return on_path
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        bundled = None
    if bundled and _runs(bundled):
        return bundled
    raise FFmpegNotFoundError("no working ffmpeg binary found; " + _HOW_TO_FIX)


_VERSION_RE = re.compile(r"ffmpeg version n?(\d+)\.(\d+)")


def ffmpeg_version(exe: str) -> tuple[int, int]:
    """``(major, minor)`` of an ffmpeg binary; ``(99, 0)`` for builds without a release number (git builds)."""
    m = _VERSION_RE.search(_version_text(exe) or "")
    return (int(m.group(1)), int(m.group(2))) if m else (99, 0)


def _passthrough_args(exe: str) -> dict[str, object]:
    """Output options that pass every decoded frame through untouched (no duplicate, no drop, exact order),
    for this ffmpeg version: ``-fps_mode`` exists from 5.1 (``-vsync`` before), and the output time base
    must be the filter graph's so that close variable-rate timestamps do not collide."""
    major_minor = ffmpeg_version(exe)
    args: dict[str, object] = {"fps_mode": "passthrough"} if major_minor >= (5, 1) else {"vsync": "0"}
    args["enc_time_base"] = "filter" if major_minor >= (7, 0) else "-1"
    return args


def _file_arg(path: Path) -> str:
    """An ffmpeg URL for a local file that is never taken for an option or a protocol."""
    return "file:" + str(path)


def _tail(text: str, n: int = _STDERR_TAIL_LINES) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------------------------------------
# writing


def _fps_fraction(fps: float) -> Fraction:
    """Exact rational frame rate of ``fps`` (29.97002997... becomes 30000/1001)."""
    return Fraction(fps).limit_denominator(1001 * 1000)


class VideoWriter:
    """Encode uint8 RGB frames to an H.264 (libx264, yuv420p, constant frame rate) video file.

    ``width``/``height`` in pixels (positive, even: yuv420p subsamples chroma by 2), ``fps`` in frames per
    second (frame ``i`` has presentation time ``i / fps`` s), ``crf`` the x264 constant rate factor (0-51,
    lower = better), ``preset`` an x264 preset (:data:`X264_PRESETS`), ``threads`` the encoder and filter
    threads (1 = one core; collection runs one writer per worker). An existing file at ``path`` is replaced.

    Use as a context manager: leaving the block normally calls :meth:`close`, leaving it with an exception
    calls :meth:`abort` (ffmpeg killed, the partial file removed). ffmpeg's stderr goes to a temporary file,
    so a chatty ffmpeg can never block the pipe; the tail of it is in every :class:`VideoError`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        width: int,
        height: int,
        fps: float,
        crf: int = DEFAULT_CRF,
        preset: str = DEFAULT_PRESET,
        threads: int = 1,
    ) -> None:
        import ffmpeg  # ffmpeg-python, only used to build the command line

        self.path = Path(path)
        for name, v in (("width", width), ("height", height)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0:
                raise ValueError(f"VideoWriter {self.path}: {name} must be a positive int, got {v!r}")
            if v % 2:
                raise ValueError(f"VideoWriter {self.path}: {name} {v} must be even (yuv420p halves chroma)")
        if not isinstance(fps, (int, float, np.integer, np.floating)) or not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"VideoWriter {self.path}: fps must be a positive finite number, got {fps!r}")
        if not 0 <= int(crf) <= 51:
            raise ValueError(f"VideoWriter {self.path}: crf must be in 0..51, got {crf!r}")
        if preset not in X264_PRESETS:
            raise ValueError(f"VideoWriter {self.path}: unknown x264 preset {preset!r}; use one of {X264_PRESETS}")
        if int(threads) < 1:
            raise ValueError(f"VideoWriter {self.path}: threads must be >= 1, got {threads!r}")
        if not self.path.parent.is_dir():
            raise VideoError(f"cannot write video {self.path}: folder {self.path.parent} does not exist")

        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self._shape = (self.height, self.width, 3)
        self._frames = 0
        self._closed = False  # no more writes: closed, aborted or failed
        self._failed = False  # the file is not a finished video
        exe = ffmpeg_exe()
        rate = _fps_fraction(self.fps)
        rate_s = f"{rate.numerator}/{rate.denominator}"
        out_kwargs: dict[str, object] = dict(
            vcodec="libx264", pix_fmt="yuv420p", crf=int(crf), preset=preset, r=rate_s,
            threads=int(threads),
        )
        out_kwargs.update({"fps_mode": "cfr"} if ffmpeg_version(exe) >= (5, 1) else {"vsync": "cfr"})
        if self.path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            out_kwargs["movflags"] = "+faststart"
        cmd = (
            ffmpeg.input("pipe:", format="rawvideo", pix_fmt="rgb24", s=f"{self.width}x{self.height}",
                         framerate=rate_s)
            .output(_file_arg(self.path), **out_kwargs)
            .global_args("-hide_banner", "-nostats", "-loglevel", "error", "-filter_threads", str(int(threads)))
            .overwrite_output()
            .compile(cmd=exe)
        )
        self._stderr: IO[bytes] = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                          stderr=self._stderr, start_new_session=True)  # see iter_frames
        except OSError as e:
            self._stderr.close()
            raise VideoError(f"cannot start ffmpeg to write {self.path}: {e}") from e
        assert self._proc.stdin is not None
        self._stdin = self._proc.stdin
        _grow_pipe(self._stdin.fileno(), self.width * self.height * 3)

    # -- context manager
    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    @property
    def frames_written(self) -> int:
        """Number of frames accepted so far."""
        return self._frames

    def write(self, frame: np.ndarray) -> None:
        """Append one ``uint8[height, width, 3]`` RGB frame."""
        if self._closed:
            raise VideoError(f"VideoWriter {self.path}: write() after close()/abort()")
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != self._shape:
            got = (f"{type(frame).__name__}" if not isinstance(frame, np.ndarray)
                   else f"{frame.dtype}{list(frame.shape)}")
            raise ValueError(
                f"VideoWriter {self.path}: frame {self._frames} must be uint8[{self.height}, {self.width}, 3] "
                f"RGB, got {got}"
            )
        if not frame.flags.c_contiguous:
            frame = np.ascontiguousarray(frame)
        try:
            self._stdin.write(frame.data)
        except (BrokenPipeError, OSError) as e:
            msg = self._shutdown(kill=True)
            raise VideoError(f"ffmpeg stopped while writing {self.path} (frame {self._frames}): {e}"
                             + (f"\n{msg}" if msg else "")) from e
        self._frames += 1

    def close(self) -> None:
        """Finish the file: flush, wait for ffmpeg, raise :class:`VideoError` (with ffmpeg's stderr) on failure.

        A file with no frames is an error. On any error the partial file is removed.
        """
        if self._closed:
            return
        msg = self._shutdown(kill=False)
        rc = self._proc.returncode
        if rc != 0 or self._frames == 0:
            self._remove_file()
            why = "no frames were written" if self._frames == 0 and rc == 0 else f"ffmpeg exited with status {rc}"
            raise VideoError(f"cannot write video {self.path}: {why}" + (f"\n{msg}" if msg else ""))

    def abort(self) -> None:
        """Kill ffmpeg and remove the partial file. Safe to call more than once; after a successful
        :meth:`close` the finished file is kept."""
        if not self._closed:
            self._shutdown(kill=True)
        if self._failed:
            self._remove_file()

    # -- internals
    def _shutdown(self, kill: bool) -> str:
        """Stop ffmpeg (killed, or waited for after end of input); returns the tail of its stderr."""
        self._closed = True
        self._failed = kill
        if kill and self._proc.poll() is None:
            self._proc.kill()
        try:
            self._stdin.close()
        except (BrokenPipeError, OSError):
            pass
        self._proc.wait()
        try:
            self._stderr.seek(0)
            msg = _tail(self._stderr.read().decode("utf-8", "replace"))
        except (OSError, ValueError):
            msg = ""
        self._stderr.close()
        if kill:
            self._remove_file()
        return msg

    def _remove_file(self) -> None:
        self._failed = True
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


def _grow_pipe(fd: int, frame_bytes: int) -> None:
    """Best effort: enlarge a Linux pipe to one frame (up to the system limit) to cut context switches."""
    try:
        import fcntl

        set_sz = getattr(fcntl, "F_SETPIPE_SZ", 1031)
        try:
            limit = int(Path("/proc/sys/fs/pipe-max-size").read_text())
        except (OSError, ValueError):
            limit = 1 << 20
        fcntl.fcntl(fd, set_sz, min(frame_bytes, limit))
    except (ImportError, OSError):
        pass


# --------------------------------------------------------------------------------------------------------
# probing


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about the first video stream of a file.

    ``width``/``height`` in pixels; ``fps`` the stream's nominal frame rate in frames/s (exact when all
    packets have the same duration, else ffmpeg's average rate); ``frame_count`` the number of video packets
    (one per frame for H.264 in MP4); ``duration_s`` the span of the packets' presentation times plus the
    last packet's duration, in seconds; ``codec`` ffmpeg's codec name (``h264``); ``pix_fmt`` the pixel
    format (``yuv420p``).
    """

    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    codec: str
    pix_fmt: str


_STREAM_RE = re.compile(r"^\s*Stream #\d+:\d+\S*: Video: (.*)$")
_SIZE_RE = re.compile(r"^(\d+)x(\d+)(?:\s|$)")
_RATE_RE = re.compile(r"^([\d.]+)(k?) (fps|tbr)$")
_LEVEL_RE = re.compile(r"\[(error|fatal|panic)\] ")
_CONTEXT_RE = re.compile(r"\[[^\]]* @ 0x[0-9a-f]+\] ")


def _split_top(s: str) -> list[str]:
    """Split ffmpeg's stream description on commas that are not inside parentheses or brackets."""
    out, depth, cur = [], 0, []
    for ch in s:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return out


def _parse_stream_line(desc: str) -> tuple[str, str, int, int, float | None]:
    """``(codec, pix_fmt, width, height, fps or None)`` from the text after ``Video:``."""
    parts = _split_top(desc)
    codec = parts[0].split()[0] if parts and parts[0] else "unknown"
    pix_fmt, width, height, fps, tbr = "unknown", 0, 0, None, None
    if len(parts) > 1:
        pix_fmt = parts[1].split("(")[0].strip() or "unknown"
    for p in parts[1:]:
        m = _SIZE_RE.match(p)
        if m and not width:
            width, height = int(m.group(1)), int(m.group(2))
            continue
        m = _RATE_RE.match(p)
        if m:
            v = float(m.group(1)) * (1000.0 if m.group(2) else 1.0)
            if m.group(3) == "fps":
                fps = v
            else:
                tbr = v
    return codec, pix_fmt, width, height, fps if fps is not None else tbr


def _error_lines(stderr: str) -> list[str]:
    """ffmpeg log lines (``-loglevel level+...``) at error level or worse, without the level tag."""
    out: list[str] = []
    for ln in stderr.splitlines():
        if _LEVEL_RE.search(ln):
            msg = _CONTEXT_RE.sub("", _LEVEL_RE.sub("", ln)).strip()
            if msg and msg not in out:
                out.append(msg)
    return out


def _explain(errors: list[str]) -> str:
    """A short human reading of ffmpeg's error lines."""
    text = " ".join(errors).lower()
    if "moov atom not found" in text:
        return "not a valid MP4 (no index: truncated before it was finished, or not a video file)"
    if "partial file" in text or "truncat" in text:
        return "truncated (the file ends before the data its index refers to)"
    if "matches no streams" in text:
        return "has no video stream"
    if "invalid data found" in text:
        return "not a video file or corrupt"
    return "corrupt or unreadable"


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Probe the first video stream of ``path`` without decoding it.

    Raises :class:`VideoError` naming the file when it is missing, not a video, has no video stream, has
    no frames, or is corrupt or truncated (any error ffmpeg reports while reading every packet).
    """
    import ffmpeg

    path = Path(path)
    if not path.exists():
        raise VideoError(f"cannot read video {path}: no such file")
    if not path.is_file():
        raise VideoError(f"cannot read video {path}: not a file")
    cmd = (
        ffmpeg.input(_file_arg(path))
        .output("pipe:", map="0:v:0", c="copy", f="framecrc")
        .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info")
        .compile(cmd=ffmpeg_exe())
    )
    try:
        res = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             check=False)
    except OSError as e:
        raise VideoError(f"cannot read video {path}: cannot run ffmpeg: {e}") from e
    err = res.stderr.decode("utf-8", "replace")
    errors = _error_lines(err)
    if res.returncode != 0 or errors:
        raise VideoError(f"cannot read video {path}: {_explain(errors)}: " + "; ".join(errors[-5:]))

    stream = None
    for ln in err.splitlines():
        m = _STREAM_RE.match(re.sub(r"^\[info\] ", "", ln))
        if m:
            stream = m.group(1)
            break
    if stream is None:
        raise VideoError(f"cannot read video {path}: has no video stream")
    codec, pix_fmt, width, height, fps = _parse_stream_line(stream)

    tb = Fraction(1, 1)
    pts_list: list[int] = []
    durs: list[int] = []
    for ln in res.stdout.decode("ascii", "replace").splitlines():
        if ln.startswith("#tb 0:"):
            num, den = ln.split(":", 1)[1].strip().split("/")
            tb = Fraction(int(num), int(den))
        elif ln.startswith("0,"):
            f = ln.split(",")
            pts_list.append(int(f[2]))
            durs.append(int(f[3]))
    if not pts_list:
        raise VideoError(f"cannot read video {path}: the video stream has no frames")
    last = int(np.argmax(pts_list))
    duration_s = float((pts_list[last] + durs[last] - min(pts_list)) * tb)
    if durs and min(durs) == max(durs) > 0:
        exact = float(1 / (durs[0] * tb))
        if fps is None or abs(exact - fps) <= 0.01 * max(1.0, fps / 100):
            fps = exact
    if fps is None:
        fps = len(pts_list) / duration_s if duration_s > 0 else 0.0
    return VideoInfo(width=width, height=height, fps=float(fps), frame_count=len(pts_list),
                     duration_s=duration_s, codec=codec, pix_fmt=pix_fmt)


# --------------------------------------------------------------------------------------------------------
# decoding

_SHOWINFO_FRAME_RE = re.compile(r"\bn:\s*(\d+)\s+pts:\s*(-?\d+|NOPTS)\b.*?\bs:(\d+)x(\d+)\b")
_SHOWINFO_TB_RE = re.compile(r"config in time_base:\s*(\d+)/(\d+)(?:,\s*frame_rate:\s*(\d+)/(\d+))?")


@dataclass(frozen=True)
class _FrameInfo:
    pts_s: float
    width: int
    height: int


class _StderrReader(threading.Thread):
    """Reads ffmpeg's stderr: one :class:`_FrameInfo` per showinfo frame line into a queue, errors aside."""

    _END = None

    def __init__(self, stream: IO[bytes]) -> None:
        super().__init__(daemon=True, name="ffmpeg-stderr")
        self._stream = stream
        self.frames: "queue.Queue[_FrameInfo | None]" = queue.Queue()
        self.errors: list[str] = []
        self.tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)

    def run(self) -> None:
        tb = Fraction(0)
        rate: Fraction | None = None
        n_frames = 0
        try:
            for raw in self._stream:
                ln = raw.decode("utf-8", "replace").rstrip()
                if "Parsed_showinfo" in ln:
                    m = _SHOWINFO_FRAME_RE.search(ln)
                    if m:
                        if m.group(2) != "NOPTS":
                            pts_s = float(int(m.group(2)) * tb)
                        else:  # no timestamp in the file: nominal time of the frame
                            pts_s = float(n_frames / rate) if rate else float("nan")
                        self.frames.put(_FrameInfo(pts_s, int(m.group(3)), int(m.group(4))))
                        n_frames += 1
                        continue
                    m = _SHOWINFO_TB_RE.search(ln)
                    if m:
                        tb = Fraction(int(m.group(1)), int(m.group(2)))
                        if m.group(3) and int(m.group(3)) > 0 and int(m.group(4)) > 0:
                            rate = Fraction(int(m.group(3)), int(m.group(4)))
                    continue
                if _LEVEL_RE.search(ln):
                    self.errors.extend(e for e in _error_lines(ln) if e not in self.errors)
                if ln.strip():
                    self.tail.append(ln)
        finally:
            self.frames.put(self._END)


def _read_exact(stream: IO[bytes], buf: memoryview) -> int:
    """Fill ``buf`` from ``stream``; the number of bytes read (less than ``len(buf)`` only at end of file)."""
    got = 0
    n = len(buf)
    while got < n:
        k = stream.readinto(buf[got:])
        if not k:
            break
        got += k
    return got


def iter_frames(
    path: str | os.PathLike,
    width: int | None = None,
    height: int | None = None,
    *,
    strict: bool = True,
    threads: int | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(pts_s, frame)`` pairs from the first video stream of ``path``.

    ``pts_s``: the frame's presentation timestamp in seconds (float64, as stored in the file; files written
    by :class:`VideoWriter` start at 0 and frame ``i`` is at ``i / fps``; variable frame rate files give
    their real timestamps). ``frame``: ``uint8[H, W, 3]`` RGB, a fresh array per frame. ``width``/``height``:
    resize to this size (area filter); give one of them to keep the aspect ratio. ``threads``: decoder
    threads (None = ffmpeg's choice).

    Memory is bounded: one frame at a time is read from ffmpeg's pipe. With ``strict=True`` (default) any
    error ffmpeg reports (corrupt or truncated file) raises :class:`VideoError` naming the file after the
    frames that could be decoded were yielded; with ``strict=False`` decoding stops quietly at the damage.
    Stopping the iteration early kills ffmpeg.
    """
    import ffmpeg

    path = Path(path)
    if not path.is_file():
        raise VideoError(f"cannot read video {path}: no such file")
    for name, v in (("width", width), ("height", height)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0):
            raise ValueError(f"iter_frames {path}: {name} must be a positive int or None, got {v!r}")
    filters = []
    if width is not None or height is not None:
        filters.append(f"scale={width if width is not None else -1}:{height if height is not None else -1}"
                       ":flags=area")
    exe = ffmpeg_exe()
    filters.append("showinfo=checksum=0" if ffmpeg_version(exe) >= (4, 4) else "showinfo")
    out_kwargs: dict[str, object] = dict(map="0:v:0", vf=",".join(filters), f="rawvideo", pix_fmt="rgb24",
                                         flush_packets=1, **_passthrough_args(exe))
    in_kwargs: dict[str, object] = {}
    if threads is not None:
        in_kwargs["threads"] = int(threads)
    cmd = (
        ffmpeg.input(_file_arg(path), **in_kwargs)
        .output("pipe:", **out_kwargs)
        .global_args("-hide_banner", "-nostdin", "-nostats", "-loglevel", "level+info")
        .compile(cmd=exe)
    )
    # own session: Ctrl-C in a terminal goes to playmill, which stops ffmpeg itself (it exits on a closed pipe
    # when its parent dies)
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            bufsize=0, start_new_session=True)
    assert proc.stdout is not None and proc.stderr is not None
    reader = _StderrReader(proc.stderr)
    reader.start()
    finished = False
    short_read = False
    try:
        while True:
            info = reader.frames.get()
            if info is None:
                break
            frame = np.empty((info.height, info.width, 3), dtype=np.uint8)
            if _read_exact(proc.stdout, memoryview(frame).cast("B")) < frame.nbytes:
                short_read = True
                break
            yield info.pts_s, frame
        rc = proc.wait()
        reader.join()
        finished = True
        if strict and (rc != 0 or reader.errors or short_read):
            errors = reader.errors or list(reader.tail)[-5:]
            why = _explain(errors) if errors else "decoding stopped early"
            raise VideoError(f"cannot decode video {path}: {why}: " + "; ".join(errors[-5:]))
    finally:
        if not finished:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()


def read_video(
    path: str | os.PathLike, width: int | None = None, height: int | None = None, *, strict: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """All frames of ``path``: ``(frames uint8[N, H, W, 3] RGB, pts_s float64[N])``. For short videos."""
    frames: list[np.ndarray] = []
    pts: list[float] = []
    for t, f in iter_frames(path, width, height, strict=strict):
        pts.append(t)
        frames.append(f)
    if not frames:
        raise VideoError(f"cannot decode video {path}: no frames")
    return np.stack(frames), np.asarray(pts, dtype=np.float64)
