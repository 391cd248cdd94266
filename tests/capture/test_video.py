"""H.264 video I/O in-process (PyAV): round trips, variable frame rate timestamps, probing, clear errors."""

import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import capture.video as video
from capture.video import (
    FFmpegNotFoundError, VideoError, VideoWriter, ffmpeg_exe, iter_frames, probe_video, read_video,
)

W, H = 64, 48


def pattern(i: int, w: int = W, h: int = H) -> np.ndarray:
    """A smooth moving colour gradient (compresses well, so decoded pixels stay close)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin((xx + 2 * i) / 30.0)
    g = 128 + 100 * np.cos((yy - i) / 25.0)
    b = 128 + 60 * np.sin((xx + yy + 3 * i) / 40.0)
    return np.stack([r, g, b], axis=-1).round().astype(np.uint8)


def write_video(path: Path, n: int, fps: float = 30.0, w: int = W, h: int = H, **kw) -> list[np.ndarray]:
    frames = [pattern(i, w, h) for i in range(n)]
    with VideoWriter(path, w, h, fps, **kw) as vw:
        for f in frames:
            vw.write(f)
    return frames


def run_ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_round_trip_cfr(tmp_path):
    path = tmp_path / "v.mp4"
    frames = write_video(path, 24, fps=30)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (W, H, 24)
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.fps == 30.0
    assert info.duration_s == pytest.approx(24 / 30)
    decoded, pts = read_video(path)
    assert decoded.shape == (24, H, W, 3) and decoded.dtype == np.uint8
    assert pts.dtype == np.float64
    np.testing.assert_allclose(pts, np.arange(24) / 30, rtol=0, atol=1e-12)
    err = np.abs(decoded.astype(np.int16) - np.stack(frames).astype(np.int16))
    assert err.mean() < 2.5 and np.percentile(err, 99) < 12  # mostly 4:2:0 chroma subsampling


def test_fractional_rate_is_exact_and_resize(tmp_path):
    path = tmp_path / "ntsc.mp4"
    fps = float(Fraction(30000, 1001))
    write_video(path, 10, fps=fps)
    info = probe_video(path)
    assert info.fps == pytest.approx(30000 / 1001, abs=1e-9)
    np.testing.assert_allclose(read_video(path)[1], np.arange(10) * 1001 / 30000, atol=1e-9)
    small = list(iter_frames(path, 32, 24))
    assert len(small) == 10 and small[0][1].shape == (24, 32, 3)
    assert next(iter_frames(path, width=32))[1].shape == (24, 32, 3)  # aspect kept


def test_variable_frame_rate_gives_real_timestamps(tmp_path):
    path = tmp_path / "vfr.mp4"
    # frame n is shown at n^2 / 100 s: 0, 0.01, 0.04, 0.09, ... (intervals grow from 10 ms to 210 ms)
    passthrough = ["-fps_mode", "passthrough"] if video.ffmpeg_version(ffmpeg_exe()) >= (5, 1) else ["-vsync", "0"]
    run_ffmpeg("-f", "lavfi", "-i", f"testsrc=size={W}x{H}:rate=10", "-frames:v", "12",
               "-vf", "settb=1/1000,setpts=N*N*10", *passthrough, "-enc_time_base", "1/1000",
               "-video_track_timescale", "1000", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))
    frames, pts = read_video(path)
    assert frames.shape == (12, H, W, 3)
    np.testing.assert_allclose(pts, np.arange(12) ** 2 / 100, atol=1e-9)
    assert probe_video(path).frame_count == 12


def test_truncated_file_gives_clear_error(tmp_path):
    path = tmp_path / "full.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, W, H, 30) as vw:  # noise: big frames, so the cut lands mid-stream
        for _ in range(30):
            vw.write(rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoError, match=r"cut\.mp4.*truncated"):
        probe_video(cut)
    got = []
    with pytest.raises(VideoError, match=r"cut\.mp4"):
        for _, f in iter_frames(cut):  # strict: frames that decode come first, then the error
            got.append(f)
    assert 0 < len(got) < 30
    frames, _ = read_video(cut, strict=False)
    assert 0 < len(frames) < 30


def test_non_video_missing_and_audio_only_files(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n")
    with pytest.raises(VideoError, match=r"notes\.mp4: not a valid MP4"):
        probe_video(text)
    with pytest.raises(VideoError, match=r"notes\.mp4"):
        read_video(text)
    with pytest.raises(VideoError, match=r"nothing\.mp4: no such file"):
        probe_video(tmp_path / "nothing.mp4")
    with pytest.raises(VideoError, match="no such file"):
        next(iter_frames(tmp_path / "nothing.mp4"))
    audio = tmp_path / "tone.m4a"
    run_ffmpeg("-f", "lavfi", "-i", "sine=duration=0.1", "-c:a", "aac", str(audio))
    with pytest.raises(VideoError, match=r"tone\.m4a: has no video stream"):
        probe_video(audio)


def test_missing_ffmpeg_says_what_to_do(tmp_path, monkeypatch):
    import imageio_ffmpeg

    def no_binary():
        raise RuntimeError("no ffmpeg exe could be found")

    monkeypatch.delenv("PLAYMILL_FFMPEG", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", no_binary)
    with pytest.raises(FFmpegNotFoundError, match="pip install imageio-ffmpeg") as e:
        ffmpeg_exe()
    assert "PLAYMILL_FFMPEG" in str(e.value) and "install ffmpeg" in str(e.value)
    assert isinstance(e.value, RuntimeError)
    # video I/O itself runs in-process: no ffmpeg binary is needed to write, probe or decode
    frames = write_video(tmp_path / "x.mp4", 3)
    assert probe_video(tmp_path / "x.mp4").frame_count == 3
    assert read_video(tmp_path / "x.mp4")[0].shape == (3, H, W, 3) and len(frames) == 3


def test_ffmpeg_env_variable(tmp_path, monkeypatch):
    real = ffmpeg_exe()
    monkeypatch.setenv("PLAYMILL_FFMPEG", real)
    assert ffmpeg_exe() == real
    monkeypatch.setenv("PLAYMILL_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(FFmpegNotFoundError, match="PLAYMILL_FFMPEG=.*no-such-ffmpeg.*does not point"):
        ffmpeg_exe()  # a wrong explicit setting is an error, not silently replaced


def test_writer_validates_arguments_and_frames(tmp_path):
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "a.mp4", 63, 48, 30)
    with pytest.raises(ValueError, match="preset"):
        VideoWriter(tmp_path / "a.mp4", W, H, 30, preset="turbo")
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "a.mp4", W, H, 0)
    with pytest.raises(VideoError, match="does not exist"):
        VideoWriter(tmp_path / "no" / "a.mp4", W, H, 30)
    path = tmp_path / "b.mp4"
    vw = VideoWriter(path, W, H, 30)
    with pytest.raises(ValueError, match=r"uint8\[48, 64, 3\].*float64\[48, 64, 3\]"):
        vw.write(np.zeros((H, W, 3)))
    with pytest.raises(ValueError, match=r"uint8\[48, 64, 3\].*uint8\[64, 48, 3\]"):
        vw.write(np.zeros((W, H, 3), np.uint8))
    vw.write(np.ascontiguousarray(pattern(0)[:, ::-1]))  # non-contiguous views are fine too
    vw.write(pattern(1)[:, ::-1])
    vw.close()
    assert probe_video(path).frame_count == 2


def test_abort_exception_and_empty_video_leave_no_file(tmp_path):
    path = tmp_path / "c.mp4"
    vw = VideoWriter(path, W, H, 30)
    vw.write(pattern(0))
    vw.abort()
    assert not path.exists()
    with pytest.raises(KeyError):
        with VideoWriter(path, W, H, 30) as vw:
            vw.write(pattern(0))
            raise KeyError("boom")
    assert not path.exists()
    with pytest.raises(VideoError, match="no frames"):
        VideoWriter(path, W, H, 30).close()
    assert not path.exists()


def test_muxer_failure_mid_write_raises_video_error(tmp_path):
    import av

    class FullDisk:  # the real container, whose writes fail as on a full disk
        def __init__(self, real):
            self.real = real

        def mux(self, packet):
            raise av.error.OSError(28, "No space left on device")

        def close(self):
            self.real.close()

    path = tmp_path / "d.mp4"
    vw = VideoWriter(path, W, H, 30)
    vw.write(pattern(0))
    vw._container = FullDisk(vw._container)
    with pytest.raises(VideoError, match=r"d\.mp4.*No space left"):
        for i in range(50):  # x264 buffers a few frames before the first packet reaches the muxer
            vw.write(pattern(i))
        vw.close()
    assert not path.exists()


def test_iteration_stopped_early_closes_the_file(tmp_path):
    path = tmp_path / "e.mp4"
    write_video(path, 20)
    it = iter_frames(path)
    t0, f0 = next(it)
    assert t0 == 0.0 and f0.shape == (H, W, 3)
    it.close()  # GeneratorExit: the container is closed, no exception


def test_decodes_bytes_with_the_same_frames_and_names_the_clip(tmp_path):
    path = tmp_path / "f.mp4"
    write_video(path, 9, fps=25)
    frames, pts = read_video(path)
    frames_b, pts_b = read_video(path.read_bytes(), name="clip-7")
    np.testing.assert_array_equal(frames, frames_b)
    np.testing.assert_array_equal(pts, pts_b)
    assert probe_video(path.read_bytes()).frame_count == 9
    with pytest.raises(VideoError, match="clip-7"):
        read_video(path.read_bytes()[:300], name="clip-7")


def test_writer_colours_match_ffmpeg_decoder(tmp_path):
    """The in-process RGB -> I420 conversion uses the matrix FFmpeg's decoder inverts (BT.601, limited range):
    flat colours survive a round trip within a few levels."""
    path = tmp_path / "g.mp4"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (20, 200, 90)]
    with VideoWriter(path, W, H, 10, crf=0) as vw:
        for c in colours:
            vw.write(np.full((H, W, 3), c, np.uint8))
    decoded, _ = read_video(path)
    for got, c in zip(decoded, colours):
        assert np.abs(got.reshape(-1, 3).mean(0) - np.asarray(c)).max() < 4, (c, got.reshape(-1, 3).mean(0))


def test_same_frames_encode_to_the_same_bytes_whatever_ran_before(tmp_path):
    """Resumed runs are byte-identical to clean ones only if encoding is a pure function of the frames: libx264's
    AVX-512 macroblock-tree code is kept off (video.x264_cpu_options), or it reads memory other work left behind."""
    import hashlib

    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (40, 80, 3), dtype=np.uint8)
    frames = [np.ascontiguousarray(np.roll(base, 2 * i, axis=1)[:32, :64]) for i in range(9)]

    def encode(name: str) -> str:
        with VideoWriter(tmp_path / name, 64, 32, 25) as vw:
            for f in frames:
                vw.write(f)
        return hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()

    first = encode("a.mp4")
    for other in range(3):  # other work in between: a large noisy video encoded and decoded
        with VideoWriter(tmp_path / f"noise{other}.mp4", 320, 176, 25) as vw:
            for _ in range(6):
                vw.write(rng.integers(0, 256, (176, 320, 3), dtype=np.uint8))
        read_video(tmp_path / f"noise{other}.mp4")
        assert encode(f"b{other}.mp4") == first
