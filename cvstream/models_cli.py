"""``cvstream models``: list, info, export, train, eval."""
from __future__ import annotations

import argparse
import importlib
import os
import importlib.util
import sys
from pathlib import Path

from .errors import CvstreamError
from .progress import progress_printer

#: trainable model families: name -> module (in cvstream.models)
FAMILIES = {"iq_denoiser": "cvstream.models.demo.denoiser",
            "spectrum_segmenter": "cvstream.models.spectrum.segmenter",
            "spectrum_family": "cvstream.models.spectrum.family",
            "aec_cv": "cvstream.models.aec.network",
            "aec_nkf": "cvstream.models.aec.nkf",
            "radar": "cvstream.models.radar.train"}


def _family(name: str):
    if name not in FAMILIES:
        raise CvstreamError(f"unknown model family '{name}' (families: {', '.join(FAMILIES)})")
    try:
        return importlib.import_module(FAMILIES[name])
    except ImportError as exc:
        raise CvstreamError(f"training needs the train extra (pip install "
                            f"'cvstream[train]'): {exc}") from None


def cmd_list(args) -> int:
    from cvstream.contract import read_contract
    from cvstream.models import shipped_models
    rows = [(f"builtin:{name}", str(path)) for name, path in shipped_models().items()]
    for path in sorted(Path(args.dir).glob("*.onnx")):
        rows.append((str(path), str(path)))
    if not rows:
        print("no models found")
    for label, path in rows:
        try:
            c = read_contract(path)
            rate = c.sample_rate if isinstance(c.sample_rate, str) else f"{c.sample_rate:g} Hz"
            print(f"{label:<36} {c.task:<16} chunk {c.chunk:<6} history {c.history:<5} "
                  f"{rate:<12} {c.quantization}")
        except CvstreamError as exc:
            print(f"{label:<36} (unusable: {exc})")
    return 0


def cmd_info(args) -> int:
    from cvstream.contract import read_contract
    from cvstream.models import resolve_model
    path = resolve_model(args.model)
    print(f"file      {path}")
    print(read_contract(path).summary())
    return 0


def load_builder(spec: str):
    """``path/to/file.py:function`` or ``package.module:function``."""
    target, _, func = spec.rpartition(":")
    if not target or not func:
        raise CvstreamError(f"'{spec}': expected FILE.py:FUNCTION or MODULE:FUNCTION")
    if target.endswith(".py"):
        if not Path(target).is_file():
            raise CvstreamError(f"'{target}' does not exist")
        mod_spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        module = importlib.util.module_from_spec(mod_spec)
        mod_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(target)
    if not hasattr(module, func):
        raise CvstreamError(f"'{target}' has no function '{func}'")
    return getattr(module, func)


def cmd_export(args) -> int:
    import numpy as np

    from cvstream.models.export import check_streaming, export_model, quantize_int8
    result = load_builder(args.builder)()
    if not (isinstance(result, tuple) and len(result) == 2):
        raise CvstreamError(f"{args.builder} must return (model, contract)")
    model, contract = result
    if args.weights:
        import torch
        model.load_state_dict(torch.load(args.weights, map_location="cpu"))
    report = export_model(model, contract, args.out, opset=args.opset)
    print(report)
    try:
        print(check_streaming(model, args.out))
    except CvstreamError as exc:
        if not args.force:
            os.remove(args.out)
            raise
        print(f"warning: {exc}", file=sys.stderr)
    if args.int8:
        calib = np.load(args.int8)
        batches = ([np.ascontiguousarray(calib[i:i + 1])] for i in range(len(calib)))
        out = args.out.replace(".onnx", "") + ".int8.onnx"
        quantize_int8(args.out, out, batches)
        print(f"{out}: int8 QDQ, calibrated on {len(calib)} examples")
    return 0


def cmd_train(args) -> int:
    fam = _family(args.family)
    import torch
    torch.set_num_threads(args.threads)
    from cvstream.models import SHIPPED_DIR
    from cvstream.models.export import export_model
    show = progress_printer(f"training {args.family}")
    if (args.config or args.kind) and args.family != "radar":
        raise CvstreamError("--config and --kind apply to the radar family only")
    if hasattr(fam, "train_and_export"):  # families that train several models together
        out_dir = args.out or str(SHIPPED_DIR)
        extra = {"steps": args.steps} if args.steps else {}
        if args.config:
            extra["configs"] = args.config
        if args.kind:
            extra["kinds"] = tuple(args.kind)
        table = fam.train_and_export(out_dir, seed=args.seed, progress=show, **extra)
        print(f"wrote {fam.NAME} models to {out_dir}")
        print(fam.format_table(table))
        return 0
    model = fam.train(seed=args.seed, progress=show,
                      **({"steps": args.steps} if args.steps else {}))
    out = args.out or str(SHIPPED_DIR / f"{fam.NAME}.onnx")
    export_model(model, fam.contract(), out)
    table = fam.evaluate(fam.run_onnx(out))
    export_model(model, fam.contract(table), out)  # again, with the evaluation inside
    print(f"wrote {out}")
    print(fam.format_table(table))
    return 0


def cmd_synth_aec(args) -> int:
    from cvstream.models.aec.synth import write_dataset
    write_dataset(args.out, args.count, args.seed, args.seconds,
                  progress=progress_printer("synthesizing"))
    print(f"wrote {args.count} scenes (mic, ref, near WAV) and manifest.json to {args.out}")
    return 0


def cmd_eval_aec(args) -> int:
    from cvstream.models.aec import evaluate as ev
    if args.generator != "independent":
        cmd_eval_aec_project(args)
    if args.generator != "project":
        from cvstream.models.aec.independent import scene
        table = ev.evaluate(ev.cancellers(args.model), scenes_per_scenario=args.scenes,
                            progress=progress_printer("evaluating (independent scenes)"),
                            generator=scene)
        _section("scenes of the independent generator (statistical rooms, other "
                 "loudspeakers and noise; never trained on):", ev.format_table(table))
    return 0


def cmd_eval_aec_project(args) -> None:
    from cvstream.models.aec import evaluate as ev
    by_delay: dict = {}
    table = ev.evaluate(ev.cancellers(args.model), scenes_per_scenario=args.scenes,
                        progress=progress_printer("evaluating"), erle_by_delay=by_delay)
    print(ev.format_table(table))
    _section("far-end single talk, ERLE dB by bulk delay (scenes):",
             ev.format_delay_table(by_delay))
    few = max(1, args.scenes // 4)
    curves = ev.erle_curves(ev.cancellers(args.model), scenes=few,
                            progress=progress_printer("echo-path change"))
    _section("far-end single talk, echo path changed half-way (12 s scenes):",
             ev.format_reconvergence(curves))
    if args.plot:
        print(f"ERLE over time: {ev.plot_erle(curves, args.plot)}")
    path = ev.learned_model(args.model)
    if path is not None and ev.takes_aggressiveness(path):
        curve = ev.aggressiveness_curve(path, scenes_per_scenario=few,
                                        progress=progress_printer("aggressiveness"))
        _section("the learned canceller's aggressiveness (far-end single talk, double talk):",
                 ev.format_aggressiveness(curve))
        if args.plot_trade:
            print(f"the trade: {ev.plot_aggressiveness(curve, table, args.plot_trade)}")


def _section(title: str, text: str) -> None:
    print()
    print(title)
    print(text)


def cmd_synth(args) -> int:
    from cvstream.models.spectrum.synth import SceneConfig, write_dataset
    cfg = SceneConfig(samples=args.samples, max_signals=args.max_signals,
                      snr_db=(args.snr_min, args.snr_max), variety=args.variety)
    paths = write_dataset(args.out, args.count, args.seed, args.rate, cfg,
                          progress=progress_printer("synthesizing"))
    print(f"wrote {len(paths)} SigMF recordings and manifest.json to {args.out}")
    return 0


def cmd_eval_spectrum(args) -> int:
    from cvstream.models import SHIPPED_DIR
    from cvstream.models.spectrum.evaluate import (format_labels, format_reliability,
                                                   format_side_by_side, format_table)
    from cvstream.models.spectrum.segmenter import detectors
    found = detectors(args.model or str(SHIPPED_DIR), narrow=args.narrow,
                      variants=args.variant)
    tables = {}
    if args.generator in ("project", "both"):
        from cvstream.models.spectrum.evaluate import evaluate
        tables["project"] = evaluate(found, scenes_per_bucket=args.scenes,
                                     floor_tilt_db=args.floor_tilt,
                                     progress=progress_printer("evaluating (project scenes)"))
        print("## scenes from cvstream's synthesizer\n")
        print(format_table(tables["project"]) + "\n")
        print(format_labels(tables["project"]) + "\n")
        print(format_reliability(tables["project"]) + "\n")
    if args.generator in ("gnuradio", "both"):
        from cvstream.models.spectrum.independent import evaluate as evaluate_gr
        from cvstream.models.spectrum.independent import format_extras
        tables["gnuradio"], extras = evaluate_gr(
            found, per_bucket=args.gr_scenes, seeds=args.gr_seed,
            progress=progress_printer("evaluating (GNU Radio recordings)"))
        print("## recordings made by GNU Radio's blocks (never trained on)\n")
        print(format_table(tables["gnuradio"]) + "\n")
        print(format_labels(tables["gnuradio"]) + "\n")
        print(format_reliability(tables["gnuradio"]) + "\n")
        print(format_extras(extras) + "\n")
    if len(tables) == 2:
        print("## side by side\n")
        print(format_side_by_side(tables))
    if args.plot:
        from cvstream.models.spectrum.evaluate import plot_reliability
        print(f"\nfamily reliability: {plot_reliability(tables, args.plot)}")
    return 0


def cmd_synth_radar(args) -> int:
    from cvstream.models.radar.synth import SceneConfig, write_dataset
    scene = SceneConfig(max_objects=args.max_objects, snr_db=(args.snr_min, args.snr_max))
    out = write_dataset(args.out, args.config, args.count, args.seed, scene,
                        progress=progress_printer("synthesizing"))
    print(f"wrote {args.count} sweeps (sweeps.npy), ground truth (truth.npy), config.json and "
          f"meta.json to {out}")
    return 0


def int_list(text: str, what: str, least: int) -> tuple:
    """"60,500" -> (60, 500): comma-separated integers of at least ``least``, in order,
    repeats dropped; an argparse error naming ``what`` otherwise."""
    try:
        values = tuple(dict.fromkeys(int(v) for v in text.split(",")))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of "
                                         f"{what}") from None
    if min(values) < least:
        raise argparse.ArgumentTypeError(f"{text!r}: {what} must be >= {least}")
    return values


def fista_budgets(text: str) -> tuple:
    """argparse type: "500,60" -> (60, 500), each a positive count."""
    return tuple(sorted(int_list(text, "iteration counts", 1)))


def block_params(text: str) -> dict:
    """argparse type: "weak_tones=false,hold=4" -> {"weak_tones": False, "hold": 4}, values
    read as ``--set`` reads them (``loader.parse_overrides``)."""
    from .loader import parse_overrides
    try:
        return parse_overrides(text.split(","))
    except CvstreamError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected PARAM=VALUE[,PARAM=VALUE...]"
                                         ) from None


def seed_list(text: str) -> tuple:
    """argparse type: "99,555" -> (99, 555), each a seed >= 0."""
    return int_list(text, "seeds", 0)


def cmd_eval_radar(args) -> int:
    from cvstream.models import resolve_model
    from cvstream.models.radar.evaluate import CONDITIONS, evaluate, format_table, onnx_imager
    from cvstream.models.radar.sparse import BUDGETS
    from cvstream.models.radar.train import KINDS, model_name
    budgets = args.fista_iterations or BUDGETS
    tables = {}
    for config in args.config or ["small", "published"]:
        imagers = {kind: onnx_imager(resolve_model(
            f"{args.model}/{model_name(kind, config)}.onnx" if args.model
            else f"builtin:{model_name(kind, config)}")) for kind in KINDS}
        common = dict(fista_budgets=budgets, fista=not args.no_fista,
                      choosing=lambda label, config=config:
                      progress_printer(f"{label}, {config}"))
        for shapes in (("seen", "unseen") if args.shapes == "both" else (args.shapes,)):
            tables[(config, shapes)] = evaluate(
                config, imagers, args.scenes, shapes=shapes, **common,
                progress=progress_printer(f"evaluating {config}, {shapes} shapes"))
        for condition in (c for c in CONDITIONS if c and args.conditions):
            tables[(config, "unseen", condition)] = evaluate(
                config, imagers, args.scenes, shapes="unseen", condition=condition, **common,
                progress=progress_printer(f"evaluating {config}, unseen shapes, {condition}"))
    print(format_table(tables))
    return 0


GENERATORS = {"spectrum": ("project", "gnuradio", "both"),
              "aec": ("project", "independent", "both")}


def cmd_eval(args) -> int:
    allowed = GENERATORS.get(args.family, ("project",))
    if args.generator not in allowed:
        raise CvstreamError(f"--generator {args.generator}: {args.family} scenes come from "
                            f"{' or '.join(allowed)}")
    if args.variant and args.family != "spectrum":
        raise CvstreamError("--variant applies to the spectrum family only")
    if args.family == "radar":
        return cmd_eval_radar(args)
    if args.family == "spectrum":
        return cmd_eval_spectrum(args)
    if args.family == "aec":
        return cmd_eval_aec(args)
    fam = _family(args.family)
    from cvstream.models import resolve_model
    path = resolve_model(args.model or f"builtin:{fam.NAME}")
    print(fam.format_table(fam.evaluate(fam.run_onnx(path))))
    return 0


def add_parser(sub) -> None:
    models = sub.add_parser("models", help="list, inspect, export, train and evaluate models")
    msub = models.add_subparsers(dest="models_command", required=True)
    p = msub.add_parser("list", help="shipped models and the .onnx files in --dir")
    p.add_argument("--dir", default=".")
    p.set_defaults(func=cmd_list)
    p = msub.add_parser("info", help="print a model's contract")
    p.add_argument("model", help="PATH.onnx or builtin:NAME")
    p.set_defaults(func=cmd_info)
    p = msub.add_parser("export", help="export your own torch model with a contract")
    p.add_argument("builder", help="FILE.py:FUNCTION or MODULE:FUNCTION returning "
                   "(model, contract dict)")
    p.add_argument("--out", required=True)
    p.add_argument("--weights", help="a state_dict (.pt) to load first")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--int8", metavar="CALIB.npy", help="also write an int8 QDQ model, "
                   "calibrated on these inputs (first axis: examples)")
    p.add_argument("--force", action="store_true", help="keep a model whose chunked output "
                   "differs from whole-signal inference (a warning instead of an error)")
    p.set_defaults(func=cmd_export)
    p = msub.add_parser("train", help="retrain and re-export a shipped model from a seed")
    p.add_argument("family", choices=sorted(FAMILIES))
    p.add_argument("--steps", type=int, default=None, help="default: the family's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="default: the shipped model's file (or directory)")
    p.add_argument("--config", action="append", help="radar: train only this configuration "
                   "(repeatable; default small and published)")
    p.add_argument("--kind", action="append",
                   choices=["deep2s", "complex", "unrolled", "support"],
                   help="radar: train only this network (repeatable; default all four)")
    p.set_defaults(func=cmd_train)
    p = msub.add_parser("eval", help="print a model family's evaluation table")
    p.add_argument("family", choices=["iq_denoiser", "spectrum", "aec", "radar"])
    p.add_argument("--model", help="default: the shipped model (spectrum, radar: a directory)")
    p.add_argument("--scenes", type=int, default=32,
                   help="scenes per SNR bucket (spectrum), per scenario (aec) or per "
                   "configuration (radar)")
    p.add_argument("--config", action="append", help="radar: a configuration to evaluate "
                   "(repeatable; default small and published)")
    p.add_argument("--shapes", choices=["seen", "unseen", "both"], default="both",
                   help="radar: targets of the training's shape families, of families it "
                   "never saw (tori, hollow cylinders, cones, bead helices, rod crosses, "
                   "rings), or both")
    p.add_argument("--conditions", action="store_true",
                   help="radar: also the unseen shapes at 10/20/30/40 dB measurement SNR and "
                   "with antennas displaced by up to +-1 mm")
    p.add_argument("--fista-iterations", type=fista_budgets, metavar="N[,N...]",
                   help="radar: FISTA's iteration budgets, one row per solver and budget "
                   "(default 60,500)")
    p.add_argument("--no-fista", action="store_true",
                   help="radar: leave out the FISTA rows (seconds a frame; the other rows "
                   "do not depend on them)")
    p.add_argument("--generator", choices=["project", "gnuradio", "independent", "both"],
                   default="project",
                   help="whose scenes: spectrum: gnuradio (recordings made by GNU Radio's "
                   "own blocks, never trained on); aec: independent (a second scene "
                   "generator, never trained on); both: the project's and the other")
    p.add_argument("--plot", metavar="PNG", help="aec: draw the ERLE over time through the "
                   "echo-path change; spectrum: the family classifier's reliability "
                   "diagram (one curve per generator)")
    p.add_argument("--plot-trade", metavar="PNG", help="aec: draw ERLE against double-talk "
                   "PESQ at each aggressiveness, beside the other cancellers")
    p.add_argument("--narrow", action="store_true", help="spectrum: add a row for the "
                   "segmenter with its fine view for narrow signals (narrow: true)")
    p.add_argument("--variant", type=block_params, action="append", default=[],
                   metavar="PARAM=VALUE[,PARAM=VALUE...]",
                   help="spectrum: add a row for the segmenter with these block parameters, "
                   "values as a graph's YAML reads them (e.g. weak_tones=false: what a "
                   "setting costs or buys on the same recordings); repeatable")
    p.add_argument("--gr-scenes", type=int, default=12,
                   help="spectrum: GNU Radio recordings per SNR bucket")
    p.add_argument("--floor-tilt", type=float, default=0.0, metavar="DB",
                   help="spectrum: the project's scenes with a noise floor tilted across the "
                   "band by up to +-DB (a receiver's filters); 0: white")
    p.add_argument("--gr-seed", type=seed_list, default=(2026,), metavar="SEED[,SEED...]",
                   help="spectrum: seed of the GNU Radio recordings (2026: the README's "
                   "test set; another seed gives another set; several, comma-separated: "
                   "their sets pooled in one table)")
    p.set_defaults(func=cmd_eval)
    p = msub.add_parser("synth", help="write a synthetic dataset")
    synth = p.add_subparsers(dest="synth_kind", required=True)
    p = synth.add_parser("spectrum", help="wideband IQ scenes as SigMF recordings")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=20e6, help="sample rate written (Hz)")
    p.add_argument("--samples", type=int, default=262144, help="samples per recording")
    p.add_argument("--max-signals", type=int, default=5)
    p.add_argument("--snr-min", type=float, default=-10.0, help="in-band SNR range (dB)")
    p.add_argument("--snr-max", type=float, default=30.0)
    p.add_argument("--variety", action="store_true",
                   help="the training scenes: randomized emitters (pulse shapes, numerology, "
                   "indices, messages), LoRa-like, DSSS, NBFM, AIS/ADS-B-like bursts, hopping, "
                   "and receiver habits (tilted floor, AGC steps, ADC quantization)")
    p.set_defaults(func=cmd_synth)
    p = synth.add_parser("aec", help="echo-cancellation scenes as WAV triples")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=6.0)
    p.set_defaults(func=cmd_synth_aec)
    p = synth.add_parser("radar", help="near-field MIMO radar sweeps with ground truth")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--config", default="small", help="small, published or a YAML/JSON file")
    p.add_argument("--count", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-objects", type=int, default=3)
    p.add_argument("--snr-min", type=float, default=20.0, help="measurement SNR range (dB)")
    p.add_argument("--snr-max", type=float, default=40.0)
    p.set_defaults(func=cmd_synth_radar)
