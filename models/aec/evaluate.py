"""Echo-cancellation metrics and the classical cancellers, side by side on held-out scenes.

ERLE = 10 log10(sum mic^2 / sum out^2) on far-end single talk; PESQ wide-band, STOI and
SI-SDR against the near-end speech as the microphone hears it (near-end single talk, double
talk, echo-path change), after removing each canceller's own delay (found by
cross-correlation within 40 ms and reported); real-time factor = processing time / audio
duration (one core).
"""
from __future__ import annotations

import time

import numpy as np

from .speech import FS
from .synth import SCENARIOS, scene

FRAME = 160  # 10 ms


MAX_LAG = FS // 25  # 40 ms


def delay_samples(target: np.ndarray, estimate: np.ndarray) -> int:
    """How many samples ``estimate`` lags ``target`` (0..40 ms), by cross-correlation."""
    import scipy.signal
    corr = scipy.signal.correlate(estimate, target, mode="full", method="fft")
    zero = len(target) - 1
    return int(np.argmax(corr[zero:zero + MAX_LAG]))


def aligned(target: np.ndarray, estimate: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Both signals with the canceller's own delay removed (scored without penalising it;
    the delay is reported as latency)."""
    lag = delay_samples(target, estimate)
    n = len(target) - lag
    return target[:n], estimate[lag:lag + n], lag


def erle_db(mic: np.ndarray, out: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(mic ** 2) / (np.sum(out ** 2) + 1e-12)))


def si_sdr_db(target: np.ndarray, estimate: np.ndarray) -> float:
    target = target - target.mean()
    estimate = estimate - estimate.mean()
    scale = np.dot(estimate, target) / (np.dot(target, target) + 1e-12)
    proj = scale * target
    return float(10 * np.log10(np.sum(proj ** 2) / (np.sum((estimate - proj) ** 2) + 1e-12)))


def pesq_wb(target: np.ndarray, estimate: np.ndarray) -> float | None:
    from pesq import pesq
    try:
        return float(pesq(FS, target, estimate, "wb"))
    except Exception:  # noqa: BLE001 - PESQ refuses signals without speech
        return None


def stoi(target: np.ndarray, estimate: np.ndarray) -> float:
    from pystoi import stoi as _stoi
    return float(_stoi(target, estimate, FS, extended=False))


def _frames(x: np.ndarray) -> np.ndarray:
    n = len(x) // FRAME * FRAME
    return x[:n].reshape(-1, FRAME)


def webrtc_aec3(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """WebRTC's AEC3 (pywebrtc-audio), echo cancellation only, 10 ms frames."""
    import pywebrtc_audio
    proc = pywebrtc_audio.AudioProcessor(sample_rate=FS, echo_cancellation=True)
    out = [proc.process(np.ascontiguousarray(m), np.ascontiguousarray(r))
           for m, r in zip(_frames(mic), _frames(ref))]
    return _pad(np.concatenate(out).astype(np.float32), len(mic))


def speex_mdf(mic: np.ndarray, ref: np.ndarray, tail: int = 4096) -> np.ndarray:
    """Speex MDF (pyaec) with a 256 ms tail, 10 ms frames of int16."""
    import pyaec
    aec = pyaec.Aec(FRAME, tail, FS, True)
    to16 = lambda x: np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)  # noqa: E731
    out = [np.asarray(aec.cancel_echo(to16(m), to16(r)), np.float32) / 32767
           for m, r in zip(_frames(mic), _frames(ref))]
    return _pad(np.concatenate(out), len(mic))


def nlms(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """cvstream's nlms_aec block (128-sample blocks, 4096 taps)."""
    from cvstream.blocks.nlms import NlmsAec
    return _whole(NlmsAec(block=128, taps=4096, mu=0.3), mic, ref)


def kalman(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """cvstream's kalman_aec block (32 x 10 ms partitions, 0-500 ms bulk delay): the
    learned canceller's linear stage alone."""
    from cvstream.blocks.kalman_echo import KalmanAec
    return _whole(KalmanAec(), mic, ref)


def neural_kalman(model: str = "builtin:aec_nkf"):
    """A canceller running kalman_aec with its gain from a neural Kalman filter model
    (default the shipped ``aec_nkf``)."""
    from cvstream.blocks.kalman_echo import KalmanAec

    def cancel(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return _whole(KalmanAec(gain_model=model), mic, ref)
    return cancel


def network(path: str, aggressiveness: float | None = None, single_talk: float | None = None,
            linear_floor: float | None = None):
    """A canceller running cvstream's aec block (file mode: delay compensated), at the
    block's default aggressiveness, single-talk level and linear floor unless given."""
    from cvstream.blocks.aec import EchoCanceller
    given = {k: v for k, v in (("aggressiveness", aggressiveness), ("single_talk", single_talk),
                               ("linear_floor", linear_floor)) if v is not None}

    def cancel(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
        return _whole(EchoCanceller(model=path, compensate_delay=True, **given), mic, ref)
    return cancel


def _whole(block, mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """A cvstream block over the whole signals in one call, flushed, padded or cut to the
    microphone's length."""
    out = [block.process(mic, ref), block.flush()]
    return _pad(np.concatenate([o for o in out if o is not None and len(o)]), len(mic))


def learned_model(model: str | None = None) -> str | None:
    """The learned canceller's file (``model``, else the shipped one), None if missing."""
    import os

    from cvstream.models import SHIPPED_DIR
    path = model or str(SHIPPED_DIR / "aec_cv.onnx")
    return path if os.path.exists(path) else None


def takes_aggressiveness(path: str) -> bool:
    from cvstream.contract import read_contract
    return "aggressiveness" in [i.name for i in read_contract(path).inputs]


def cancellers(model: str | None = None) -> dict:
    """The learned canceller (when its model exists) beside the classical ones."""
    path = learned_model(model)
    found = {"aec (cvstream, learned)": network(path)} if path else {}
    return {**found, **CANCELLERS}


def passthrough(mic: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return mic.copy()


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([x, np.zeros(max(0, n - len(x)), np.float32)])[:n]


CANCELLERS = {"microphone (no AEC)": passthrough, "nlms_aec (cvstream)": nlms,
              "kalman_aec (cvstream)": kalman,
              "kalman_aec, NKF gain (cvstream)": neural_kalman(),
              "Speex MDF": speex_mdf, "WebRTC AEC3": webrtc_aec3}


def evaluate(cancellers: dict, scenes_per_scenario: int = 8, seed: int = 2024,
             seconds: float = 6.0, progress=None, erle_by_delay: dict | None = None,
             scenarios=SCENARIOS, generator=None) -> dict:
    """{scenario: {canceller: metrics}} averaged over the held-out scenes; a dict passed as
    ``erle_by_delay`` collects {canceller: [(bulk delay ms, ERLE dB), ...]} of the far-end
    single-talk scenes. ``generator``: the scene function (default ``synth.scene``; the
    independent one: ``independent.scene``)."""
    make = generator or scene
    sums: dict = {s: {name: {} for name in cancellers} for s in scenarios}
    total, done = len(scenarios) * scenes_per_scenario, 0
    for scenario in scenarios:
        for k in range(scenes_per_scenario):
            sig, info = make(np.random.default_rng([seed, SCENARIOS.index(scenario), k]),
                             seconds, scenario)
            for name, cancel in cancellers.items():
                t0 = time.perf_counter()
                out = cancel(sig["mic"], sig["ref"])
                rtf = (time.perf_counter() - t0) / seconds
                m = {"rtf": rtf}
                if scenario == "fst":
                    m["erle_db"] = erle_db(sig["mic"], out)
                    if erle_by_delay is not None:
                        erle_by_delay.setdefault(name, []).append((info.delay_ms,
                                                                   m["erle_db"]))
                else:
                    target, est, lag = aligned(sig["near"], out)
                    m["latency_ms"] = 1000 * lag / FS
                    m["pesq_wb"] = pesq_wb(target, est)
                    m["stoi"] = stoi(target, est)
                    m["si_sdr_db"] = si_sdr_db(target, est)
                for key, value in m.items():
                    if value is not None:
                        sums[scenario][name].setdefault(key, []).append(value)
            done += 1
            if progress is not None:
                progress(done, total)
    return {s: {name: {k: float(np.mean(v)) for k, v in m.items()} for name, m in r.items()}
            for s, r in sums.items()}


def format_table(table: dict) -> str:
    lines = ["scenario | canceller | ERLE dB | PESQ-WB | STOI | SI-SDR dB | RTF | delay ms",
             "---|---|---|---|---|---|---|---"]
    for scenario, rows in table.items():
        for name, m in rows.items():
            cell = lambda k, f: f.format(m[k]) if k in m else "-"  # noqa: E731
            lines.append(f"{scenario} | {name} | {cell('erle_db', '{:.1f}')} | "
                         f"{cell('pesq_wb', '{:.2f}')} | {cell('stoi', '{:.3f}')} | "
                         f"{cell('si_sdr_db', '{:.1f}')} | {cell('rtf', '{:.4f}')} | "
                         f"{cell('latency_ms', '{:.1f}')}")
    return "\n".join(lines)


DELAY_BUCKETS = ((0, 50), (50, 100), (100, 150), (150, 200))


def format_delay_table(erle_by_delay: dict) -> str:
    """Far-end single-talk ERLE per bulk-delay bucket (ms), one row per canceller."""
    head = "canceller | " + " | ".join(f"ERLE {lo}-{hi} ms" for lo, hi in DELAY_BUCKETS)
    lines = [head, "|".join(["---"] * (1 + len(DELAY_BUCKETS)))]
    for name, pairs in erle_by_delay.items():
        cells = []
        for lo, hi in DELAY_BUCKETS:
            vals = [e for d, e in pairs if lo <= d < hi or (hi == 200 and d == 200)]
            cells.append(f"{np.mean(vals):.1f} ({len(vals)})" if vals else "-")
        lines.append(f"{name} | " + " | ".join(cells))
    return "\n".join(lines)


WINDOW = FS // 10     # ERLE over time: 100 ms windows
RECOVERED_DB = 3.0    # re-converged: within this of the ERLE before the change


def erle_curves(cancellers: dict, scenes: int = 8, seed: int = 4242, seconds: float = 12.0,
                progress=None) -> dict:
    """Far-end single talk whose echo path changes half-way: per canceller, the ERLE over
    time in 100 ms windows (power summed over the scenes, far-end silences skipped), the
    ERLE over the 2 s before the change and the last 2 s, and the re-convergence time: from
    the change until the ERLE over 0.5 s comes back within 3 dB of its level before."""
    n_win = int(seconds * FS) // WINDOW
    mic_p = np.zeros(n_win)
    out_p = {name: np.zeros(n_win) for name in cancellers}
    for k in range(scenes):
        sig, _ = scene(np.random.default_rng([seed, k]), seconds, "fst", path_change=True)
        mic = sig["mic"][:n_win * WINDOW].reshape(n_win, WINDOW)
        mic_p += np.sum(mic.astype(np.float64) ** 2, axis=1)
        for name, cancel in cancellers.items():
            out = cancel(sig["mic"], sig["ref"])[:n_win * WINDOW].reshape(n_win, WINDOW)
            out_p[name] += np.sum(out.astype(np.float64) ** 2, axis=1)
        if progress is not None:
            progress(k + 1, scenes)
    t = (np.arange(n_win) + 0.5) * WINDOW / FS
    change = seconds / 2
    active = mic_p > 1e-3 * np.median(mic_p[mic_p > 0])
    result = {}
    for name, p in out_p.items():
        erle = 10 * np.log10(np.maximum(mic_p, 1e-20) / np.maximum(p, 1e-20))
        before = _erle_in(mic_p, p, active & (t >= change - 2) & (t < change))
        after = _erle_in(mic_p, p, active & (t >= seconds - 2))
        smooth = [_erle_in(mic_p, p, active & (t >= c) & (t < c + 0.5))
                  for c in t[t >= change]]
        back = next((i for i, e in enumerate(smooth) if e >= before - RECOVERED_DB), None)
        result[name] = {"t": t, "erle_db": np.where(active, erle, np.nan),
                        "before_db": before, "after_db": after,
                        "reconverge_s": None if back is None else back * WINDOW / FS}
    return result


def _erle_in(mic_p: np.ndarray, out_p: np.ndarray, mask: np.ndarray) -> float:
    return float(10 * np.log10(max(mic_p[mask].sum(), 1e-20) / max(out_p[mask].sum(), 1e-20)))


def format_reconvergence(curves: dict) -> str:
    lines = ["canceller | ERLE 2 s before the change | ERLE last 2 s | re-convergence s",
             "---|---|---|---"]
    for name, c in curves.items():
        again = "never" if c["reconverge_s"] is None else f"{c['reconverge_s']:.1f}"
        lines.append(f"{name} | {c['before_db']:.1f} | {c['after_db']:.1f} | {again}")
    return "\n".join(lines)


def plot_erle(curves: dict, path: str) -> str:
    """ERLE over time of each canceller through the echo-path change, as a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 4))
    for name, c in curves.items():
        ax.plot(c["t"], c["erle_db"], label=name, lw=1.2)
    change = curves[next(iter(curves))]["t"][-1] / 2
    ax.axvline(change, color="k", ls="--", lw=0.8)
    ax.set_xlabel("time (s); echo path changes at the dashed line")
    ax.set_ylabel("ERLE (dB), 100 ms windows")
    ax.set_ylim(-10, 60)
    ax.set_title("far-end single talk, echo-path change: ERLE over time")
    return _save(fig, ax, path)


def _save(fig, ax, path: str) -> str:
    import matplotlib.pyplot as plt
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


LEVELS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)


def aggressiveness_curve(path: str, scenes_per_scenario: int = 8, levels=LEVELS,
                         progress=None, boost: bool = True,
                         linear_floor: float | None = None) -> dict:
    """The learned canceller at each aggressiveness: {level: {scenario: metrics}} on the
    far-end single-talk and double-talk scenes of ``evaluate`` (echo removal against
    near-end quality); with ``boost`` the block's single-talk level at its default,
    without it each level throughout; the block's linear floor unless given."""
    out = {}
    for i, level in enumerate(levels):
        cancel = network(path, level, None if boost else level, linear_floor)
        table = evaluate({"aec": cancel}, scenes_per_scenario, scenarios=("fst", "dt"))
        out[level] = {s: rows["aec"] for s, rows in table.items()}
        if progress is not None:
            progress(i + 1, len(levels))
    return out


def format_aggressiveness(curve: dict) -> str:
    lines = ["aggressiveness | ERLE dB (fst) | PESQ-WB (dt) | STOI (dt) | SI-SDR dB (dt)",
             "---|---|---|---|---"]
    for level, m in curve.items():
        lines.append(f"{level:.2f} | {m['fst']['erle_db']:.1f} | {m['dt']['pesq_wb']:.2f} | "
                     f"{m['dt']['stoi']:.3f} | {m['dt']['si_sdr_db']:.1f}")
    return "\n".join(lines)


def plot_aggressiveness(curve: dict, table: dict, path: str) -> str:
    """The learned canceller's trade as a PNG: far-end single-talk ERLE against double-talk
    PESQ at each aggressiveness, with the other cancellers of ``table`` (``evaluate``'s) as
    points."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    levels = list(curve)
    erle = [curve[a]["fst"]["erle_db"] for a in levels]
    pesq = [curve[a]["dt"]["pesq_wb"] for a in levels]
    ax.plot(erle, pesq, "o-", label="aec (cvstream, learned)")
    for a, x, y in zip(levels, erle, pesq):
        ax.annotate(f"{a:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    for name in table.get("fst", {}):
        if name.startswith("aec ") or "erle_db" not in table["fst"][name]:
            continue
        dt = table.get("dt", {}).get(name, {})
        if dt.get("pesq_wb") is not None:
            ax.plot(table["fst"][name]["erle_db"], dt["pesq_wb"], "s", label=name)
    ax.set_xlabel("ERLE in far-end single talk (dB)")
    ax.set_ylabel("PESQ-WB in double talk")
    ax.set_title("echo removal against near-end quality (labels: aggressiveness)")
    return _save(fig, ax, path)
