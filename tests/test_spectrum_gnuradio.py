"""The independent spectrum evaluation set: recordings made by GNU Radio's own blocks under
Debian's python3, with truth that the recordings bear out, scored by `cvstream models eval
spectrum --generator gnuradio`."""
import json
import os
import subprocess

import numpy as np
import pytest

from conftest import run_cli
from cvstream.models.spectrum import independent

pytestmark = pytest.mark.gnuradio


@pytest.fixture(scope="module")
def recordings_dir(gnuradio, tmp_path_factory):
    out = tmp_path_factory.mktemp("grspec")
    done = subprocess.run([gnuradio, str(independent.SCRIPT), str(out), "6", "5",
                           "0:10,10:20,20:30"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("recording ") == 6  # progress, one line per recording
    return out


def test_recordings_hold_what_their_truth_says(recordings_dir):
    families, measured_snrs, tones = set(), 0, 0
    for k in range(6):
        info = json.loads((recordings_dir / f"{k:04d}.json").read_text())
        x = np.fromfile(recordings_dir / f"{k:04d}.cf32", np.complex64)
        assert len(x) == info["samples"] == 262144
        lo, hi = info["bucket"]
        assert [lo, hi] == [[0, 10], [10, 20], [20, 30]][k % 3]
        assert 2 <= len(info["signals"]) <= 6 and info["rate"] in independent_rates()
        # the noise floor: GNU Radio's unit-power complex Gaussian source
        spectrum = np.abs(np.fft.fftshift(np.fft.fft(x[:65536]))) ** 2 / 65536
        freqs = (np.arange(65536) - 32768) / 65536
        busy = np.zeros(65536, bool)
        for s in info["signals"]:
            busy |= (freqs >= s["f_low"] - 0.002) & (freqs <= s["f_high"] + 0.002)
        assert np.median(spectrum[~busy]) == pytest.approx(np.log(2), rel=0.15)  # median of
        # an exponential with mean 1
        for s in info["signals"]:
            families.add(s["family"])
            assert lo <= s["snr_db"] <= hi
            assert 0 <= s["start"] < s["stop"] <= len(x)
            width = s["f_high"] - s["f_low"]
            assert 0 < width < 0.2
            if s["modulation"] == "cw":
                assert width < 1e-3
                # the band is centred on the tone (it follows the tone's frequency offset)
                seg = x[s["start"]:s["start"] + 65536]
                p = np.abs(np.fft.fftshift(np.fft.fft(seg, 65536))) ** 2
                centre = 0.5 * (s["f_low"] + s["f_high"])
                near = np.abs(freqs - centre) < 0.002
                assert abs(freqs[near][np.argmax(p[near])] - centre) <= 1 / 65536
                tones += 1
            elif s["stop"] - s["start"] > 100000 and width > 0.01:
                # the in-band SNR the truth states, measured on the recording (+- 2 dB)
                seg = x[s["start"]:s["start"] + 65536]
                p = np.abs(np.fft.fftshift(np.fft.fft(seg))) ** 2 / 65536
                band = (freqs >= s["f_low"]) & (freqs <= s["f_high"])
                others = [o for o in info["signals"] if o is not s and
                          o["f_high"] > s["f_low"] and o["f_low"] < s["f_high"]]
                if not others:
                    measured = 10 * np.log10(max(p[band].sum() / band.sum() - 1, 1e-9))
                    assert measured == pytest.approx(s["snr_db"], abs=2.0)
                    measured_snrs += 1
    assert len(families) >= 3 and measured_snrs >= 2 and tones >= 1


def independent_rates():
    return (2.4e6, 10e6, 20e6, 56e6)


def test_models_eval_spectrum_gnuradio_prints_the_tables(gnuradio, tmp_path):
    env = dict(os.environ, CVSTREAM_CACHE=str(tmp_path))
    done = run_cli("models", "eval", "spectrum", "--generator", "both", "--scenes", "1",
                   "--gr-scenes", "1", "--gr-seed", "5", "--floor-tilt", "3", env=env,
                   timeout=900)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "## scenes from cvstream's synthesizer" in out
    assert "## recordings made by GNU Radio's blocks (never trained on)" in out
    assert "CW tones found (>= 10 dB)" in out
    side = out.split("## side by side")[1]
    rows = [line for line in side.splitlines() if line.startswith(("0..10", "10..20", "20..30"))]
    assert {r.split(" | ")[1] for r in rows} >= {"segmenter", "cfar"}
    for row in rows:  # F1 from each generator, numbers in [0, 1]
        f1s = [float(v) for v in row.split(" | ")[2:4]]
        assert all(0.0 <= v <= 1.0 for v in f1s)
    # generated once, then reused from the cache
    cached = list(tmp_path.glob("spectrum-gnuradio-*/done"))
    assert len(cached) == 1 and cached[0].parent.name.endswith("-5-1")  # the seed asked for


def test_gnuradio_sets_of_several_seeds_pool_into_one_table(gnuradio, tmp_path, monkeypatch):
    """``--gr-seed 7,8``: each set generated (and cached) once, the tables' counts the sums
    of each set's, and progress over every recording of both."""
    from cvstream.models.spectrum.evaluate import cfar_detect
    monkeypatch.setenv("CVSTREAM_CACHE", str(tmp_path))
    found = {"cfar": cfar_detect(pfa=1e-3)}
    each = [independent.evaluate(found, per_bucket=1, seeds=[seed])[1]["cfar"] for seed in (7, 8)]
    seen = []
    table, extras = independent.evaluate(found, per_bucket=1, seeds=[7, 8],
                                          progress=lambda done, total: seen.append((done, total)))
    pooled = extras["cfar"]
    assert set(table) == {f"{lo}..{hi} dB" for lo, hi in independent.GR_BUCKETS}
    assert pooled["cw"] == [a + b for a, b in zip(each[0]["cw"], each[1]["cw"])]
    for bucket in independent.GR_BUCKETS:
        for key in ("narrow", "lenient"):
            assert pooled[key][bucket] == [a + b for a, b in
                                           zip(each[0][key][bucket], each[1][key][bucket])]
    truth = sum(pooled["lenient"][b][1] for b in independent.GR_BUCKETS)
    assert truth == sum(e["lenient"][b][1] for e in each for b in independent.GR_BUCKETS) > 0
    assert seen[-1] == (6, 6) and [d for d, _ in seen[-6:]] == list(range(1, 7))
    assert len(list(tmp_path.glob("spectrum-gnuradio-*/done"))) == 2   # generated once each
    for bad, why in (("7,x", "not a comma-separated list of seeds"), ("-1", "seeds must be >= 0")):
        res = run_cli("models", "eval", "spectrum", f"--gr-seed={bad}")
        assert res.returncode == 2 and why in res.stderr.splitlines()[-1]
