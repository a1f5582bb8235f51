"""Progress bar: output policy (TTY, forced, quiet, env) and the rate/ETA arithmetic."""

import io

import pytest

import ufm
from ufm.core import progress as _progress


class _TTY(io.StringIO):
    encoding = "utf-8"

    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    """A fake monotonic clock advanced by hand."""
    t = [100.0]
    monkeypatch.setattr(_progress.time, "monotonic", lambda: t[0])
    monkeypatch.delenv("UFM_PROGRESS", raising=False)
    return t


def test_silent_when_not_a_tty(clock):
    buf = io.StringIO()
    with ufm.core.Progress(10, "x", file=buf) as bar:
        bar.update(10)
        bar.write("hello")
    assert buf.getvalue() == ""
    assert bar.n == 10 and not bar.enabled


def test_quiet_overrides_force_and_tty(clock):
    for buf in (io.StringIO(), _TTY()):
        with ufm.core.Progress(3, file=buf, force=True, quiet=True) as bar:
            bar.update(3)
        assert buf.getvalue() == ""


def test_env_forces_and_silences(clock, monkeypatch):
    monkeypatch.setenv("UFM_PROGRESS", "1")
    buf = io.StringIO()
    with ufm.core.Progress(2, "env", file=buf, log_interval=0) as bar:
        bar.update(2)
    assert "env: 100% 2/2" in buf.getvalue()
    monkeypatch.setenv("UFM_PROGRESS", "0")
    tty = _TTY()
    with ufm.core.Progress(2, file=tty) as bar:
        bar.update(2)
    assert tty.getvalue() == ""


def test_rate_and_eta_constant_speed(clock):
    """2 items per second throughout: the smoothed rate is exactly 2/s, ETA = left / 2."""
    bar = ufm.core.Progress(20, file=io.StringIO())
    for _ in range(4):
        clock[0] += 1.0
        bar.update(2)
    assert bar.rate == pytest.approx(2.0)
    assert bar.eta == pytest.approx((20 - 8) / 2.0)
    assert bar.elapsed == pytest.approx(4.0)


def test_rate_smoothing_forgets_slow_first_update(clock):
    """EMA with smoothing 0.3: after a 10 s first item and fast ones, rate tends to the fast one."""
    bar = ufm.core.Progress(None, file=io.StringIO())
    clock[0] += 10.0
    bar.update(1)
    per_item = 10.0
    for _ in range(30):
        clock[0] += 0.1
        bar.update(1)
        per_item = 0.3 * 0.1 + 0.7 * per_item
    assert bar.rate == pytest.approx(1 / per_item)
    assert bar.rate > 9.0 and bar.eta is None


def test_tty_bar_redraws_in_place_and_ends_line(clock):
    tty = _TTY()
    with ufm.core.Progress(4, "seeds", unit="seeds", file=tty, min_interval=0.0) as bar:
        clock[0] += 1.0
        bar.update(1)
        clock[0] += 1.0
        bar.update(3)
    out = tty.getvalue()
    assert out.count("\r") >= 2 and out.endswith("\n")
    last = out.rstrip("\n").split("\r")[-1]
    assert last.startswith("seeds: 100%|") and "4/4" in last and "seeds/s" in last


def test_forced_log_lines_are_throttled(clock):
    buf = io.StringIO()
    with ufm.core.Progress(100, file=buf, force=True, log_interval=30.0) as bar:
        for _ in range(99):
            clock[0] += 1.0
            bar.update(1)  # 99 s: lines at t=1 (first), 31, 61, 91
        clock[0] += 1.0
        bar.update(1)  # the last item always draws
    lines = buf.getvalue().splitlines()
    assert len(lines) == 5 and "\r" not in buf.getvalue()
    assert lines[-1].startswith("100% 100/100")


def test_bad_total():
    with pytest.raises(ValueError, match="total"):
        ufm.core.Progress(-1)
    with pytest.raises(ValueError, match="total"):
        ufm.core.Progress(2.5)


def test_format_duration():
    assert _progress.format_duration(59.6) == "01:00"
    assert _progress.format_duration(float("nan")) == "?"


def test_rate_excludes_compilation_when_told(clock):
    """A first chunk of 50 s (45 s of it compiling) and then 5 s chunks: with the compute times
    passed, the rate is that of the compute (10 items per 5 s) from the first update on."""
    bar = ufm.core.Progress(100, file=io.StringIO())
    clock[0] += 50.0
    bar.update(10, seconds=5.0)
    assert bar.rate == pytest.approx(2.0) and bar.eta == pytest.approx(45.0)
    clock[0] += 5.0
    bar.update(10, seconds=5.0)
    assert bar.rate == pytest.approx(2.0) and bar.eta == pytest.approx(40.0)


def test_phase_and_configuration_in_the_lines(clock):
    buf = io.StringIO()
    with ufm.core.Progress(2, "sweep", file=buf, force=True, log_interval=0) as bar:
        bar.set_description("sweep ce-none K=3")
        bar.set_phase("hessian")
        bar.update(2)
    assert "sweep ce-none K=3 [hessian]: 100% 2/2" in buf.getvalue()
