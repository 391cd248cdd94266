"""Video I/O in-process through PyAV (FFmpeg's libraries): probe, decode with exact timestamps, encode.

* :class:`VideoWriter` encodes uint8 RGB frames with ``libx264`` (``yuv420p``, constant frame rate, MP4 with
  ``+faststart``) in this process: the RGB -> I420 conversion is OpenCV's (BT.601, limited range, the same
  matrix as FFmpeg's default), the encoder and muxer are libavcodec/libavformat. No pipe, no child process.
* :func:`probe_video` reads width, height, frame rate, codec and pixel format from the container and counts
  the frames by reading every packet (nothing is decoded); a file whose packets stop before its index says
  is truncated.
* :func:`iter_frames` decodes RGB frames with their presentation timestamps, exact: ``pts x time_base`` as
  stored (variable frame rate files give their real timestamps; nothing is duplicated or dropped). It reads
  a file or the bytes of one (a shard's clip), optionally resized (area filter). :func:`read_video` loads a
  whole (short) video.

Every error is a :class:`VideoError` that names the file (or the clip) and says what is wrong.

The ffmpeg command-line binary is no longer needed for any of this; :func:`ffmpeg_exe` still finds one for
the few tools that run the CLI on purpose (the benches' peers, the GTA V session simulator's concat demuxer).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Literal, Union

import numpy as np

#: x264 presets, fastest first.
X264_PRESETS: tuple[str, ...] = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo",
)
#: The type of a config key that names an x264 preset.
X264Preset = Literal[X264_PRESETS]
#: Default x264 preset of :class:`VideoWriter`. Measured encode-only at 640x352, one core, through PyAV on
#: panning rendered-like content: ultrafast ~700 frames/s, superfast ~450, veryfast ~340, with files about 4x
#: smaller for veryfast. Collection (pipeline.yaml ``collect.preset``) picks its own.
DEFAULT_PRESET = "veryfast"
#: Default constant rate factor (visually near-lossless for rendered gameplay).
DEFAULT_CRF = 18
#: Environment variable that names the ffmpeg binary to use (:func:`ffmpeg_exe`).
FFMPEG_ENV = "PLAYMILL_FFMPEG"

#: What :func:`iter_frames` and :func:`probe_video` read: a path, or the bytes of a whole file.
VideoSource = Union[str, os.PathLike, bytes, bytearray, memoryview]


class FFmpegNotFoundError(RuntimeError):
    """No working ffmpeg binary was found."""


class VideoError(RuntimeError):
    """A video could not be written, probed or decoded; the message names the file."""


# --------------------------------------------------------------------------------------------------------
# the ffmpeg binary (only for tools that run the command line on purpose)


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
        if _version_text(exe) is not None:
            return exe
        raise FFmpegNotFoundError(
            f"{FFMPEG_ENV}={env!r} does not point to a working ffmpeg binary; fix or unset {FFMPEG_ENV}, or "
            + _HOW_TO_FIX.split(", or set")[0]
        )
    on_path = shutil.which("ffmpeg")
    if on_path and _version_text(on_path) is not None:
        return on_path
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # not installed, or no binary for this platform
        bundled = None
    if bundled and _version_text(bundled) is not None:
        return bundled
    raise FFmpegNotFoundError("no working ffmpeg binary found; " + _HOW_TO_FIX)


_VERSION_RE = re.compile(r"ffmpeg version n?(\d+)\.(\d+)")


def ffmpeg_version(exe: str) -> tuple[int, int]:
    """``(major, minor)`` of an ffmpeg binary; ``(99, 0)`` for builds without a release number (git builds)."""
    m = _VERSION_RE.search(_version_text(exe) or "")
    return (int(m.group(1)), int(m.group(2))) if m else (99, 0)


# --------------------------------------------------------------------------------------------------------
# errors


def _explain(e: BaseException) -> str:
    """A short human reading of a PyAV/FFmpeg error."""
    text = str(e).lower()
    if "moov atom not found" in text:
        return "not a valid MP4 (no index: truncated before it was finished, or not a video file)"
    if "invalid data found" in text:
        return "not a video file or corrupt"
    if "no such file" in text:
        return "no such file"
    if "end of file" in text:
        return "truncated (the file ends before the data its index refers to)"
    return f"corrupt or unreadable ({e})"


def _name(source: VideoSource, name: str | None) -> str:
    if name is not None:
        return name
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{len(source)} bytes of video>"
    return os.fspath(source)


def _open(source: VideoSource, what: str, label: str):
    """``(container, video stream)`` of ``source``; :class:`VideoError` naming ``label`` when it cannot be."""
    import av

    if isinstance(source, (bytes, bytearray, memoryview)):
        target: object = io.BytesIO(bytes(source))
    else:
        p = Path(source)
        if not p.exists():
            raise VideoError(f"cannot {what} video {label}: no such file")
        if not p.is_file():
            raise VideoError(f"cannot {what} video {label}: not a file")
        target = os.fspath(p)
    try:
        container = av.open(target, "r")
    except av.FFmpegError as e:
        why = _explain(e)
        if isinstance(e, av.InvalidDataError) and str(label).lower().endswith((".mp4", ".mov", ".m4v")):
            why = "not a valid MP4 (no index: truncated before it was finished, or not a video file)"
        raise VideoError(f"cannot {what} video {label}: {why}") from None
    except (OSError, ValueError) as e:
        raise VideoError(f"cannot {what} video {label}: {e}") from None
    if not container.streams.video:
        container.close()
        raise VideoError(f"cannot {what} video {label}: has no video stream")
    return container, container.streams.video[0]


# --------------------------------------------------------------------------------------------------------
# writing


def _fps_fraction(fps: float) -> Fraction:
    """Exact rational frame rate of ``fps`` (29.97002997... becomes 30000/1001)."""
    return Fraction(fps).limit_denominator(1001 * 1000)


# x264's CPU feature names for the x86 features numpy detects (numpy's name -> x264's); "MMX2" is SSE's MMX subset.
_X264_CPU_NAMES: tuple[tuple[str, str], ...] = (
    ("SSE", "MMX2"), ("SSE", "SSE"), ("SSE2", "SSE2"), ("SSE3", "SSE3"), ("SSSE3", "SSSE3"), ("SSE41", "SSE4.1"),
    ("SSE42", "SSE4.2"), ("AVX", "AVX"), ("FMA3", "FMA3"), ("BMI", "BMI1"), ("BMI2", "BMI2"), ("LZCNT", "LZCNT"),
    ("AVX2", "AVX2"),
)


@lru_cache(maxsize=1)
def x264_cpu_options() -> dict[str, str]:
    """Encoder options that keep libx264 off its AVX-512 code: ``{"x264-params": "asm=<features>"}`` on CPUs with
    AVX-512, else ``{}``.

    Measured here (libx264 in PyAV's wheel, AVX-512 CPU): with AVX-512 the macroblock-tree code reads memory it
    did not write, so the same frames encode to different bytes depending on what the process did before (a
    resumed curation run then differs from a clean one). Every feature below AVX-512 is kept, so speed is the
    same within a few percent and the output is a pure function of the input.
    """
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as feats
        except ImportError:
            return {}
    if not feats.get("AVX512F"):
        return {}
    names = [x264 for np_name, x264 in _X264_CPU_NAMES if feats.get(np_name)]
    return {"x264-params": "asm=" + ",".join(names)} if names else {}


class VideoWriter:
    """Encode uint8 RGB frames to an H.264 (libx264, yuv420p, constant frame rate) video file, in-process.

    ``width``/``height`` in pixels (positive, even: yuv420p subsamples chroma by 2), ``fps`` in frames per
    second (frame ``i`` has presentation time ``i / fps`` s, exactly: the stream's time base is ``1 / fps``),
    ``crf`` the x264 constant rate factor (0-51, lower = better), ``preset`` an x264 preset
    (:data:`X264_PRESETS`), ``threads`` encoder threads (1 = one core; collection runs one writer per worker;
    0 = libx264's choice), ``gop`` the largest distance between keyframes (None: libx264's). An existing file at ``path`` is replaced.

    Use as a context manager: leaving the block normally calls :meth:`close`, leaving it with an exception
    calls :meth:`abort` (the partial file is removed).
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
        gop: int | None = None,
    ) -> None:
        import av

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
        if int(threads) < 0:
            raise ValueError(f"VideoWriter {self.path}: threads must be >= 0, got {threads!r}")
        if not self.path.parent.is_dir():
            raise VideoError(f"cannot write video {self.path}: folder {self.path.parent} does not exist")

        self.width, self.height, self.fps = int(width), int(height), float(fps)
        self._shape = (self.height, self.width, 3)
        self._frames = 0
        self._closed = False  # no more writes: closed, aborted or failed
        rate = _fps_fraction(self.fps)
        options = {"movflags": "+faststart"} if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else {}
        try:
            self._container = av.open(os.fspath(self.path), "w", options=options)
        except (av.FFmpegError, OSError, ValueError) as e:
            raise VideoError(f"cannot write video {self.path}: {e}") from None
        try:
            s = self._container.add_stream("libx264", rate=rate)
            s.width, s.height, s.pix_fmt = self.width, self.height, "yuv420p"
            s.time_base = 1 / rate
            s.codec_context.time_base = 1 / rate
            s.thread_count = int(threads)
            if gop is not None:
                s.codec_context.gop_size = int(gop)
            s.options = {"crf": str(int(crf)), "preset": preset, **x264_cpu_options()}
            self._stream = s
        except (av.FFmpegError, ValueError) as e:
            self._fail()
            raise VideoError(f"cannot write video {self.path}: the H.264 encoder cannot start: {e}") from None

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
        import av
        import cv2

        if self._closed:
            raise VideoError(f"VideoWriter {self.path}: write() after close()/abort()")
        if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.shape != self._shape:
            got = (f"{type(frame).__name__}" if not isinstance(frame, np.ndarray)
                   else f"{frame.dtype}{list(frame.shape)}")
            raise ValueError(
                f"VideoWriter {self.path}: frame {self._frames} must be uint8[{self.height}, {self.width}, 3] "
                f"RGB, got {got}"
            )
        i420 = cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420)  # 10x faster than swscale's rgb24 -> yuv420p
        vf = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        vf.pts = self._frames
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as e:
            self._fail()
            raise VideoError(f"cannot write video {self.path} (frame {self._frames}): {e}") from None
        self._frames += 1

    def close(self) -> None:
        """Finish the file (flush the encoder, write the index); :class:`VideoError` on failure.

        A file with no frames is an error. On any error the partial file is removed.
        """
        import av

        if self._closed:
            return
        if self._frames == 0:
            self._fail()
            raise VideoError(f"cannot write video {self.path}: no frames were written")
        try:
            for packet in self._stream.encode(None):
                self._container.mux(packet)
            self._container.close()
        except (av.FFmpegError, OSError) as e:
            self._fail()
            raise VideoError(f"cannot write video {self.path}: {e}") from None
        self._closed = True

    def abort(self) -> None:
        """Stop and remove the partial file. Safe to call more than once; after a successful :meth:`close`
        the finished file is kept."""
        if not self._closed:
            self._fail()

    def _fail(self) -> None:
        self._closed = True
        try:
            self._container.close()
        except Exception:  # the container is being thrown away
            pass
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass


# --------------------------------------------------------------------------------------------------------
# probing


@dataclass(frozen=True)
class VideoInfo:
    """What :func:`probe_video` learns about the first video stream of a file.

    ``width``/``height`` in pixels; ``fps`` the stream's frame rate in frames/s (exact when all packets have
    the same duration, else the container's average rate); ``frame_count`` the number of video packets (one per
    frame for H.264 in MP4); ``duration_s`` the span of the packets' presentation times plus the last packet's
    duration, in seconds; ``codec`` FFmpeg's codec name (``h264``); ``pix_fmt`` the pixel format (``yuv420p``).
    """

    width: int
    height: int
    fps: float
    frame_count: int
    duration_s: float
    codec: str
    pix_fmt: str


def probe_video(path: VideoSource, *, name: str | None = None) -> VideoInfo:
    """Probe the first video stream of ``path`` (a file, or its bytes) without decoding it.

    Raises :class:`VideoError` naming the file (``name`` for bytes) when it is missing, not a video, has no
    video stream, has no frames, or is corrupt or truncated (its packets end before its index does).
    """
    import av

    label = _name(path, name)
    container, stream = _open(path, "read", label)
    try:
        cc = stream.codec_context
        tb = stream.time_base or Fraction(1, 1)
        pts: list[int] = []
        durs: list[int] = []
        try:
            for pk in container.demux(stream):
                if pk.size == 0:  # the demuxer's end-of-stream marker
                    continue
                pts.append(pk.pts if pk.pts is not None else (pk.dts if pk.dts is not None else len(pts)))
                durs.append(int(pk.duration or 0))
        except av.FFmpegError as e:
            raise VideoError(f"cannot read video {label}: {_explain(e)}") from None
        indexed = int(stream.frames or 0)
        if not pts:
            raise VideoError(f"cannot read video {label}: the video stream has no frames")
        if indexed and len(pts) < indexed:
            raise VideoError(f"cannot read video {label}: truncated (the file ends before the data its index "
                             f"refers to: {len(pts)} of {indexed} frames are there)")
        last = int(np.argmax(pts))
        duration_s = float((pts[last] + durs[last] - min(pts)) * tb)
        fps: float | None = None
        if durs and min(durs) == max(durs) > 0:
            fps = float(1 / (durs[0] * tb))
        elif stream.average_rate:
            fps = float(stream.average_rate)
        if fps is None:
            fps = len(pts) / duration_s if duration_s > 0 else 0.0
        return VideoInfo(width=int(cc.width), height=int(cc.height), fps=float(fps), frame_count=len(pts),
                         duration_s=duration_s, codec=str(cc.name), pix_fmt=str(cc.pix_fmt or "unknown"))
    finally:
        container.close()


# --------------------------------------------------------------------------------------------------------
# decoding


def _out_size(w: int, h: int, width: int | None, height: int | None) -> tuple[int, int] | None:
    """The output size for a requested ``width``/``height`` (one of them: aspect kept), or None for as-is."""
    if width is None and height is None:
        return None
    if width is None:
        width = max(1, int(round(w * height / h)))
    if height is None:
        height = max(1, int(round(h * width / w)))
    return (int(width), int(height)) if (width, height) != (w, h) else None


def iter_frames(
    path: VideoSource,
    width: int | None = None,
    height: int | None = None,
    *,
    strict: bool = True,
    threads: int | None = None,
    name: str | None = None,
) -> Iterator[tuple[float, np.ndarray]]:
    """Stream ``(pts_s, frame)`` pairs from the first video stream of ``path`` (a file, or its bytes).

    ``pts_s``: the frame's presentation timestamp in seconds (float64 of the exact ``pts x time_base``; files
    written by :class:`VideoWriter` start at 0 and frame ``i`` is at ``i / fps``; variable frame rate files give
    their real timestamps). ``frame``: ``uint8[H, W, 3]`` RGB, a fresh array per frame. ``width``/``height``:
    resize to this size (area filter); give one of them to keep the aspect ratio. ``threads``: decoder threads
    (None = FFmpeg's choice; 1 in worker processes). ``name``: what errors call the video (bytes have no path).

    Memory is bounded: one frame at a time. With ``strict=True`` (default) a corrupt or truncated file raises
    :class:`VideoError` naming the file after the frames that could be decoded were yielded; with
    ``strict=False`` decoding stops quietly at the damage.
    """
    label = _name(path, name)
    for k, v in (("width", width), ("height", height)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v <= 0):
            raise ValueError(f"iter_frames {label}: {k} must be a positive int or None, got {v!r}")
    container, stream = _open(path, "decode", label)  # open errors are raised in the caller's thread
    frames = _decode(container, stream, label, width, height, strict, threads)
    yield from frames


def _decode(container, stream, label: str, width: int | None, height: int | None, strict: bool,
            threads: int | None) -> Iterator[tuple[float, np.ndarray]]:
    """The frames of an opened ``container``'s ``stream`` (see :func:`iter_frames`); closes the container."""
    import av
    from av.video.reformatter import VideoReformatter

    try:
        if threads is not None:  # (thread_type left alone: SLICE frames make swscale 5x slower, measured)
            stream.thread_count = int(threads)
        indexed = int(stream.frames or 0)
        rate = stream.average_rate or stream.guessed_rate
        # one converter for the whole video: it keeps its swscale context (a new one per frame costs 2-4x the
        # decode itself)
        reformatter = VideoReformatter()
        tb = stream.time_base or Fraction(1, 1)
        tb_num, tb_den = tb.numerator, tb.denominator
        n = 0
        size = None
        error: str | None = None
        try:
            for frame in container.decode(stream):
                if size is None:
                    size = _out_size(frame.width, frame.height, width, height)
                if frame.pts is not None:  # pts x time_base, exactly rounded (int / int), no Fraction per frame
                    t = (frame.pts * tb_num) / tb_den
                else:  # no timestamp in the file: the frame's nominal time
                    t = float(n / rate) if rate else float("nan")
                if size is None:
                    rgb = reformatter.reformat(frame, format="rgb24").to_ndarray()
                else:
                    rgb = reformatter.reformat(frame, width=size[0], height=size[1], format="rgb24",
                                               interpolation="AREA").to_ndarray()
                n += 1
                yield t, rgb
        except av.FFmpegError as e:
            error = _explain(e)
        if error is None and indexed and n < indexed:
            error = f"truncated (decoding stopped after {n} of {indexed} frames)"
        if error is None and n == 0:
            error = "the video stream has no frames"
        if error is not None and strict:
            raise VideoError(f"cannot decode video {label}: {error}")
    finally:
        container.close()


def read_video(
    path: VideoSource, width: int | None = None, height: int | None = None, *, strict: bool = True,
    name: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All frames of ``path``: ``(frames uint8[N, H, W, 3] RGB, pts_s float64[N])``. For short videos."""
    frames: list[np.ndarray] = []
    pts: list[float] = []
    for t, f in iter_frames(path, width, height, strict=strict, name=name):
        pts.append(t)
        frames.append(f)
    if not frames:
        raise VideoError(f"cannot decode video {_name(path, name)}: no frames")
    return np.stack(frames), np.asarray(pts, dtype=np.float64)


def encode_video(frames: np.ndarray, fps: float, path: str | os.PathLike, *, crf: int = DEFAULT_CRF,
                 preset: str = DEFAULT_PRESET, threads: int = 1) -> Path:
    """Write ``frames`` uint8 ``[T, H, W, 3]`` RGB as an H.264 file at ``path`` (atomically: a temporary name,
    then a rename); odd sizes are padded by one edge pixel (yuv420p needs even sizes). Returns the path."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"encode_video {path}: frames must be uint8[T>0, H, W, 3], got {frames.dtype}{list(frames.shape)}")
    _, h, w, _ = frames.shape
    if h % 2 or w % 2:
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    with VideoWriter(tmp, frames.shape[2], frames.shape[1], fps, crf=crf, preset=preset, threads=threads) as vw:
        for f in frames:
            vw.write(np.ascontiguousarray(f))
    os.replace(tmp, path)
    return path
