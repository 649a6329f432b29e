"""Recording files as untrusted input and careful output (issue 9 items 6, 7 and 9,
issue 12 item 21): each test is a reproduction from the issue, on real files."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
import tracemalloc
import zipfile

import numpy as np
import pytest

import core
from core.debug import program as programs
from core.debug import recfile_values
from core.debug.recfile import RecordingFileError, load, save
from core.debug.recording import Recording
from core.debug.safe_write import clean_stale
from core.debug.session import Session

SAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "samples")
NEURON = os.path.join(SAMPLES, "neuron.py")


@pytest.fixture(scope="module")
def neuron_rec() -> Recording:
    session = Session.from_file(NEURON, steps=3)
    session.start()
    assert session.wait(30) and session.state == "finished"
    return session.recording


def in_thread(fn, timeout: float = 5.0):
    """``fn()`` in a thread; fails the test (instead of hanging it) if it blocks."""
    result: list = []

    def target():
        try:
            result.append(fn())
        except BaseException as exc:  # handed to the test
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn} blocked"
    return result[0]


# -- item 6: recordings are untrusted input -------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "zero device", "folder", "binary"])
def test_what_is_not_a_recording_is_refused_without_blocking(tmp_path, kind):
    if kind == "fifo":
        path = str(tmp_path / "pipe.gsrec")
        os.mkfifo(path)
        says = "is not a regular file"
    elif kind == "zero device":
        path, says = "/dev/zero", "is not a regular file"
    elif kind == "folder":
        path, says = str(tmp_path), "is a folder, not a recording file"
    else:
        path = str(tmp_path / "random.gsrec")
        with open(path, "wb") as fh:
            fh.write(np.random.default_rng(0).bytes(5000))
        says = "not a recording file (not a ZIP archive)"
    exc = in_thread(lambda: load(path))
    assert isinstance(exc, RecordingFileError) and exc.path == path
    assert str(exc) == f"{path}: {says}"


def test_a_recording_carries_its_program_source(neuron_rec, tmp_path):
    with open(NEURON, encoding="utf-8") as fh:
        text = fh.read()
    assert neuron_rec.meta["source"] == text and neuron_rec.meta["program"] == NEURON
    save(neuron_rec, tmp_path / "n.gsrec")
    assert load(tmp_path / "n.gsrec").meta["source"] == text


@pytest.mark.parametrize("kind", ["fifo", "zero device", "folder", "too large", "binary"])
def test_a_program_path_is_read_only_when_it_is_a_small_text_file(tmp_path, kind):
    if kind == "fifo":
        path = str(tmp_path / "pipe.py")
        os.mkfifo(path)
        says = "is not a regular file"
    elif kind == "zero device":
        path, says = "/dev/zero", "is not a regular file"
    elif kind == "folder":
        path, says = str(tmp_path), "is a folder"
    elif kind == "too large":
        path = str(tmp_path / "big.py")
        with open(path, "wb") as fh:
            fh.truncate(programs.MAX_SOURCE_BYTES + 1)
        says = "too large for a program"
    else:
        path = str(tmp_path / "binary.py")
        with open(path, "wb") as fh:
            fh.write(b"\x00\xff\xfe" * 10)
        says = "not a Python program (not UTF-8 text"
    exc = in_thread(lambda: programs.read_source(path))
    assert isinstance(exc, programs.ProgramError) and says in str(exc) and path in str(exc)


def test_a_text_file_is_not_a_program(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("def build(device): pass\n")
    with pytest.raises(programs.ProgramError, match=r"notes\.txt: not a Python program"):
        programs.read(notes)


def test_a_lone_surrogate_is_refused_on_save_and_on_load(neuron_rec, tmp_path):
    odd = Recording(meta={"program": "bad\udc80name.py"})
    with pytest.raises(RecordingFileError, match=r"lone surrogate \(\\udc80\)"):
        save(odd, tmp_path / "odd.gsrec")
    assert not list(tmp_path.iterdir())
    save(neuron_rec, tmp_path / "n.gsrec")
    with zipfile.ZipFile(tmp_path / "n.gsrec") as zin:
        members = [(i, zin.read(i)) for i in zin.infolist()]
    with zipfile.ZipFile(tmp_path / "bad.gsrec", "w") as zout:
        for info, data in members:
            if info.filename == "meta.json":
                data = data.replace(b'"title":"', b'"title":"\\ud800')
            zout.writestr(info, data)
    with pytest.raises(RecordingFileError, match=r"meta\.json: a string holds a lone surrogate"):
        load(tmp_path / "bad.gsrec")


def test_a_truncated_recording_says_so(neuron_rec, tmp_path):
    save(neuron_rec, tmp_path / "n.gsrec")
    data = (tmp_path / "n.gsrec").read_bytes()
    (tmp_path / "cut.gsrec").write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingFileError, match=r"cut\.gsrec: the file is truncated"):
        load(tmp_path / "cut.gsrec")


# -- item 7: zip bombs cannot get through -----------------------------------------------------


def _v1_file(path, extra: list[tuple[str, bytes]], values: list[int], cap: int = 2**30) -> None:
    meta = json.dumps(
        {
            "format": "gradstep-recording",
            "version": 1,
            "meta": {},
            "cap_bytes": cap,
            "dropped": [],
            "values": values,
            "event_count": 0,
        }
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", meta)
        zf.writestr("events.jsonl", b"")
        for name, data in extra:
            zf.writestr(name, data)


def _npy(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, array, allow_pickle=False)
    return out.getvalue()


def test_many_small_members_of_zeros_are_refused_before_anything_is_inflated(tmp_path):
    body = _npy(np.zeros(32_768))  # 256 KiB each, a few hundred bytes compressed
    path = tmp_path / "bomb.gsrec"
    _v1_file(path, [(f"values/{i}.npy", body) for i in range(300)], list(range(300)))
    assert os.path.getsize(path) < 400_000
    tracemalloc.start()
    try:
        with pytest.raises(RecordingFileError, match="over 200 times the file's size: refused"):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20


def test_a_big_compressed_member_is_read_into_place_with_no_second_copy(tmp_path):
    rng = np.random.default_rng(0)
    array = np.zeros(3 * 2**20)  # 24 MiB, compressed about 60 times
    array[::64] = rng.standard_normal(len(array[::64]))
    path = tmp_path / "big.gsrec"
    _v1_file(path, [("values/7.npy", _npy(array))], [7])
    tracemalloc.start()
    try:
        rec = load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(rec.values[7], array)
    assert peak < 1.25 * array.nbytes  # the array, and no read buffer beside it


def test_values_over_the_files_own_cap_are_refused(tmp_path):
    path = tmp_path / "capped.gsrec"
    _v1_file(path, [("values/1.npy", _npy(np.ones(1000)))], [1], cap=100)
    with pytest.raises(RecordingFileError, match=r"more than the recording's cap \(100 B\)"):
        load(path)


def test_a_file_that_needs_more_memory_than_is_free_is_refused(neuron_rec, tmp_path, monkeypatch):
    save(neuron_rec, tmp_path / "n.gsrec")
    monkeypatch.setattr(recfile_values, "available_memory", lambda: 1000)
    with pytest.raises(RecordingFileError, match="more than this machine has free"):
        load(tmp_path / "n.gsrec")


def test_small_values_are_packed_into_one_member(tmp_path):
    rec = Recording()
    with rec.attach():
        x = core.tensor(1.0, requires_grad=True)
        y = x
        for _ in range(1000):
            y = y * 1.0001
        y.backward()
    assert len(rec.values) > 2000
    save(rec, tmp_path / "many.gsrec")
    with zipfile.ZipFile(tmp_path / "many.gsrec") as zf:
        assert zf.namelist() == ["meta.json", "events.jsonl", "values.bin"]
    back = load(tmp_path / "many.gsrec")
    assert sorted(back.values) == sorted(rec.values)
    assert back.grad_of(x.id).item() == rec.grad_of(x.id).item()


# -- item 9: save is careful with what is already there ---------------------------------------


def test_save_follows_a_symlink_and_keeps_it(neuron_rec, tmp_path):
    real = tmp_path / "real.gsrec"
    real.write_bytes(b"old")
    link = tmp_path / "link.gsrec"
    link.symlink_to(real)
    save(neuron_rec, link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert len(load(real)) == len(neuron_rec)


def test_save_refuses_a_fifo_and_a_device(neuron_rec, tmp_path):
    fifo = tmp_path / "pipe.gsrec"
    os.mkfifo(fifo)
    exc = in_thread(lambda: save(neuron_rec, fifo))
    assert isinstance(exc, RecordingFileError) and "not a regular file" in str(exc)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    with pytest.raises(RecordingFileError, match="not a regular file"):
        save(neuron_rec, "/dev/null")


def test_save_asks_before_replacing_a_read_only_file(neuron_rec, tmp_path):
    path = tmp_path / "kept.gsrec"
    path.write_bytes(b"precious")
    path.chmod(0o444)
    with pytest.raises(RecordingFileError, match="the file is read-only") as info:
        save(neuron_rec, path)
    assert info.value.read_only and path.read_bytes() == b"precious"
    save(neuron_rec, path, force=True)
    assert len(load(path)) == len(neuron_rec)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o444


def test_save_follows_the_umask_and_keeps_an_existing_mode(neuron_rec, tmp_path):
    old = os.umask(0o027)
    try:
        save(neuron_rec, tmp_path / "new.gsrec")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "new.gsrec").st_mode) == 0o640
    existing = tmp_path / "shared.gsrec"
    existing.write_bytes(b"x")
    existing.chmod(0o664)
    save(neuron_rec, existing)
    assert stat.S_IMODE(os.stat(existing).st_mode) == 0o664


def test_save_cleans_up_temporary_files_a_killed_save_left(neuron_rec, tmp_path):
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(gone.stdout)
    stale = tmp_path / f".gsrec-{dead_pid}-k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    live = tmp_path / f".gsrec-{os.getpid()}-w0rk1ng.tmp"
    live.write_bytes(b"\0")
    old = tmp_path / ".gsrec-ancient.tmp"
    old.write_bytes(b"\0")
    os.utime(old, (0, 0))
    other = tmp_path / ".gsrec-notes.txt"
    other.write_bytes(b"mine")
    save(neuron_rec, tmp_path / "run.gsrec")
    assert not stale.exists() and not old.exists()
    assert live.exists() and other.exists()
    assert clean_stale(str(tmp_path)) == []


def test_a_killed_save_leaves_a_file_the_next_save_removes(neuron_rec, tmp_path):
    script = (
        "import os, sys, core\n"
        "from core.debug import recfile, recfile_values\n"
        "from core.debug.recording import Recording\n"
        "def hang(*args):\n"
        "    print('writing', flush=True)\n"
        "    os.kill(os.getpid(), 9)\n"
        "recfile_values.write_values = hang\n"
        f"recfile.save(Recording(), {str(tmp_path / 'run.gsrec')!r})\n"
    )
    repo = os.path.dirname(SAMPLES)
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": repo},
    )
    assert proc.returncode == -9 and "writing" in proc.stdout
    assert [p.name for p in tmp_path.glob(".gsrec-*.tmp")]
    save(neuron_rec, tmp_path / "run.gsrec")
    assert not list(tmp_path.glob(".gsrec-*.tmp"))
