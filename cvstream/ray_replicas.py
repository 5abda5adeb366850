"""A replicated block's copies as Ray actors (``cvstream run --ray``; ``ray_run.py``
deploys the graph): ``RayReplicas`` deals each call to the least-loaded live copy and
replays, from the calls it keeps until their results arrive, the calls of a copy that died
while Ray restarts it (counted: ``replica_failures``, ``replayed_calls``).

Only this module and ``ray_run.py`` import Ray (the ``ray`` extra).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import Future

from .errors import CvstreamError
from .ray_run import NAMESPACE, PLACE_TIMEOUT, _actor_options, _prepare_process

MAX_REPLAYS = 8  # a call replayed more often than this fails the block


class ReplicaActor:
    """One copy of a replicated block: runs its ``compute``."""

    def __init__(self, cwd: str, imports: list[str], type_name: str, name: str,
                 params: dict):
        _prepare_process(cwd, imports)
        from .registry import lookup
        self.block = lookup(type_name)(name=name, **params)
        self.block.start()

    def compute(self, *arrays):
        from .replicas import compute_counted
        return compute_counted(self.block, arrays)

    def pid(self) -> int:
        return os.getpid()


def replica_name(run_id: str, block: str, i: int) -> str:
    """The Ray actor name of copy ``i`` of ``block`` (namespace ``cvstream``)."""
    return f"{run_id}:{block}:{i}"


class RayReplicas:
    """N copies of a block as Ray actors; a call goes to the copy with the fewest calls in
    flight, and a call whose copy died is replayed on another (Ray restarts the dead one)."""

    def __init__(self, block, n: int, resources: dict, run_id: str, cwd: str,
                 imports: list[str]):
        import ray
        self.ray = ray
        options = _actor_options(resources)
        cls = ray.remote(max_restarts=-1, max_task_retries=0)(ReplicaActor)
        self.actors = [cls.options(name=replica_name(run_id, block.name, i),
                                   namespace=NAMESPACE, **options)
                       .remote(cwd, imports, block.type_name, block.name, block.params)
                       for i in range(n)]
        try:
            ray.get([a.pid.remote() for a in self.actors], timeout=PLACE_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            self.close()
            raise CvstreamError(f"Ray could not place its {n} replicas within "
                                f"{PLACE_TIMEOUT:g} s (each asks {options}; the cluster has "
                                f"{ray.available_resources()} free)") from None
        self.load = [0] * n
        self.suspect = [False] * n
        self.counters = {"replica_failures": 0, "replayed_calls": 0}
        self._lock = threading.Lock()

    def submit(self, arrays) -> Future:
        future: Future = Future()
        self._send(arrays, future, 0)
        return future

    def _send(self, arrays, future: Future, attempt: int, avoid: int = -1) -> None:
        with self._lock:
            order = sorted(range(len(self.actors)),
                           key=lambda i: (i == avoid, self.suspect[i], self.load[i]))
            i = order[0]
            self.load[i] += 1
        ref = self.actors[i].compute.remote(*arrays)
        ref.future().add_done_callback(
            lambda f: self._done(f, i, arrays, future, attempt))

    def _done(self, f, i: int, arrays, future: Future, attempt: int) -> None:
        from ray.exceptions import RayActorError, RayTaskError
        with self._lock:
            self.load[i] -= 1
        exc = f.exception()
        if exc is None:
            self.suspect[i] = False
            future.set_result(f.result())
        elif isinstance(exc, RayActorError) and attempt < MAX_REPLAYS:
            with self._lock:
                if not self.suspect[i]:
                    self.suspect[i] = True
                    self.counters["replica_failures"] += 1
                self.counters["replayed_calls"] += 1
            self._send(arrays, future, attempt + 1, avoid=i)
        elif isinstance(exc, RayTaskError):
            future.set_exception(exc.cause if exc.cause is not None else exc)
        else:
            future.set_exception(CvstreamError(f"replica {i}: {str(exc).splitlines()[0]}"))

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
