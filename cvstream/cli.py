"""``cvstream`` command line: run, validate, blocks."""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from . import __version__
from .errors import CvstreamError, GraphErrors

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _say(msg: str) -> None:
    print(f"cvstream: {msg}", file=sys.stderr)


def _load(path: str, sets: list[str], imports: list[str] = ()):
    from .loader import import_blocks, load_graph, parse_overrides
    for name in imports:
        import_blocks(name)
    graph = load_graph(path, parse_overrides(sets))
    graph.validate()
    return graph


def cmd_validate(args) -> int:
    status = EXIT_OK
    for path in args.graphs:
        try:
            graph = _load(path, args.set, args.imports)
        except CvstreamError as exc:
            print(str(exc), file=sys.stderr)
            status = EXIT_USAGE
            continue
        print(f"{path}: ok ({len(graph.nodes)} blocks, {len(graph.connections)} connections)")
    return status


class _Live:
    """Progress bar / live stats on a terminal (stderr), silent otherwise."""

    def __init__(self, sched, show_stats: bool):
        self.sched = sched
        self.show_stats = show_stats
        self.tty = sys.stderr.isatty()
        self.drawn = 0

    def tick(self) -> None:
        if not self.tty:
            return
        from .stats import format_table
        text = ""
        prog = self.sched.progress()
        if prog:
            done, total = prog
            frac = min(1.0, done / total)
            bar = "#" * int(frac * 30)
            text = f"[{bar:<30}] {100 * frac:5.1f}%  {done}/{total} items"
        if self.show_stats:
            text = format_table(self.sched.snapshot()) + ("\n" + text if text else "")
        self.clear()
        if text:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
            self.drawn = text.count("\n") + 1

    def clear(self) -> None:
        if self.tty and self.drawn:
            sys.stderr.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0


def cmd_run(args) -> int:
    from .scheduler import Scheduler
    try:
        graph = _load(args.graph, args.set, args.imports)
        if args.ray:
            from . import ray_run
            try:
                return ray_run.run(args, graph)
            except CvstreamError as exc:  # deploying: Ray missing, unreachable, no room
                _say(str(exc))
                return EXIT_USAGE
        sched = Scheduler(graph, fuse=False if args.no_fuse else None, workers=args.workers)
    except CvstreamError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    interrupted = on_interrupt(sched)
    live = _Live(sched, args.stats)
    sched.start()
    sched.wait(tick=live.tick)
    live.clear()
    return report(args, sched.snapshot(), sched.failure, len(interrupted) > 1)


def on_interrupt(run, where: str = "") -> list:
    """SIGINT / SIGTERM: the first asks ``run`` to stop (drain, close sinks), a second
    aborts it. Returns the list of signals received so far."""
    interrupted: list = []

    def handle(signum, _frame):
        if interrupted:
            _say(f"second interrupt: aborting{where}")
            run.abort()
        else:
            _say(f"{signal.Signals(signum).name}: draining{where} and closing sinks "
                 "(again to abort)")
            run.stop()
        interrupted.append(signum)

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    return interrupted


def report(args, snap: dict, failure, aborted: bool) -> int:
    """The end of a run: the stats (table, JSON), the failure, the exit status."""
    from .stats import format_table, write_json
    if args.stats:
        print(format_table(snap), file=sys.stderr)
    if args.stats_json:
        try:
            write_json(snap, args.stats_json)
        except OSError as exc:
            _say(f"cannot write stats to {args.stats_json}: {exc.strerror}")
    if failure is not None:
        _say(f"error: {failure}")
        return EXIT_FAILED
    if aborted:
        _say("aborted: outputs may be incomplete")
        return EXIT_FAILED
    return EXIT_OK


def cmd_blocks(args) -> int:
    from .docs import block_schema, graph_schema, render, summary
    from .loader import import_blocks
    from .registry import block_types, lookup
    for name in args.imports:
        import_blocks(name)
    types = block_types()
    if args.type:
        try:
            cls = lookup(args.type)
        except CvstreamError as exc:
            _say(str(exc))
            return EXIT_USAGE
        text = json.dumps(block_schema(cls), indent=2) + "\n" if args.schema else render(cls)
        print(text, end="")
        return EXIT_OK
    if args.schema:
        print(json.dumps(graph_schema(types), indent=2))
        return EXIT_OK
    width = max(len(n) for n in types) + 2
    wclass = max(len(cls.__name__) for cls in types.values()) + 2
    for name, cls in types.items():
        print(f"{name:<{width}}{cls.kind:<8}{cls.__name__:<{wclass}}{summary(cls)}")
    return EXIT_OK


def cmd_grc(args) -> int:
    from .grc import write_all
    from .loader import import_blocks
    from .registry import block_types
    for name in args.imports:
        import_blocks(name)
    try:
        paths = write_all(args.out, block_types())
    except OSError as exc:
        _say(f"cannot write GRC block files to {args.out}: {exc.strerror}")
        return EXIT_USAGE
    print(f"wrote {len(paths)} GRC block files to {args.out} "
          f"(add it to GRC_BLOCKS_PATH)", file=sys.stderr)
    return EXIT_OK


def cmd_keys(args) -> int:
    import zmq.auth
    for suffix in (".key", ".key_secret"):
        if os.path.exists(os.path.join(args.dir, args.name + suffix)):
            _say(f"{os.path.join(args.dir, args.name + suffix)} exists; not overwritten")
            return EXIT_USAGE
    try:
        os.makedirs(args.dir, exist_ok=True)
        public, secret = zmq.auth.create_certificates(args.dir, args.name)
        os.chmod(secret, 0o600)
    except OSError as exc:
        _say(f"cannot write certificates to {args.dir}: {exc.strerror}")
        return EXIT_USAGE
    print(f"public certificate (give it to peers): {public}\n"
          f"secret certificate (keep it; curve_key): {secret}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cvstream", description="Streaming runtime for "
                                     "complex-valued signal processing and inference.")
    parser.add_argument("--version", action="version", version=f"cvstream {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    setter = dict(action="append", default=[], metavar="NAME=VALUE",
                  help="override a variable (NAME=VALUE) or a parameter (BLOCK.PARAM=VALUE)")
    importer = dict(action="append", default=[], dest="imports", metavar="MODULE|FILE.py",
                    help="import a module or Python file that registers blocks")

    p = sub.add_parser("run", help="run a YAML flow graph")
    p.add_argument("graph")
    p.add_argument("--set", **setter)
    p.add_argument("--import", **importer)
    p.add_argument("--stats", action="store_true", help="print per-block stats at exit "
                   "(refreshed live on a terminal)")
    p.add_argument("--stats-json", metavar="PATH", help="write the stats as JSON")
    p.add_argument("--no-fuse", action="store_true", help="run every block in a task of its "
                   "own (no fused chains; for debugging)")
    p.add_argument("--workers", type=int, metavar="N", help="worker threads for the tasks "
                   "(default: one per core; 0: a thread per task)")
    p.add_argument("--ray", metavar="auto|ADDRESS", help="run each fragment of the graph "
                   "(blocks' 'fragment:') as a Ray actor: 'auto' joins or starts a local Ray "
                   "on the loopback address, ADDRESS joins that cluster (needs the ray extra)")
    p.add_argument("--link-curve", choices=("auto", "on", "off"), default="auto",
                   help="with --ray: ZeroMQ CURVE on the links between fragments (auto: on "
                   "for links that leave the loopback address)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("validate", help="check flow graphs without running them")
    p.add_argument("graphs", nargs="+")
    p.add_argument("--set", **setter)
    p.add_argument("--import", **importer)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("blocks", help="list blocks, or document one")
    p.add_argument("type", nargs="?")
    p.add_argument("--import", **importer)
    p.add_argument("--schema", action="store_true", help="print the JSON Schema of a graph "
                   "(of one block's entry with TYPE)")
    p.set_defaults(func=cmd_blocks)

    p = sub.add_parser("grc", help="write GNU Radio Companion block files for every block")
    p.add_argument("--out", required=True, metavar="DIR")
    p.add_argument("--import", **importer)
    p.set_defaults(func=cmd_grc)

    p = sub.add_parser("keys", help="ZeroMQ CURVE certificates for the zmq blocks")
    ksub = p.add_subparsers(dest="keys_command", required=True)
    k = ksub.add_parser("new", help="a new certificate pair NAME.key / NAME.key_secret")
    k.add_argument("name")
    k.add_argument("--dir", default=".", help="where to write them (default: here)")
    k.set_defaults(func=cmd_keys)

    from .models_cli import add_parser
    add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except GraphErrors as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    except CvstreamError as exc:
        _say(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:   # before a run's own handler (loading the graph)
        _say("interrupted")
        return EXIT_FAILED
    except BrokenPipeError:  # e.g. `cvstream blocks --schema | head`: the reader is gone
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
