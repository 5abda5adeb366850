"""The family classifier: the features it reads, its training path, the shipped model,
its calibration and ``unknown`` labels."""
from pathlib import Path

import numpy as np
import pytest

from cvstream.blocks.segmenter import SpectrumSegmenter
from cvstream.models.spectrum import evaluate as ev
from cvstream.models.spectrum.waveforms import CLASSES
from spectrum_helpers import four_signal_scene


def test_family_features_see_shape_and_motion():
    """A chirp's blocks sweep its band; a steady signal's stay: the motion features tell
    them apart, and the profile is its PSD's shape below the peak."""
    from cvstream.blocks.family_features import FAMILY_FEATURES, FAMILY_PROFILE, family_features
    from cvstream.blocks.tracks import Track
    psd = np.ones(1024)
    psd[600:640] = 100.0                       # 20 dB above the noise, 40 bins wide
    lo, hi = (600 - 512 - 0.5) / 1024, (640 - 512 - 0.5) / 1024
    steady = Track(0, 10, lo, hi, 20.0, spectrum=psd, spectra=1, edges=[(lo, hi)] * 8)
    sweep = [(lo + k * (hi - lo) / 8, lo + (k + 1) * (hi - lo) / 8) for k in range(8)]
    chirp = Track(0, 10, lo, hi, 20.0, spectrum=psd, spectra=1, edges=sweep)
    a, b = family_features(steady), family_features(chirp)
    assert a.shape == (FAMILY_FEATURES,) and a.dtype == np.float32
    profile = a[:FAMILY_PROFILE]
    assert profile.max() == 0.0 and profile[0] == -1.0 and profile[FAMILY_PROFILE // 2] == 0.0
    assert a[FAMILY_PROFILE + 1] == pytest.approx(2.0, abs=0.05)   # peak 20 dB / 10
    spread, width = FAMILY_PROFILE + 2, FAMILY_PROFILE + 3
    assert a[spread] == 0.0 and a[width] == pytest.approx(1.0)     # steady, full width
    assert b[spread] > 0.5 and b[width] < 0.2                      # swept, narrow blocks
    assert a[-3] == a[-2] == a[-1] == 0.0                          # no samples kept
    assert family_features(Track(0, 10, lo, hi, 20.0)) is None      # no fine PSD
    # with each block's own fine PSD (rows), a part cut from a track that held a neighbour
    # measures its own motion, not the whole track's edges (here 8 x its band)
    wide = [(lo - 4 * (hi - lo), hi + 3 * (hi - lo))] * 8
    rows = [(k * 8192, psd) for k in range(8)]
    steady = Track(0, 10, lo, hi, 20.0, spectrum=psd * 8, spectra=8, edges=wide, rows=rows)
    sweeping = []
    for k in range(8):
        row = np.ones(1024)
        row[600 + 5 * k:605 + 5 * k] = 100.0
        sweeping.append((k * 8192, row))
    chirp = Track(0, 10, lo, hi, 20.0, spectrum=psd * 8, spectra=8, edges=wide, rows=sweeping)
    a, b = family_features(steady), family_features(chirp)
    assert a[spread] == 0.0 and 0.75 < a[width] < 0.9              # 10-90 % of a flat band
    assert b[spread] > 0.5 and b[width] < 0.2


def test_frequency_features_tell_tone_fm_from_fsk():
    """At 20 dB in-band SNR: FM by one tone has an arcsine-distributed instantaneous
    frequency (4th moment ~1.5) and a line spectrum (its strongest twentieth of bins holds
    most of the power); two-level FSK, rectangular or Gaussian, sits near 1 and spreads its
    power; a GMSK signal's spectrum is a smooth hump. The FM's frequency swings as a
    sinusoid: its strongest line stands out (log10 of peak over mean against ln(bins)
    above 0.7), also where the deviation is 30 times the tone and the PSD shows no lines,
    and in a band of 0.4 % (131 samples in band); FSK's stays under 0.45 at both widths."""
    from cvstream.blocks.family_features import envelope_features
    from cvstream.models.spectrum import variety
    rng = np.random.default_rng(8)
    n = 4 * 8192
    t = np.arange(n)
    waves = {"fm": (np.exp(3j * np.sin(2 * np.pi * 0.002 * t)), 0.016),
             "fm30": (np.exp(30j * np.sin(2 * np.pi * 0.0003 * t)), 0.02),
             "2fsk": (variety.fsk(rng, n, 0.02, levels=2, index=1.0, bt=0), 0.02),
             "gmsk": (variety.fsk(rng, n, 0.02, levels=2, index=0.5, bt=0.3), 0.02)}
    feats = {}
    for name, (wave, bw) in waves.items():
        noise = rng.standard_normal((n, 2)) @ [1, 1j] * np.sqrt(bw * 10 ** (-20 / 10) / 2)
        x = wave + noise
        feats[name] = envelope_features([(k * 8192, x[k * 8192:(k + 1) * 8192])
                                         for k in range(4)], -bw / 2, bw / 2)
    assert 1.4 < feats["fm"][2] < 1.7 and feats["fm"][3] > 0.65
    assert feats["2fsk"][2] < 1.3 and feats["gmsk"][2] < 1.3
    assert feats["gmsk"][3] < 0.5
    assert feats["fm"][4] > 0.7 and feats["fm30"][4] > 0.7
    assert feats["2fsk"][4] < 0.45 and feats["gmsk"][4] < 0.45
    bw, t = 0.004, np.arange(n)
    narrow = {"fm": np.exp(5j * np.sin(2 * np.pi * bw / 12 * t)),
              "2fsk": variety.fsk(rng, n, bw, levels=2, index=1.0, bt=0),
              "gmsk": variety.fsk(rng, n, bw, levels=2, index=0.5, bt=0.3)}
    for name, wave in narrow.items():
        x = wave + rng.standard_normal((n, 2)) @ [1, 1j] * np.sqrt(bw * 10 ** (-20 / 10) / 2)
        line = envelope_features([(k * 8192, x[k * 8192:(k + 1) * 8192]) for k in range(4)],
                                 -bw / 2, bw / 2)[4]
        assert (line > 0.7) if name == "fm" else (line < 0.45), (name, line)
    assert feats["fm30"][3] < feats["2fsk"][3]         # no lines in its PSD
    assert envelope_features([], 0.0, 0.1) == (0.0,) * 5


def test_tracks_that_share_blocks_share_their_ffts_with_the_same_statistics():
    """Two tracks that began in one tile (two signals) hold a copy of its samples each:
    with a kept ``spectra`` each block's FFT is taken once, the statistics are the same to
    the bit as without, and only the last SPECTRA_KEPT blocks' FFTs stay."""
    import scipy.fft

    from cvstream.blocks import family_features as ff
    rng = np.random.default_rng(9)
    x = (rng.standard_normal((6, 8192)) + 1j * rng.standard_normal((6, 8192))).astype(
        np.complex64)
    first = [(k * 8192, x[k].copy()) for k in range(4)]        # two tracks' blocks:
    second = [(k * 8192, x[k].copy()) for k in range(2, 6)]    # tiles 2 and 3 in both
    taken = []
    fft = scipy.fft.fft

    def counting(a, *args, **kw):
        taken.append(len(a))
        return fft(a, *args, **kw)

    spectra = {}
    scipy.fft.fft = counting
    try:
        shared = [ff.envelope_features(first, 0.01, 0.05, spectra),
                  ff.envelope_features(second, -0.2, 0.1, spectra)]
    finally:
        scipy.fft.fft = fft
    assert taken == [4, 4, 2, 4]   # the blocks, then z^2's; the second's 2 new blocks
    assert sorted(spectra) == [k * 8192 for k in range(6)]
    assert shared == [ff.envelope_features(first, 0.01, 0.05),
                      ff.envelope_features(second, -0.2, 0.1)]
    more = [(8192 * (10 + k), x[k % 6]) for k in range(ff.SPECTRA_KEPT)]
    ff.block_spectra(more, spectra)
    assert sorted(spectra) == [t for t, _ in more]   # the oldest went


@pytest.mark.parametrize("kind", ["bpsk", "qpsk", "8psk", "16qam", "64qam"])
def test_envelope_features_tell_qam_from_psk(kind):
    """Through root-raised-cosine pulses and 20 dB of in-band noise, on the samples of a
    track's first tiles: QAM's 4th moment stands above PSK's, BPSK's squared envelope
    holds a line, and the track keeps copies of its first blocks only: SAMPLE_LIMIT samples
    or more, until ENVELOPE_IN_BAND of them fall in its band."""
    from cvstream.blocks.family_features import envelope_features
    from cvstream.blocks.tracks import ENVELOPE_IN_BAND, SAMPLE_LIMIT, Track
    from cvstream.models.spectrum.waveforms import linear
    rng = np.random.default_rng(3)
    wave, bw = linear(rng, 16 * 4096, 0.05, kind)
    x = wave * np.exp(2j * np.pi * 0.1 * np.arange(len(wave)))
    noise = rng.standard_normal((len(x), 2)) @ [1, 1j] * np.sqrt(bw * 10 ** (-20 / 10) / 2)
    track = Track(0, 1, 0.1 - bw / 2, 0.1 + bw / 2, 20.0)
    for k, block in enumerate((x + noise).reshape(16, 4096)):
        track.add_samples(k * 4096, block)
    held = sum(len(x) for _, x in track.samples)
    assert held >= SAMPLE_LIMIT and held * bw >= ENVELOPE_IN_BAND > (held - 4096) * bw
    assert track.envelope_blocks() == track.samples
    kurtosis, line, *_ = envelope_features(track.samples, track.f_low, track.f_high)
    if kind.endswith("qam"):
        assert 1.4 < kurtosis < 1.7 and line < 0.1
    elif kind == "bpsk":
        assert 1.3 < kurtosis < 1.5 and line > 0.3
    else:
        assert kurtosis < 1.35 and line < 0.1


def test_a_part_cut_later_from_a_track_has_its_own_samples():
    """A track that began on noise-like blocks (a neighbour it held first) and later held a
    constant-envelope burst: the part cut over the burst takes its envelope statistics from
    the burst's own blocks (4th moment ~1), not from the track's first blocks (~2). Later
    blocks are kept thinned, never more than LATER_BLOCKS."""
    from cvstream.blocks.family_features import FAMILY_PROFILE, family_features
    from cvstream.blocks.tracks import LATER_BLOCKS, SAMPLE_LIMIT, Track
    rng = np.random.default_rng(4)
    block, count = 8192, 40
    psd = np.ones(1024)
    psd[462:563] = 10.0
    rows = [(k * block, psd) for k in range(count)]
    track = Track(0, count * block, -0.05, 0.05, 20.0, spectrum=psd * count, spectra=count,
                  edges=[(-0.05, 0.05)] * count, seen=[k * block for k in range(count)],
                  rows=rows)
    t = np.arange(block)
    for k in range(count):
        if k < 20:   # Gaussian-like: a 4th moment of 2
            x = rng.standard_normal((block, 2)) @ [1, 1j]
        else:        # an FM burst: constant envelope
            x = np.exp(1j * 3 * np.sin(2 * np.pi * 0.001 * (t + k * block)))
        track.add_samples(k * block, x.astype(np.complex64))
    assert len(track.samples) == SAMPLE_LIMIT // block and len(track.later) <= LATER_BLOCKS
    later = [start // block for start, _ in track.later]
    assert later[0] == SAMPLE_LIMIT // block and later[-1] >= 32 and later == sorted(later)

    def part(a, b):
        return track.span(rows[a:b], a * block, b * block)
    kurtosis = FAMILY_PROFILE + 4                        # E|z|^4 / (E|z|^2)^2 - 1.5
    assert family_features(track)[kurtosis] + 1.5 > 1.8  # its first blocks: noise
    assert family_features(part(24, count))[kurtosis] + 1.5 < 1.1   # the burst's own
    assert family_features(part(8, 20))[kurtosis] + 1.5 > 1.8
    assert {s for s, _ in part(24, count).envelope_blocks()} <= \
        set(range(24 * block, count * block, block))


def test_a_narrow_track_keeps_enough_in_band_samples():
    """A wide track's statistics use its first SAMPLE_LIMIT samples; a narrower one keeps
    more of its first blocks, until ENVELOPE_IN_BAND of its samples fall in its band (2 %
    of the band: 13 blocks of 8192), up to NARROW_SAMPLE_BLOCKS (0.4 % of the band), and
    then its statistics go on into its later, thinned blocks."""
    from cvstream.blocks.tracks import ENVELOPE_IN_BAND, NARROW_SAMPLE_BLOCKS, SAMPLE_LIMIT, Track
    block = 8192
    x = np.ones(block, np.complex64)
    tracks = {width: Track(0, 1, 0.0, width, 10.0) for width in (0.1, 0.02, 0.004)}
    for k in range(40):
        for track in tracks.values():
            track.add_samples(k * block, x)

    def used(track):
        return [t // block for t, _ in track.envelope_blocks()]
    assert used(tracks[0.1]) == list(range(SAMPLE_LIMIT // block))
    first = int(np.ceil(ENVELOPE_IN_BAND / (block * 0.02)))
    assert first == 13 and used(tracks[0.02]) == list(range(first))
    narrow = tracks[0.004]
    assert len(narrow.samples) == NARROW_SAMPLE_BLOCKS
    assert used(narrow)[:NARROW_SAMPLE_BLOCKS] == list(range(NARROW_SAMPLE_BLOCKS))
    assert used(narrow) == sorted(used(narrow))
    assert len(used(narrow)) == NARROW_SAMPLE_BLOCKS + len(narrow.later)   # all it holds


def test_family_classifier_training_path_and_block(tmp_path):
    """A tiny run of the family training exports a classifier the block uses; a model of
    another task is refused in one line naming the parameter."""
    pytest.importorskip("torch")
    from cvstream.blocks.segmenter import SpectrumSegmenter
    from cvstream.errors import ParamError
    from cvstream.models import resolve_model
    from cvstream.contract import read_contract
    from cvstream.models.spectrum import family
    result = family.train_and_export(str(tmp_path), steps=20, scenes=4,
                                     segmenter=resolve_model("builtin:spectrum_segmenter"))
    assert result["examples"] >= 4 and 0 <= result["accuracy"] <= 1
    assert read_contract(str(tmp_path / "spectrum_family.onnx")).postprocess == {
        "temperature": result["temperature"]}
    block = SpectrumSegmenter(family=str(tmp_path / "spectrum_family.onnx"))
    x, _ = four_signal_scene()
    block.process(x)
    block.flush()
    assert {m["label"] for m in block.take_messages()} <= set(CLASSES) | {"unknown"}
    with pytest.raises(ParamError, match="family.*needs a spectrum_family model"):
        SpectrumSegmenter(family="builtin:iq_denoiser")


def test_shipped_family_classifier_names_the_families():
    """The shipped classifier's contract and held-out accuracy, and its labels on the
    four-signal scene (16QAM may pass for PSK: the two share one spectral shape)."""
    from cvstream.blocks.family_features import FAMILY_FEATURES
    from cvstream.contract import read_contract
    from cvstream.models import resolve_model
    from cvstream.models.spectrum.segmenter import detector
    c = read_contract(resolve_model("builtin:spectrum_family"))
    assert c.task == "spectrum_family" and c.class_names == CLASSES
    assert c.inputs[0].item_shape == [FAMILY_FEATURES]
    assert c.evaluation["accuracy"] > 0.6 and c.evaluation["held_out"] > 300
    x, truth = four_signal_scene()
    pred = detector("builtin:spectrum_segmenter")(x)
    labels = {i: pred[j].label for i, j in ev.match(truth, pred)}
    assert (labels[0], labels[2], labels[3]) == ("psk", "ofdm", "analog")
    assert labels[1] in ("qam", "psk")
    votes = detector("builtin:spectrum_segmenter", family="")(x)
    assert {b.label for b in votes} <= set(CLASSES)


def test_temperature_fit_and_reliability():
    """The temperature fit finds the one that generated the labels; the reliability bins
    and the expected calibration error count as they say."""
    from cvstream.models.spectrum.evaluate import expected_calibration_error, reliability
    from cvstream.blocks.family_features import family_probabilities
    from cvstream.models.spectrum.family import calibration_error, fit_temperature
    rng = np.random.default_rng(4)
    logits = 3 * rng.standard_normal((20000, 7))
    p = family_probabilities(logits, 2.5)
    y = np.array([rng.choice(7, p=row) for row in p])
    assert fit_temperature(logits, y) == pytest.approx(2.5, rel=0.05)
    assert calibration_error(logits, y, 2.5) < 0.02 < calibration_error(logits, y, 1.0)
    bins = reliability([(0.95, True)] * 9 + [(0.95, False), (0.31, False), (1.0, True)])
    assert bins[9] == [11, pytest.approx(10.5), 10] and bins[3] == [1, 0.31, 0]
    assert sum(n for n, _, _ in bins) == 12
    assert expected_calibration_error(bins) == pytest.approx((0.5 + 0.31) / 12)


def test_unsure_family_labels_are_unknown(tmp_path):
    """Below min_label_confidence the label is unknown, with the best family as the guess;
    the calibrated confidence rides along either way; the evaluation reads both and draws
    the reliability diagram."""
    from cvstream.models.spectrum.evaluate import boxes_from_messages, format_reliability
    x, truth = four_signal_scene()
    runs = {}
    for level in (0.0, 1.0):
        block = SpectrumSegmenter(min_label_confidence=level)
        block.process(x)
        block.flush()
        runs[level] = block.take_messages()
    assert len(runs[0.0]) == len(runs[1.0]) >= 4
    for sure, unsure in zip(runs[0.0], runs[1.0]):
        assert sure["label"] in CLASSES and "label_guess" not in sure
        assert 1 / len(CLASSES) <= sure["label_confidence"] <= 1
        assert unsure["label"] == "unknown" and unsure["label_guess"] == sure["label"]
        assert unsure["label_confidence"] == sure["label_confidence"]
    boxes = boxes_from_messages(runs[1.0])
    assert [b.guess for b in boxes] == [m["label"] for m in runs[0.0]]
    tally = ev.Tally()
    tally.add(truth, boxes, len(x))
    row = tally.row()
    assert row["label_accuracy"] == 0 and sum(n for n, _, _ in row["label_reliability"]) == 4
    text = format_reliability({"10..20 dB": {"segmenter": row}})
    assert "(4; expected calibration error" in text and len(text.splitlines()) == 13
    png = ev.plot_reliability({"project": {"10..20 dB": {"segmenter": row}}},
                              str(tmp_path / "reliability.png"))
    assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
