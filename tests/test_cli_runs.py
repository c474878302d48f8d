"""``xpnet train`` run folders: one run per folder, and run.json final on every path.

Real processes where signals and locks are involved; ``main()`` in-process (with a fault
injected) where the fault needs patching.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import xpnet as xn
from xpnet.cli import main

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and locks")


def _env(cwd: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, XPNET_DATA_DIR=str(cwd / "cache"), NO_COLOR="1", COLUMNS="120",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _xpnet(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xpnet", *map(str, args)], cwd=cwd,
                          env=_env(cwd), capture_output=True, text=True, timeout=300)


def _start_long_run(cwd: Path, out: str = "run") -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "xpnet", "train", "--backend", "numpy", "--epochs", "10000",
         "--out", out], cwd=cwd, env=_env(cwd), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.02)


def _record(out: Path) -> dict:
    return json.loads((out / "run.json").read_text())


def _one_json(stdout: str) -> dict:
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


@posix_only
def test_second_run_into_a_busy_folder_is_refused_then_sigterm_ends_the_first(tmp_path):
    first = _start_long_run(tmp_path)
    try:
        _wait_for(tmp_path / "run" / "run.json", first)
        t0 = time.monotonic()
        second = _xpnet("train", "--out", "run", "--epochs", "2", "--json", cwd=tmp_path)
        refused_in = time.monotonic() - t0
        assert second.returncode == 2, second.stderr
        line = second.stderr.strip()
        assert line.startswith(f"xpnet: error: run is in use by another xpnet run (pid "
                               f"{first.pid}, started "), line
        assert "xpnet train --backend numpy --epochs 10000 --out run" in line
        assert line.endswith("wait for it to finish, or choose another --out")
        assert _one_json(second.stdout) == {"status": "error", "exit_code": 2,
                                            "message": line[len("xpnet: error: "):]}
        resume = _xpnet("train", "--out", "run", "--resume", "--epochs", "3", cwd=tmp_path)
        assert resume.returncode == 2 and f"pid {first.pid}" in resume.stderr
        _wait_for(tmp_path / "run" / "model.safetensors", first)
        time.sleep(0.2)
        first.send_signal(signal.SIGTERM)
        _, err = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    print(f"\nsecond run refused in {refused_in:.2f} s")
    assert first.returncode == 143, err
    assert "Traceback" not in err
    assert "xpnet: interrupted (SIGTERM)" in err
    assert "xpnet train --out run --resume" in err
    run = _record(tmp_path / "run")
    assert run["status"] == "interrupted" and run["signal"] == "SIGTERM"
    assert run["finished_at"] is not None
    ckpt = xn.load_checkpoint(tmp_path / "run" / "model.safetensors", backend="numpy")
    assert ckpt.training["epoch"] >= run["epochs_done"] >= 1
    assert not (tmp_path / "run" / ".xpnet.lock").exists()  # released on the way out
    target = ckpt.training["epoch"] + 1
    done = _xpnet("train", "--out", "run", "--resume", "--epochs", target, "--quiet",
                  cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _record(tmp_path / "run")["status"] == "completed"


@posix_only
def test_a_run_killed_with_sigkill_leaves_a_stale_lock_the_next_run_takes_over(tmp_path):
    first = _start_long_run(tmp_path)
    try:
        _wait_for(tmp_path / "run" / "model.safetensors", first)
        first.kill()
        first.communicate()
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    lock = tmp_path / "run" / ".xpnet.lock"
    assert json.loads(lock.read_text())["pid"] == first.pid  # nobody holds it any more
    ckpt = xn.load_checkpoint(tmp_path / "run" / "model.safetensors", backend="numpy")
    proc = _xpnet("train", "--out", "run", "--resume", "--epochs", ckpt.training["epoch"] + 1,
                  cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (f"xpnet: note: cleared the stale lock of an earlier run in run (pid {first.pid}, "
            "no longer running)") in proc.stderr
    assert not lock.exists()


_SIGTERM_BEFORE_FIT = textwrap.dedent("""
    import os, signal, sys
    import xpnet.cli.train as train

    def terminate_here(recorder):  # after run.json is first written, before fit
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("SIGTERM did not stop the command")

    train.recorder_callback = terminate_here
    from xpnet.cli import main
    sys.exit(main(sys.argv[1:]))
""")


@posix_only
def test_sigterm_before_training_marks_the_run_interrupted(tmp_path):
    proc = subprocess.run([sys.executable, "-c", _SIGTERM_BEFORE_FIT, "train", "--backend",
                           "numpy", "--epochs", "3", "--out", "run", "--json"], cwd=tmp_path,
                          env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 143, proc.stderr
    assert "interrupted (SIGTERM) before the first epoch finished" in proc.stderr
    run = _record(tmp_path / "run")
    assert run["status"] == "interrupted" and run["signal"] == "SIGTERM"
    out = _one_json(proc.stdout)
    assert out["status"] == "interrupted" and out["exit_code"] == 143
    assert out["signal"] == "SIGTERM" and out["resume"] is None


def test_ctrl_c_before_training_marks_the_run_interrupted(tmp_path, monkeypatch, capsys):
    import xpnet.cli.train as train

    def interrupt(recorder):
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "recorder_callback", interrupt)
    code = main(["train", "--backend", "numpy", "--epochs", "2", "--out",
                 str(tmp_path / "run"), "--quiet"])
    assert code == 130
    run = _record(tmp_path / "run")
    assert run["status"] == "interrupted" and run["signal"] == "SIGINT"
    assert "interrupted (SIGINT) before the first epoch finished" in capsys.readouterr().err
    assert not (tmp_path / "run" / ".xpnet.lock").exists()


def _fail_fsync_of(name: str, after: int, monkeypatch) -> None:
    """Make os.fsync raise ENOSPC for temp files of `name` after `after` successful ones."""
    real, seen = os.fsync, {"n": 0}

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}") if isinstance(fd, int) else ""
        if os.path.basename(target).startswith(f".{name}."):
            seen["n"] += 1
            if seen["n"] > after:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_full_disk_names_the_file_and_the_resume_command(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _fail_fsync_of("model.safetensors", after=2, monkeypatch=monkeypatch)
    code = main(["train", "--backend", "numpy", "--epochs", "5", "--out", str(out),
                 "--quiet", "--json"])
    captured = capsys.readouterr()
    assert code == 3, captured.err
    message = (f"no space left on device while writing {out / 'model.safetensors'}; free "
               f"some space, then continue with: xpnet train --out {out} --resume")
    assert captured.err == f"xpnet: error: {message}\n"
    assert _one_json(captured.out) == {"status": "error", "exit_code": 3, "message": message}
    run = _record(out)
    assert run["status"] == "failed" and run["error"] == message
    assert run["epochs_done"] == 2 and run["finished_at"] is not None
    assert xn.load_checkpoint(out / "model.safetensors", backend="numpy").training["epoch"] == 2


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_full_disk_before_the_first_record_says_to_run_again(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    _fail_fsync_of("run.json", after=0, monkeypatch=monkeypatch)
    code = main(["train", "--backend", "numpy", "--epochs", "2", "--out", str(out), "--quiet"])
    assert code == 3
    assert capsys.readouterr().err == (
        f"xpnet: error: no space left on device while writing {out / 'run.json'}; free some "
        "space, then run the command again\n")
    assert not out.exists()  # the folder the lock created is removed again


def test_an_error_after_training_marks_the_run_failed(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    import xpnet.cli.train as train

    def broken_plot(*args, **kwargs):
        raise RuntimeError("the plotting library broke")

    monkeypatch.setattr(train, "plot_curves", broken_plot)
    code = main(["train", "--backend", "numpy", "--epochs", "1", "--out",
                 str(tmp_path / "run"), "--plot", "--quiet"])
    assert code == 1
    assert "RuntimeError: the plotting library broke" in capsys.readouterr().err
    run = _record(tmp_path / "run")
    assert run["status"] == "failed"
    assert run["error"] == "RuntimeError: the plotting library broke"


@pytest.mark.parametrize("argv,code", [
    (["train", "--lr", "-1", "--json"], 2),
    (["evaluate", "nope.safetensors", "--json"], 3),
    (["predict", "nope.safetensors", "x.npy", "--json"], 3),
    (["train", "--backend", "cupy", "--json"], 4),
], ids=["usage", "missing-model", "missing-predict-model", "backend"])
def test_json_failures_print_one_json_object(tmp_path, argv, code):
    proc = subprocess.run([sys.executable, "-m", "xpnet", *argv], cwd=tmp_path,
                          env=_env(tmp_path, XPNET_DISABLE_CUPY="1"), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == code, proc.stderr
    line = proc.stderr.strip()
    assert line.startswith("xpnet: error: ") and "\n" not in line
    assert _one_json(proc.stdout) == {"status": "error", "exit_code": code,
                                      "message": line[len("xpnet: error: "):]}


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="needs O_NOFOLLOW (POSIX)")
@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_lock_file_that_is_a_link_or_a_fifo_is_refused_untouched(tmp_path, capsys, kind):
    """A symlinked .xpnet.lock used to truncate and overwrite the file it points to (exit
    0); a FIFO there blocked forever. Both are refused with exit 2 before any work."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    run = tmp_path / "run"
    run.mkdir()
    if kind == "symlink":
        (run / ".xpnet.lock").symlink_to(victim)
    else:
        os.mkfifo(run / ".xpnet.lock")
    code = main(["train", "--out", str(run), "--epochs", "1"])
    err = capsys.readouterr().err
    assert code == 2
    assert ("is a symbolic link; xpnet never writes through links" if kind == "symlink"
            else "is not a regular file (a FIFO, a device or a folder)") in err
    assert victim.read_text() == "keep me"
    assert not (run / "model.safetensors").exists()
