"""Hostile video files and outputs (issue 18).

A video output never deletes what nlm did not write: ``--overwrite`` replaces
a previous frame directory of nlm (its marker and frames) and nothing else;
``.`` and the input's own directory are refused, however they are spelled.
A truncated or corrupt clip is one ``Error:`` line (exit 1) naming the frames
decoded, or with ``--allow-truncated`` a warning; ffmpeg's log lines never
come before the ``Error:`` line (``--verbose`` shows them after it).
``--temporal-radius`` is bounded by the clip.  Clips are made here, seeded.
"""

import hashlib
import os
import subprocess
import sys
import time
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import cli
from nlm.denoisers.video import MAX_TEMPORAL_RADIUS, denoise_frames
from nlm.io import ImageIOError

av = pytest.importorskip("av")

from test_hostile_cli import failed  # noqa: E402

from nlm.io.video import (  # noqa: E402
    FRAMES_MARKER,
    FrameWriter,
    TruncatedVideoError,
    VideoInfo,
    check_frames_output,
    open_frames,
)

ROOT = Path(cli.__file__).resolve().parent
FAST = ["--patch-size", "3", "--patch-distance", "2", "--temporal-radius", "1", "--sigma", "20"]
T = 10


def make_clip(path, frames=T, codec="ffv1", seed=0, container_options=None):
    """A grey 24x24 clip of ``frames`` seeded noise frames."""
    rng = np.random.default_rng(seed)
    fps = Fraction(25)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height = stream.width = 24
        stream.pix_fmt = "gray" if codec == "ffv1" else "yuv420p"
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(rng.integers(0, 256, (24, 24), dtype=np.uint8), format="gray")
            vf.pts, vf.time_base = i, 1 / fps
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return Path(path)


def run(*args):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def snapshot(root):
    """Every entry below ``root`` (hidden ones included) with its content's digest."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            rel = str(p.relative_to(root))
            out[rel] = "link" if p.is_symlink() else "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def nlm_frames(tmp_path, name="prev", frames=4):
    """A previous frame output of nlm."""
    make_clip(tmp_path / "prev_src.mkv", frames, seed=5)
    result = run("denoise", tmp_path / "prev_src.mkv", tmp_path / name, *FAST)
    assert result.exit_code == 0, result.output
    (tmp_path / "prev_src.mkv").unlink()
    return tmp_path / name


def frame_names(path):
    return sorted(n for n in os.listdir(path) if n != FRAMES_MARKER)


# --------------------------------------------------------------------------- #
# outputs: never delete what nlm did not write
# --------------------------------------------------------------------------- #
@pytest.mark.parametrize(
    "cwd,src,out",
    [
        ("", "dir/clip.mkv", "dir"),
        ("", "dir/clip.mkv", "dir/"),
        ("", "dir/clip.mkv", "./dir/../dir"),
        ("", "dir/clip.mkv", "{tmp}/dir"),
        ("", "dir/clip.mkv", "link"),  # a symbolic link to dir
        ("", "link/clip.mkv", "dir/sub/.."),
        ("dir", "clip.mkv", "."),
        ("dir/sub", "../clip.mkv", ".."),
        ("dir", "clip.mkv", "/"),
    ],
)
def test_the_inputs_own_directory_and_the_current_one_are_refused(tmp_path, monkeypatch, cwd, src, out):
    """The issue's case: ``nlm denoise dir/clip.mkv dir --overwrite`` deleted the
    clip and a user file.  Every spelling of that directory (and ``.``, ``..``,
    ``/`` from inside it) is a usage error; nothing changes, nothing is left."""
    d = tmp_path / "dir"
    (d / "sub").mkdir(parents=True)
    make_clip(d / "clip.mkv")
    (d / "notes.txt").write_text("mine")
    (tmp_path / "link").symlink_to(d)
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path / cwd)
    result = failed(run("denoise", src, out.format(tmp=tmp_path), *FAST, "--overwrite"), 2)
    assert any(w in result.stderr for w in ("holds the input", "current directory", "symbolic link")), result.stderr
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "content",
    ["user file", "nlm frames and a user file", "frames nlm did not write", "nlm frames and a folder",
     "a marker that is not nlm's", "a frame that is a link"],
)
def test_overwrite_refuses_a_directory_nlm_did_not_write(tmp_path, content):
    src = make_clip(tmp_path / "clip.mkv")
    if content.startswith("nlm frames"):
        out = nlm_frames(tmp_path, "out")
    else:
        out = tmp_path / "out"
        out.mkdir()
    if "user file" in content:
        (out / "holiday.jpg").write_bytes(b"precious")
    if content == "frames nlm did not write":  # e.g. ffmpeg -i clip.mp4 out/frame_%06d.png
        for i in range(3):
            (out / f"frame_{i:06d}.png").write_bytes(b"png")
    if content == "nlm frames and a folder":
        (out / "frame_000099.png").mkdir()
    if content == "a marker that is not nlm's":
        (out / FRAMES_MARKER).write_text('{"format": "something else"}')
        (out / "frame_000000.png").write_bytes(b"png")
    if content == "a frame that is a link":
        nlm_frames(tmp_path, "other")
        (tmp_path / "keep.png").write_bytes(b"keep")
        out = tmp_path / "other"
        os.unlink(out / "frame_000000.png")
        (out / "frame_000000.png").symlink_to(tmp_path / "keep.png")
    before = snapshot(tmp_path)
    result = failed(run("denoise", src, out, *FAST, "--overwrite"), 2)
    assert "only replaces a frame directory written by nlm" in result.stderr
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_a_previous_frame_output_and_nothing_else(tmp_path):
    out = nlm_frames(tmp_path, "out", frames=6)
    assert frame_names(out) == [f"frame_{i:06d}.png" for i in range(6)]
    src = make_clip(tmp_path / "clip.mkv", frames=3)
    failed(run("denoise", src, out, *FAST), 2, "already exists")
    result = run("denoise", src, out, *FAST, "--overwrite")
    assert result.exit_code == 0, result.output
    assert frame_names(out) == [f"frame_{i:06d}.png" for i in range(3)]  # no stale frames 3..5
    assert sorted(os.listdir(tmp_path)) == ["clip.mkv", "out"]  # no .old- or .tmp- left
    # again through a path that names it another way
    result = run("denoise", src, tmp_path / "out" / ".." / "out", *FAST, "--overwrite")
    assert result.exit_code == 0, result.output
    (tmp_path / "empty").mkdir()  # an empty directory holds nothing to lose
    assert run("denoise", src, tmp_path / "empty", *FAST, "--overwrite").exit_code == 0
    assert frame_names(tmp_path / "empty") == [f"frame_{i:06d}.png" for i in range(3)]


def test_outputs_of_another_kind_are_refused(tmp_path):
    """A frame directory onto a file or a symbolic link, a clip onto a directory:
    exit 2 with or without --overwrite, and nothing changes."""
    src = make_clip(tmp_path / "clip.mkv")
    (tmp_path / "plain").write_bytes(b"a file without extension")
    prev = nlm_frames(tmp_path, "prev")
    (tmp_path / "prevlink").symlink_to(prev)
    (tmp_path / "d.mkv").mkdir()
    before = snapshot(tmp_path)
    for out, message in [("plain", "is a file"), ("prevlink", "symbolic link"), ("d.mkv", "is a directory")]:
        for extra in ([], ["--overwrite"]):
            failed(run("denoise", src, tmp_path / out, *FAST, *extra), 2, message)
    assert snapshot(tmp_path) == before


def test_a_file_appearing_in_the_old_output_during_the_run_is_kept(tmp_path):
    """The check is made again just before the rename: what appeared meanwhile
    makes the commit fail and the old output stays as it is."""
    out = nlm_frames(tmp_path, "out")
    info = VideoInfo(24, 24, 1, np.dtype(np.uint8), Fraction(25), 2, "test")
    with pytest.raises(ImageIOError, match="holds late.txt"):
        with FrameWriter(out, info, overwrite=True) as writer:
            writer.write(np.zeros((24, 24), np.uint8))
            (out / "late.txt").write_text("arrived during the run")
    assert (out / "late.txt").read_text() == "arrived during the run"
    assert len(frame_names(out)) == 5  # 4 old frames and the late file
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_check_frames_output_is_the_library_rule(tmp_path, monkeypatch):
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    (tmp_path / "in" / "sub").mkdir(parents=True)
    clip = make_clip(tmp_path / "in" / "c.mkv", 2)
    assert check_frames_output("new") is None
    assert "current directory" in check_frames_output(".", True)
    assert "current directory" in check_frames_output(str(tmp_path), True)
    assert "holds the input" in check_frames_output(tmp_path / "in" / "sub" / "..", True, inputs=[clip])
    assert "is the input" in check_frames_output(tmp_path / "in", True, inputs=[tmp_path / "in"])
    with pytest.raises(ImageIOError, match="current directory"):
        FrameWriter(".", VideoInfo(8, 8, 1, np.dtype(np.uint8), Fraction(25), 1, "t"), overwrite=True)


# --------------------------------------------------------------------------- #
# truncated and corrupt clips
# --------------------------------------------------------------------------- #
CONTAINERS = [
    ("mkv", "ffv1", None),
    ("mp4", "mpeg4", {"movflags": "faststart"}),  # index first: a cut leaves a readable head
    ("avi", "mpeg4", None),
]


@pytest.mark.parametrize("ext,codec,options", CONTAINERS)
def test_a_clip_cut_at_60_percent_is_an_error_naming_the_frames_decoded(tmp_path, ext, codec, options):
    full = make_clip(tmp_path / f"full.{ext}", codec=codec, container_options=options)
    data = full.read_bytes()
    full.unlink()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    before = snapshot(tmp_path)
    result = failed(run("denoise", cut, tmp_path / "out.mkv", *FAST), 1, "decoded of the 10 its container declares")
    assert "--allow-truncated" in result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()][-1].startswith("Error:")
    assert "ffmpeg" not in result.stderr.replace("(ffmpeg", "")  # only inside the Error line
    assert snapshot(tmp_path) == before
    with pytest.raises(TruncatedVideoError) as caught:
        list(open_frames(cut)[1])
    assert 0 <= caught.value.decoded < 10 and caught.value.declared == 10
    assert f"{caught.value.decoded} frame" in str(caught.value)


def test_allow_truncated_denoises_the_frames_decoded_with_a_warning(tmp_path):
    data = make_clip(tmp_path / "full.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: int(len(data) * 0.6)])
    result = run("denoise", tmp_path / "cut.mkv", tmp_path / "out", *FAST, "--allow-truncated")
    assert result.exit_code == 0, result.output
    decoded = len(frame_names(tmp_path / "out"))
    assert 0 < decoded < T
    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1 and f"{decoded} frames decoded of the 10" in warning[0], result.stderr
    assert result.output.index(f"frames          {decoded}") < result.output.index("warning:")
    from nlm.io import write_image

    write_image(tmp_path / "still.png", np.zeros((8, 8), np.uint8))
    failed(run("denoise", tmp_path / "still.png", tmp_path / "o.png", "--allow-truncated"), 2, "for videos")


def test_fuzzed_clips_end_in_a_result_or_one_clean_error(tmp_path):
    """Seeded cuts and byte damage of three containers: exit 0 with every
    frame, or exit 1 with one Error: line last; never an ffmpeg line, never a
    partial output."""
    rng = np.random.default_rng(18)
    for k, (ext, codec, options) in enumerate(CONTAINERS):
        data = make_clip(tmp_path / f"full.{ext}", codec=codec, container_options=options, seed=k).read_bytes()
        os.unlink(tmp_path / f"full.{ext}")
        variants = [data[: int(rng.integers(16, len(data)))] for _ in range(3)]
        for _ in range(2):
            damaged = bytearray(data)
            at = int(rng.integers(len(data) // 4, len(data) - 64))
            damaged[at : at + 48] = rng.integers(0, 256, 48, dtype=np.uint8).tobytes()
            variants.append(bytes(damaged))
        for i, variant in enumerate(variants):
            src = tmp_path / f"v{i}.{ext}"
            src.write_bytes(variant)
            result = run("denoise", src, tmp_path / "out.mkv", *FAST, "-q")
            assert result.exit_code in (0, 1), (ext, i, result.output)
            if result.exit_code == 0:
                assert open_frames(tmp_path / "out.mkv")[0].frames == T
                os.unlink(tmp_path / "out.mkv")
            else:
                assert result.stderr.strip().splitlines() == [result.stderr.strip()], (ext, i, result.stderr)
                assert result.stderr.startswith("Error:"), (ext, i, result.stderr)
            assert sorted(os.listdir(tmp_path)) == [src.name], (ext, i)
            os.unlink(src)


def test_a_cut_tiff_stack_names_the_frames_read_and_logs_nothing(tmp_path):
    import tifffile

    with tifffile.TiffWriter(tmp_path / "full.tif") as writer:
        for frame in np.random.default_rng(7).integers(0, 256, (T, 24, 24), dtype=np.uint8):
            writer.write(frame, photometric="minisblack", contiguous=False)
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: int(len(data) * 0.6)])
    result = failed(run("denoise", tmp_path / "cut.tif", tmp_path / "o.tif", *FAST, "--time-axis", "0", "-q"), 1,
                    "cannot read frame 5 of 6", "5 frames read")
    assert result.stderr.strip().count("\n") == 0, result.stderr  # no tifffile log line
    assert sorted(os.listdir(tmp_path)) == ["cut.tif", "full.tif"]


@pytest.mark.parametrize(
    "name,content,log",
    [("bad.mkv", b"\x1aE\xdf\xa3" + bytes(60), "EBML"), ("bad.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(200), "moov")],
)
def test_ffmpeg_log_lines_are_shown_with_verbose_only(tmp_path, name, content, log):
    (tmp_path / name).write_bytes(content)
    result = failed(run("denoise", tmp_path / name, tmp_path / "o.mkv"), 1, "cannot read as a video")
    assert result.stderr.strip().count("\n") == 0, result.stderr  # the Error: line and nothing else
    result = failed(run("denoise", tmp_path / name, tmp_path / "o.mkv", "--verbose"), 1, "cannot read as a video")
    lines = result.stderr.strip().splitlines()  # the log lines as they came, the Error: line last
    assert lines[:-1] and all(line.startswith("log: ffmpeg") for line in lines[:-1]), result.stderr
    assert any(log in line for line in lines[:-1]), result.stderr


def test_the_library_prints_nothing_and_logs_through_logging(tmp_path, caplog):
    """No handler configured: nothing on stderr (not even Python's last-resort
    handler); the messages are records of the ``nlm.io.video`` logger."""
    (tmp_path / "bad.mkv").write_bytes(b"\x1aE\xdf\xa3" + bytes(60))
    with pytest.raises(ImageIOError, match="EBML"):
        open_frames(tmp_path / "bad.mkv")
    assert any(r.name == "nlm.io.video" and "EBML" in r.getMessage() for r in caplog.records)
    code = "from nlm.io.video import open_frames\ntry: open_frames(%r)\nexcept Exception as e: print(e)"
    out = subprocess.run([sys.executable, "-c", code % str(tmp_path / "bad.mkv")], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert "EBML" in out.stdout and out.stderr == "", out


# --------------------------------------------------------------------------- #
# the temporal radius
# --------------------------------------------------------------------------- #
def test_temporal_radius_is_bounded_by_the_clip(tmp_path):
    src = make_clip(tmp_path / "clip.mkv")
    for radius in ("1000000000000", "10", str(10**40)):
        t0 = time.perf_counter()
        failed(run("denoise", src, tmp_path / "o.mkv", *FAST[:-4], "--temporal-radius", radius), 2,
               "--temporal-radius", f"{src} has 10 frames, so at most 9")
        assert time.perf_counter() - t0 < 20
    result = run("denoise", src, tmp_path / "o.mkv", *FAST[:-4], "--temporal-radius", "9", "-q")
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path)) == ["clip.mkv", "o.mkv"]


def test_denoise_frames_refuses_absurd_radii_and_clips_long_windows():
    clip = np.random.default_rng(3).random((3, 10, 10)).astype(np.float32)
    with pytest.raises(ValueError, match="temporal_radius"):
        next(denoise_frames(clip, 3, 2, 0.2, temporal_radius=10**12))
    with pytest.raises(ValueError, match="temporal_radius"):
        next(denoise_frames(clip, 3, (10**12, 2, 2), 0.2))
    t0 = time.perf_counter()
    longest = np.stack(list(denoise_frames(iter(clip), 3, 2, 0.2, temporal_radius=MAX_TEMPORAL_RADIUS)))
    assert time.perf_counter() - t0 < 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = np.stack(list(denoise_frames(iter(clip), 3, 2, 0.2, temporal_radius=2)))
    np.testing.assert_array_equal(longest, whole)  # a window longer than the clip is the clip
