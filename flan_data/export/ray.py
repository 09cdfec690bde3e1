"""The Ray executor: the local backend's work units, scheduled on a Ray cluster.

Nothing here plans, samples, renders or writes shards: every unit of work is a
call of the shared code in :mod:`flan_data.export.jobs`, run as a Ray task.

- sizes: the tasks' train splits are counted in a few chunked tasks per worker
  (:func:`~flan_data.export.local.count_one`);
- rendering: one task per :class:`~flan_data.export.jobs.TaskJob` (each reads its
  own source and writes its spill folder, :func:`~flan_data.export.jobs.run_job`);
- assembly: one task per spill bucket of shards (:func:`~flan_data.export.jobs.assemble_bucket`),
  which writes the shard under its fixed name and its resume record.

At most ``workers`` tasks are in flight at a time; results are yielded as they
complete so the caller's progress bar moves like the local backend's. Each Ray
worker process loads the catalog and builds one :class:`~flan_data.render.Renderer`
the first time it runs a task with this catalog (by fingerprint) and render
config, and keeps both, compiled templates included, for every later task (and
later exports from the same driver). The output does not depend on which
process or node runs which task, so it is byte-identical to the local
backend's for any number of workers.

Spill and output paths are plain paths: every node must see ``--out`` at the
same path (one machine, or a shared filesystem). This is checked on every node
before any job runs. See docs/RAY.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import socket
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from ..catalog import Catalog
from ..errors import FlanDataError, MissingDependencyError
from ..render import RenderConfig, Renderer
from .jobs import JobResult, TaskJob, assemble_bucket, released, run_job
from .local import _STATE

#: Object store size of a Ray instance started by the executor itself: only
#: small results and the catalog location travel through it.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2

# Per worker process: the catalog and renderer it holds, and their token (see _token).
_WORKER: dict[str, Any] = {}


def _import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError("ray", "ray", "--backend ray") from None
    return ray


# ----------------------------------------------------------------------------- worker side


def _worker_state(token: str, box: list) -> bool:
    """Make this process hold the catalog and renderer named by ``token``; True
    when they were built now (the first task with this catalog and config here).

    ``box`` holds an ObjectRef to ``(root, files, fingerprint, cfg)``, wrapped
    in a list so Ray does not fetch it for the tasks that hit the cache.
    """
    built = _WORKER.get("token") != token
    if built:
        import ray

        root, files, fingerprint, cfg = ray.get(box[0])
        cat = Catalog.load(root, extra_files=files)
        if cat.fingerprint != fingerprint:
            raise FlanDataError(
                f"the catalog at {root} on Ray node {socket.gethostname()} differs from the driver's "
                f"(fingerprint {cat.fingerprint[:12]} vs {fingerprint[:12]}); install the same flan-data "
                "version and catalog files on every node (see docs/RAY.md)"
            )
        _WORKER.clear()
        _WORKER.update(token=token, catalog=cat, renderer=Renderer(cat, cfg))
    # Functions written for the local executor (count_one) read the same state.
    _STATE.update(catalog=_WORKER["catalog"], renderer=_WORKER["renderer"])
    return built


def _call(token: str, box: list, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    _worker_state(token, box)
    return [fn(it) for it in items]


def _run(token: str, box: list, job: TaskJob, spill: Path) -> tuple[JobResult, int, bool]:
    built = _worker_state(token, box)
    res = released(lambda j: run_job(j, _WORKER["catalog"], _WORKER["renderer"], spill), job)
    return res, os.getpid(), built


def _assemble(
    bucket: int,
    num_shards: int,
    spill: Path,
    out: Path,
    job_indices: list[int],
    output=None,
    bucket_shards: int = 1,
) -> list[dict[str, Any]]:
    return released(lambda b: assemble_bucket(b, num_shards, spill, out, job_indices, output, bucket_shards), bucket)  # fmt: skip


def _probe(path: Path, digest: str) -> tuple[str, bool]:
    """Does this node see ``path`` with the driver's content?"""
    try:
        ok = hashlib.sha256(path.read_bytes()).hexdigest() == digest
    except OSError:
        ok = False
    return socket.gethostname(), ok


# ----------------------------------------------------------------------------- driver side


class RayExecutor:
    """Runs export work units as Ray tasks, at most ``workers`` at a time.

    ``address``: ``None`` joins the Ray instance this process is already
    connected to, else the one ``RAY_ADDRESS`` names, else starts a local one
    (stopped again by :meth:`close`);
    ``"auto"`` joins the cluster running on this machine (``ray start --head``);
    ``"ray://host:10001"`` connects as a Ray Client; ``"host:6379"`` joins a
    cluster's GCS directly. A connection made here is closed by :meth:`close`;
    the cluster keeps running.
    """

    def __init__(
        self, catalog: Catalog, cfg: RenderConfig, workers: int = 1, address: str | None = None
    ):
        ray = _import_ray()
        self.workers = workers
        self._ray = ray
        self._own = False
        if not ray.is_initialized():
            # No address: RAY_ADDRESS (set by `ray job submit` and KubeRay RayJobs), else a new
            # local instance, never a stale or unrelated cluster found on this machine.
            address = address or os.environ.get("RAY_ADDRESS") or "local"
            kw: dict[str, Any] = {"logging_level": logging.WARNING}
            if address == "local":
                kw.update(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
            try:
                ray.init(address=address, **kw)
            except (ConnectionError, RuntimeError, ValueError) as e:
                if address.startswith("ray://"):
                    hint = ("Ray Client needs `pip install 'ray[client]'` here, the head's client port "
                            "reachable and, with Ray token authentication, RAY_AUTH_MODE=token and the "
                            "cluster's token on this machine")  # fmt: skip
                else:
                    hint = ("start one with `ray start --head` (or point --ray-address at it), "
                            "or leave --ray-address out to start a local Ray")  # fmt: skip
                raise FlanDataError(
                    f"cannot connect to Ray at {address!r}: {e}; {hint} (see docs/RAY.md)"
                ) from None
            self._own = True
        # Every unit is idempotent (spills and shards are published by rename), so a task
        # lost with its worker or node is simply run again.
        opts = {"num_cpus": 1, "max_retries": 3}
        self._call = ray.remote(**opts)(_call)
        self._run = ray.remote(**opts)(_run)
        self._assemble = ray.remote(**opts)(_assemble)
        self._probe = ray.remote(num_cpus=0, max_retries=0)(_probe)
        init = (catalog.root, list(catalog.extra_files), catalog.fingerprint, cfg)
        self._token = _token(init)
        self._box = [ray.put(init)]
        #: Worker processes that ran render jobs, and how many renderers they built
        #: for them (one per process: templates are compiled once per worker).
        self.job_pids: set[int] = set()
        self.renderer_builds = 0

    # -- scheduling

    def _stream(self, calls: Iterable[Callable[[], Any]]) -> Iterator[tuple[int, Any]]:
        """Submit ``calls`` (each returns an ObjectRef), ``workers`` in flight;
        yield ``(i, result)`` in completion order. A failed task cancels the rest
        and raises its own exception (a clean FlanDataError stays one)."""
        ray = self._ray
        pending = iter(enumerate(calls))
        inflight: dict[Any, int] = {}

        def fill() -> None:
            while len(inflight) < self.workers:
                nxt = next(pending, None)
                if nxt is None:
                    return
                inflight[nxt[1]()] = nxt[0]

        fill()
        try:
            while inflight:
                done, _ = ray.wait(list(inflight), num_returns=1)
                ref = done[0]
                i = inflight.pop(ref)
                result = _get(ray, ref)
                fill()
                yield i, result
        finally:
            for ref in inflight:
                ray.cancel(ref, force=True)

    def map(self, fn, items) -> Iterator[Any]:
        """``fn`` over ``items`` in order, in chunks (a few per worker) so that
        thousands of small calls do not each pay a Ray round trip."""
        items = list(items)
        n = max(1, min(len(items), self.workers * 4))
        chunks = [items[i::n] for i in range(n)]
        results: list[Any] = [None] * len(items)
        calls = [lambda c=c: self._call.remote(self._token, self._box, fn, c) for c in chunks]
        for i, rs in self._stream(calls):
            results[i::n] = rs
        return iter(results)

    def _check_shared(self, path: Path, out: Path) -> None:
        """Every node that may run a task must see ``path`` (a file under ``out``) as the driver does."""
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        nodes = [
            n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) > 0
        ]
        refs = [
            self._probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(path, digest)
            for n in nodes
        ]
        blind = [
            f"{host} ({n.get('NodeManagerAddress')})"
            for n, (host, ok) in zip(nodes, ray.get(refs))
            if not ok
        ]
        if blind:
            raise FlanDataError(
                f"Ray node(s) {', '.join(blind)} do not see {out} as this machine does; "
                "--out must be on a filesystem shared by the driver and every Ray node (see docs/RAY.md)"
            )

    def run_jobs(self, jobs: Sequence[TaskJob], spill: Path) -> Iterator[JobResult]:
        spec = spill.parent / "spec.json"
        if spec.is_file():
            self._check_shared(spec, spill.parent.parent)
        # Biggest jobs first keeps the workers busy until the end.
        order = sorted(jobs, key=lambda j: -sum(c for _, c, _ in j.formats))
        calls = [lambda j=j: self._run.remote(self._token, self._box, j, spill) for j in order]
        for _, (res, pid, built) in self._stream(calls):
            self.job_pids.add(pid)
            self.renderer_builds += built
            yield res

    def assemble(
        self,
        num_shards: int,
        spill: Path,
        out: Path,
        job_indices: list[int],
        output=None,
        bucket_shards: int = 1,
    ) -> Iterator[dict[str, Any]]:
        idx = self._ray.put(list(job_indices))
        calls = [
            lambda b=b: self._assemble.remote(b, num_shards, spill, out, idx, output, bucket_shards)
            for b in range(-(-num_shards // bucket_shards))
        ]
        for _, infos in self._stream(calls):
            yield from infos

    def close(self) -> None:
        self._box = []
        if self._own and self._ray.is_initialized():
            self._ray.shutdown()
        self._own = False


def _token(init: tuple) -> str:
    """Names what a worker builds from ``init``: a worker process that already holds
    the same catalog (by fingerprint) and render config reuses them."""
    try:
        return hashlib.sha256(pickle.dumps(init)).hexdigest()
    except Exception:  # a config only cloudpickle can serialize: build once per export
        return uuid.uuid4().hex


def _get(ray, ref) -> Any:
    """``ray.get`` that re-raises a task's own exception (no Ray wrapper, no remote traceback)."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, FlanDataError):
            raise cause from None
        raise


__all__ = ["RayExecutor", "LOCAL_OBJECT_STORE_BYTES"]
