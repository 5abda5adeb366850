"""``cvstream run graph.yml --ray auto|ADDRESS``: each fragment of the graph runs as a Ray
actor, each replicated block's copies as Ray actors of their own.

Ray places, launches, watches and restarts the actors; the stream itself never goes
through Ray between fragments: links are ZeroMQ sockets (``fragments.py``). A replicated
block's calls do go through Ray (its object store carries the arrays):
``ray_replicas.RayReplicas`` deals them to the least-loaded live copy and replays the
calls of a copy that died. A fragment of stateless sync and rate blocks that dies is
restarted by Ray and started again on its links (bound ends at the same addresses): the
stream's offsets go on from where its senders are, so what it held is a gap counted
downstream as ``lost_items``. Any other fragment holds state a restart would lose (a file
position, open detections): its death fails the run with one line naming it.

Only this module and ``ray_replicas.py`` import Ray (the ``ray`` extra).
"""
from __future__ import annotations

import os
import importlib
import shutil
import tempfile
import time

from .errors import CvstreamError
from .fragments import LinkEnd, bind_address, fragment_graph, plan, write_public_certificate

LOOPBACK = "127.0.0.1"
NAMESPACE = "cvstream"
#: s for Ray to place and start every actor
PLACE_TIMEOUT = float(os.environ.get("CVSTREAM_RAY_PLACE_TIMEOUT", "60"))
BIND_TIMEOUT = 20.0  # s for a fragment's bound link ends to report their ports


def _ray(address: str):
    """Import Ray, joining the cluster at ``address`` or ('auto') a local one, started here
    and bound to the loopback address when none runs. Returns (ray, started_here)."""
    host = LOOPBACK if address == "auto" else address.rpartition(":")[0] or address
    if host in ("127.0.0.1", "localhost"):
        # Ray turns a loopback address into the machine's own; this keeps it on loopback
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise CvstreamError("--ray needs Ray: pip install 'cvstream[ray]'") from None
    quiet = dict(logging_level="WARNING", log_to_driver=True, configure_logging=True)
    if ray.is_initialized():
        return ray, False
    if address != "auto":
        try:
            ray.init(address=address, namespace=NAMESPACE, **quiet)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise CvstreamError(f"--ray {address}: cannot join the Ray cluster: "
                                f"{str(exc).splitlines()[0]}") from None
        return ray, False
    running = _local_cluster()
    if running:
        ray.init(address=running, namespace=NAMESPACE, **quiet)
        return ray, False
    ray.init(namespace=NAMESPACE, _node_ip_address=LOOPBACK, include_dashboard=False,
             num_cpus=os.cpu_count(), **quiet)
    return ray, True


def _local_cluster() -> str | None:
    """The address of a Ray started on this machine on the loopback address (``ray start
    --head --node-ip-address 127.0.0.1``) that answers, if there is one."""
    import socket
    path = os.path.join(tempfile.gettempdir(), "ray", "ray_current_cluster")
    try:
        with open(path, encoding="utf-8") as fh:
            address = fh.read().strip()
    except OSError:
        return None
    host, _, port = address.rpartition(":")
    if host not in ("127.0.0.1", "localhost") or not port.isdigit():
        return None
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return None
    return address


def _prepare_process(cwd: str, imports: list[str]) -> None:
    """An actor's process: the driver's working directory (relative paths in the graph) and
    the modules that register blocks."""
    if os.path.isdir(cwd):
        os.chdir(cwd)
    from .loader import import_blocks
    importlib.import_module("cvstream.blocks")  # registers the block library
    for name in imports:
        import_blocks(name)


class FragmentActor:
    """One fragment: its part of the graph on a Scheduler, links as ZeroMQ blocks."""

    def __init__(self, cwd: str, imports: list[str], fragment: str, run_id: str):
        import zmq.auth
        _prepare_process(cwd, imports)
        self.fragment, self.run_id, self.imports, self.cwd = fragment, run_id, imports, cwd
        # one folder per run and fragment on its node: a fragment Ray restarts there keeps
        # its CURVE key, so its peers still admit it
        self.dir = key_folder(run_id, fragment)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        self.public = os.path.join(self.dir, "self.key")
        self.secret = os.path.join(self.dir, "self.key_secret")
        if not os.path.exists(self.secret):
            zmq.auth.create_certificates(self.dir, "self")
        self.sched = None
        self.error: str | None = None
        self.started = False  # a copy Ray restarted is a fresh one: not started

    def hello(self) -> dict:
        import ray
        import zmq.auth
        public, _ = zmq.auth.load_certificate(self.public)
        return {"host": ray.util.get_node_ip_address(), "public_key": public.decode(),
                "pid": os.getpid()}

    def start(self, text: str, source: str, overrides: dict, p, ends: dict,
              peer_keys: dict) -> dict:
        """Build and start this fragment; returns the endpoints its bound link ends got."""
        from .loader import load_graph_text
        from .scheduler import Scheduler
        self.started = True
        try:
            graph = load_graph_text(text, source, dict(overrides))
            graph.validate()
            for link_id, end in ends.items():
                if end.curve_key == "self":
                    link = next(k for k in p.links if k.id == link_id)
                    peer = link.dst_fragment if link.src_fragment == self.fragment \
                        else link.src_fragment
                    end.curve_key = self.secret
                    folder = os.path.join(self.dir, link_id)
                    cert = write_public_certificate(folder, peer, peer_keys[peer])
                    end.curve_peer = folder if end.bind else cert
            sub = fragment_graph(graph, p, self.fragment, ends)
            resources = p.resources.get(self.fragment, {})
            from .ray_replicas import RayReplicas
            self.sched = Scheduler(sub, replicas=lambda block, n: RayReplicas(
                block, n, resources, self.run_id, self.cwd, self.imports))
        except CvstreamError as exc:
            self.error = f"fragment '{self.fragment}': {exc}"
            return {}
        self.sched.start()
        bound = {lid: sub.nodes[_end_block(p, lid, self.fragment)].block
                 for lid, end in ends.items() if end.bind}
        deadline = time.monotonic() + BIND_TIMEOUT
        while any(getattr(b, "endpoint", None) is None for b in bound.values()):
            if self.sched.failure is not None or time.monotonic() > deadline:
                self.error = (f"fragment '{self.fragment}': "
                              f"{self.sched.failure or 'link ends did not bind in time'}")
                self.sched.abort()
                return {}
            time.sleep(0.01)
        return {lid: b.endpoint for lid, b in bound.items()}

    def poll(self) -> dict:
        sched = self.sched
        failure = self.error or (str(sched.failure) if sched and sched.failure else None)
        return {"running": bool(sched and sched.running()), "failure": failure,
                "progress": sched.progress() if sched else None, "started": self.started}

    def stop(self) -> None:
        if self.sched is not None:
            self.sched.stop()

    def abort(self) -> None:
        if self.sched is not None:
            self.sched.abort()

    def snapshot(self) -> dict:
        if self.sched is None:
            return {"blocks": {}, "buffers": {}}
        return self.sched.snapshot()

    def cleanup(self) -> None:
        """The run is over: remove this fragment's key folder (its secret key with it)."""
        shutil.rmtree(self.dir, ignore_errors=True)


def key_folder(run_id: str, fragment: str) -> str:
    """Where a fragment keeps its CURVE key pair on its node, for one run."""
    return os.path.join(tempfile.gettempdir(), f"cvstream-{run_id}-{fragment}")


def _end_block(p, link_id: str, fragment: str) -> str:
    link = next(k for k in p.links if k.id == link_id)
    return link.sender() if link.src_fragment == fragment else link.receiver()


def fragment_name(run_id: str, fragment: str) -> str:
    """The Ray actor name of a fragment (namespace ``cvstream``)."""
    return f"{run_id}:{fragment}"


def _say_link(link, endpoint: str, server_key: str | None) -> None:
    """Where a link was bound, and with CURVE the server's public key (peers need it)."""
    from .cli import _say
    other = link.dst_fragment if link.binder == link.src_fragment else link.src_fragment
    curve = f" (CURVE, server key {server_key})" if server_key else ""
    _say(f"{link.id} {link.src} -> {link.dst}: '{link.binder}' bound {endpoint}, '{other}' "
         f"connects{curve}")


def _actor_options(resources: dict) -> dict:
    """Ray options from a fragment's ``cpus``, ``memory``, ``gpus`` and ``labels``."""
    options = {"num_cpus": resources.get("cpus", 0), "num_gpus": resources.get("gpus", 0)}
    if resources.get("memory"):
        options["memory"] = int(resources["memory"])
    if resources.get("labels"):
        options["label_selector"] = dict(resources["labels"])
    return options


def _is_loopback_host(host: str) -> bool:
    from cvstream.blocks.zmq_sockets import is_loopback
    return is_loopback(f"tcp://{host}:1")


class Deployment:
    """The driver's side: actors per fragment, started in the plan's order, watched."""

    def __init__(self, graph, text: str, overrides: dict, imports: list[str], address: str,
                 curve: str = "auto"):
        self.graph, self.text, self.overrides = graph, text, overrides
        self.plan = plan(graph)
        self.ray, self.started_ray = _ray(address)
        self.run_id = f"run-{os.getpid()}-{int(time.time())}"
        self.curve = curve
        self.imports = list(imports)
        self.actors: dict = {}
        self.hosts: dict[str, str] = {}   # fragment -> its node's address
        self.failure: str | None = None
        self.last_progress: tuple[int, int] | None = None
        self.restarts: dict[str, int] = {}

    def progress(self) -> tuple[int, int] | None:
        return self.last_progress

    def start(self) -> None:
        ray = self.ray
        for f in self.plan.order:
            # Ray restarts a fragment of stateless blocks; any other holds state it cannot
            # get back (a file position, open detections)
            cls = ray.remote(max_restarts=-1 if self.plan.restartable[f] else 0,
                             max_task_retries=0)(FragmentActor)
            self.actors[f] = cls.options(name=fragment_name(self.run_id, f),
                                         namespace=NAMESPACE,
                                         **_actor_options(self.plan.resources[f])).remote(
                os.getcwd(), self.imports, f, self.run_id)
        try:
            hellos = ray.get([a.hello.remote() for a in self.actors.values()],
                             timeout=PLACE_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            raise CvstreamError(f"Ray could not place the fragments within {PLACE_TIMEOUT:g} "
                                f"s (they ask {self.plan.resources}; the cluster has "
                                f"{ray.cluster_resources()})") from None
        self.hosts = {f: h["host"] for f, h in zip(self.actors, hellos)}
        self.keys = {f: h["public_key"] for f, h in zip(self.actors, hellos)}
        self.endpoints: dict[str, str] = {}
        for f in self.plan.order:
            try:
                self._start_fragment(f)
            except ray.exceptions.RayActorError:  # it died while starting
                try:
                    self._recover(f)
                except CvstreamError:
                    self.abort()
                    raise
            for link in self.plan.links_of(f):
                if link.binder == f:
                    _say_link(link, self.endpoints[link.id],
                              self.keys[f] if self._secure(link) else None)

    def _secure(self, link) -> bool:
        return self.curve == "on" or (self.curve == "auto" and not (
            _is_loopback_host(self.hosts[link.src_fragment])
            and _is_loopback_host(self.hosts[link.dst_fragment])))

    def _start_fragment(self, f: str) -> dict:
        """Start fragment ``f``: its bound link ends bind (again at the same address after a
        restart), the others connect; returns the endpoints it bound."""
        ray = self.ray
        ends = {}
        for link in self.plan.links_of(f):
            if link.binder == f:
                end = LinkEnd(self.endpoints.get(link.id, bind_address(self.hosts[f])), True)
            else:
                end = LinkEnd(self.endpoints[link.id], False)
            if self._secure(link):
                end.curve_key = "self"  # the actor fills in its own files
            ends[link.id] = end
        got = ray.get(self.actors[f].start.remote(self.text, self.graph.source,
                                                  self.overrides, self.plan, ends, self.keys))
        status = ray.get(self.actors[f].poll.remote())
        if status["failure"]:
            self.abort()
            raise CvstreamError(status["failure"])
        self.endpoints.update(got)
        return got

    def _recover(self, f: str) -> None:
        """Fragment ``f`` died: one of stateless blocks is restarted (``_restart``); one that
        holds state a restart would lose raises CvstreamError, which ends the run."""
        if not self.plan.restartable[f]:
            raise CvstreamError(f"fragment '{f}' died (its process ended; it holds state "
                                "that a restart would lose, so the run ends)")
        self._restart(f)

    def _restart(self, f: str) -> None:
        """Fragment ``f`` died and Ray restarts it: start its part of the graph again once
        it answers; the stream resumes through its links, what was in flight is lost and
        counted downstream (``lost_items`` on the next link)."""
        ray = self.ray
        deadline = time.monotonic() + PLACE_TIMEOUT
        while True:
            # until it answers and starts: an actor still restarting refuses either call
            # (ActorUnavailableError, a RayActorError), and a started one has lost nothing
            try:
                hello = ray.get(self.actors[f].hello.remote(), timeout=5)
                if hello["public_key"] != self.keys[f] and any(
                        self._secure(k) for k in self.plan.links_of(f)):
                    raise CvstreamError(f"fragment '{f}' came back on another host with "
                                        "another CURVE key: its peers would refuse it")
                self.hosts[f] = hello["host"]
                self._start_fragment(f)
                break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                if time.monotonic() > deadline:
                    raise CvstreamError(f"fragment '{f}' died and did not come back within "
                                        f"{PLACE_TIMEOUT:g} s") from None
                time.sleep(0.2)
        self.restarts[f] = self.restarts.get(f, 0) + 1
        from .cli import _say
        _say(f"fragment '{f}' died; Ray restarted it and the stream goes on (restart "
             f"{self.restarts[f]})")

    def poll(self) -> tuple[bool, tuple[int, int] | None]:
        """(still running, progress over the sources of known length)."""
        ray = self.ray
        running, done, total = False, 0, 0
        for f, actor in self.actors.items():
            try:
                status = ray.get(actor.poll.remote(), timeout=30)
                # Ray may restart it between two polls: the copy that answers is fresh
                died = not status["started"]
            except ray.exceptions.RayActorError:
                died = True
            if died:
                if self.failure is None:
                    try:
                        self._recover(f)
                        running = True
                    except CvstreamError as exc:
                        self._fail(str(exc))
                continue
            if status["failure"]:
                self._fail(status["failure"])
            running = running or status["running"]
            if status["progress"]:
                done += status["progress"][0]
                total += status["progress"][1]
        return running, ((done, total) if total else None)

    def _fail(self, message: str) -> None:
        if self.failure is None:
            self.failure = message
            self.abort()

    def stop(self) -> None:
        for actor in self.actors.values():
            actor.stop.remote()

    def abort(self) -> None:
        for actor in self.actors.values():
            actor.abort.remote()

    def snapshot(self) -> dict:
        out = {"blocks": {}, "buffers": {}}
        for f, actor in self.actors.items():
            try:
                snap = self.ray.get(actor.snapshot.remote(), timeout=30)
            except self.ray.exceptions.RayActorError:
                continue
            for name, entry in snap["blocks"].items():
                out["blocks"][name] = dict(entry, fragment=f)
                if self.restarts.get(f):  # its blocks' figures count from the last restart
                    out["blocks"][name]["counters"]["fragment_restarts"] = self.restarts[f]
            for label, entry in snap["buffers"].items():
                out["buffers"][f"{f}: {label}"] = entry
        return out

    def close(self) -> None:
        # each placed fragment removes its key folder; one Ray never placed has none. A
        # copy killed before its cleanup (or whose cleanup reached a dying copy) leaves its
        # folder: those on this node are removed here (others stay until their node's
        # temporary files are cleared)
        self.ray.wait([a.cleanup.remote() for a in self.actors.values()],
                      num_returns=len(self.actors), timeout=10)
        here = self.ray.util.get_node_ip_address()
        for f in self.actors:
            if self.hosts.get(f) == here:
                shutil.rmtree(key_folder(self.run_id, f), ignore_errors=True)
        for actor in self.actors.values():
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.started_ray:
            self.ray.shutdown()


def run(args, graph) -> int:
    """``cvstream run --ray``: deploy, wait with progress, one stats table, exit code."""
    from .cli import _Live, on_interrupt, report
    from .loader import parse_overrides
    with open(args.graph, encoding="utf-8") as fh:
        text = fh.read()
    dep = Deployment(graph, text, parse_overrides(args.set), args.imports, args.ray,
                     args.link_curve)
    interrupted: list = []
    try:
        dep.start()
        interrupted = on_interrupt(dep, " every fragment")
        live = _Live(dep, args.stats)
        while True:
            running, prog = dep.poll()
            dep.last_progress = prog
            if not running:
                break
            live.tick()
            time.sleep(0.25)
        live.clear()
        snap = dep.snapshot()
    finally:
        dep.close()
    return report(args, snap, dep.failure, len(interrupted) > 1)
