"""Export a mixture to shards (Arrow, Parquet or JSON Lines): deterministic, resumable, parallel.

>>> import tempfile
>>> from flan_data import Catalog
>>> from flan_data.export import export_mixture
>>> out = tempfile.mkdtemp()
>>> m = export_mixture(Catalog.load(), "demo", out, total=50, progress=False)
>>> m["num_rows"]
50

Layout of ``out``: ``data/shard-XXXXX-of-YYYYY.<arrow|parquet|jsonl|jsonl.gz>``,
a dataset card ``README.md`` (so ``datasets.load_dataset(out)`` loads it as-is),
``manifest.json`` and ``COMPLETED`` (written last). Work in progress lives in ``out/.flan-export``; a
rerun of the same command resumes from it and produces the same bytes as an
uninterrupted run. A different spec is refused unless ``overwrite=True``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import __version__
from ..catalog import Catalog
from ..errors import FlanDataError, SourceError, UnknownNameError
from ..fewshot import PICKER_VERSION
from ..licenses import ATTRIBUTION_FILE, LicensePolicy, attribution_markdown, license_summary
from ..mixture import is_excluded, parse_excludes, plan_mixture
from ..render import RenderConfig
from ..specs import MixtureSpec, TaskSpec
from ..views import OutputSpec
from .fingerprint import describe_change, fingerprint, save_cache
from .jobs import SpillFreer, _shard_record, check_consumed, make_jobs
from .writer import (
    COMPLETED,
    DATA_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    STATE_DIR,
    ShardSyncer,
    atomic_write_bytes,
    disk_error,
    dumps,
    schema_json,
    sha256_file,
    write_completed,
    write_manifest,
)

ON_ERROR = ("fail", "skip")
#: Fault injection for crash tests: FLAN_DATA_FAULT="job:N" | "shard:N" | "manifest"
#: makes the export SIGKILL itself after N jobs / N durable shards / before the manifest.
FAULT_ENV = "FLAN_DATA_FAULT"


def _fault(stage: str, n: int = 0) -> None:
    want = os.environ.get(FAULT_ENV)
    if not want:
        return
    name, _, count = want.partition(":")
    if name == stage and (not count or int(count) == n):
        os.kill(os.getpid(), signal.SIGKILL)


DEFAULT_SHARD_ROWS = 10_000
#: Shards (and the manifest's files) fsynced at once beside the assembly: the
#: last buckets' backlog is durable in about one journal commit, not one per file.
SYNC_THREADS = 4


def candidate_tasks(
    catalog: Catalog,
    spec: MixtureSpec,
    exclude: Sequence[str] = (),
    _stack: tuple[str, ...] = (),
    license_policy=None,
) -> list[TaskSpec]:
    """Tasks a mixture may draw from (before sizes are known); a license policy
    removes the tasks it rejects."""
    if spec.name in _stack:
        raise FlanDataError(f"mixture {spec.name!r} includes itself")
    out: dict[str, TaskSpec] = {}
    for m in spec.members:
        if m.kind == "mixture":
            for t in candidate_tasks(
                catalog, catalog.mixture(m.name), exclude, (*_stack, spec.name), license_policy
            ):
                out[t.name] = t
            continue
        tasks = [catalog.task(m.name)] if m.kind == "task" else catalog.tasks_in(m.name)
        for t in tasks:
            if (
                t.metadata.exclude_from_training
                or is_excluded(t, exclude)
                or is_excluded(t, m.exclude)
            ):
                continue
            if spec.source == "sample" and t.sample is None:
                continue
            if license_policy is not None and license_policy.reason(t) is not None:
                continue
            out[t.name] = t
    return list(out.values())


def _source_choice(spec: MixtureSpec, source: str | None) -> str:
    return source or ("sample" if spec.source == "sample" else "real")


def sources_used(
    catalog: Catalog, tasks: Iterable[str], choice: str, dirs: Mapping[str, str]
) -> dict[str, Any]:
    """Per task, the source actually read: a local folder, the bundled sample, or the
    hub/file route with its revision (``null`` when not pinned)."""
    out: dict[str, Any] = {}
    for name in sorted(tasks):
        t = catalog.task(name)
        local = dirs.get(t.name) or dirs.get(t.collection)
        if local is not None:
            out[name] = {"local": local, "kind": t.source.kind}
        elif choice == "sample" or (choice == "auto" and t.sample is not None):
            out[name] = {"sample": t.sample.path if t.sample else None}
        else:
            s = t.source
            out[name] = {"kind": s.kind, "path": s.path, "config": s.config, "revision": s.revision}
            for k in ("url", "export_config"):  # where a raw/export route reads from
                if s.options.get(k):
                    out[name][k] = s.options[k]
    return out


def count_sizes(catalog: Catalog, tasks: Iterable[TaskSpec], source: str, source_dirs: Mapping[str, str],
                workers: int = 1, executor=None, seekable: dict[str, bool] | None = None,
                progress: bool = False, unreadable: dict[str, str] | None = None,
                mat_dir: Path | None = None, materialized: dict[str, str] | None = None,
                hashed: dict[str, Any] | None = None, hash_cache: Path | None = None) -> dict[str, int]:  # fmt: skip
    """Train-split sizes of ``tasks``; every unreachable source is reported at once
    (tasks failing for the same reason, e.g. an unreachable hub, share one line).

    ``seekable``, when given, is filled with whether each task's source can
    read a record range without reading what comes before it. With
    ``unreadable`` given, tasks that cannot be read are recorded there (name ->
    reason) and left out instead of raising. ``progress`` shows a progress bar.
    With ``mat_dir``, sources that must be read to be counted are read once into
    files there, listed in ``materialized`` (task -> path) for the jobs.
    With ``hashed``, the sources' files are hashed beside the count, on the
    same workers (reusing ``hash_cache``), into ``hashed`` for :func:`fingerprint`."""
    from .local import count_one

    names = [t.name for t in tasks]
    extra: tuple = () if mat_dir is None else (str(mat_dir),)
    if hashed is not None:
        extra = (extra[0] if extra else None, str(hash_cache) if hash_cache is not None else "")
    args = [(catalog.root, n, source, dict(source_dirs), *extra) for n in names]
    results = executor.map(count_one, args) if executor is not None else map(count_one, args)
    if progress:
        from tqdm import tqdm

        results = tqdm(
            results, total=len(names), desc="counting sources", unit="task", file=sys.stderr
        )
    sizes: dict[str, int] = {}
    by_reason: dict[str, list[str]] = {}  # one line per distinct reason (an unreachable hub is one)
    for name, res in zip(names, results):
        if isinstance(res, str):
            by_reason.setdefault(res, []).append(name)
        else:
            sizes[name] = res[0]
            if seekable is not None:
                seekable[name] = res[1]
            if materialized is not None and len(res) > 2 and res[2] is not None:
                materialized[name] = res[2]
            if hashed is not None and len(res) > 3:
                hashed.update(res[3])
    if unreadable is not None:
        for reason, ns in by_reason.items():
            for n in ns:
                unreadable[n] = reason
        return sizes
    if by_reason:
        n_bad = sum(len(v) for v in by_reason.values())
        problems = [
            f"  - {ns[0]}: {r}" if len(ns) == 1 else
            f"  - {len(ns)} tasks ({', '.join(ns[:5])}{', ...' if len(ns) > 5 else ''}): {r}"
            for r, ns in by_reason.items()
        ]  # fmt: skip
        raise SourceError(
            f"{n_bad} source(s) needed by the plan cannot be read; nothing was written:\n"
            + "\n".join(problems)
            + "\nSupply each with --source-dir NAME=PATH (NAME a task or collection), fill the HF cache, "
            "or use a mixture of bundled samples (--mixture demo)."
        )
    return sizes


def export_mixture(
    catalog: Catalog,
    mixture: str | MixtureSpec,
    out: str | Path,
    *,
    total: int | None = None,
    seed: int = 0,
    workers: int = 1,
    shard_rows: int = DEFAULT_SHARD_ROWS,
    source: str | None = None,
    source_dirs: Mapping[str, str | Path] | None = None,
    exclude: Sequence[str] = (),
    render_config: RenderConfig | None = None,
    on_error: str = "fail",
    overwrite: bool = False,
    progress: bool = True,
    backend: str = "local",
    ray_address: str | None = None,
    log: Callable[[str], None] | None = None,
    license_policy: LicensePolicy | None = None,
    output: OutputSpec | None = None,
    skip_unavailable: bool = False,
    verify: bool = False,
    decontaminate: Sequence[str] = (),
    decontam_n: int | None = None,
    decontam_min_words: int | None = None,
) -> dict[str, Any]:
    """Render ``mixture`` into shards under ``out/data``; return the manifest.

    ``skip_unavailable`` leaves out the tasks whose source cannot be read
    (unreachable hub, missing local copy), plans the rates again over the
    others, and lists the left-out tasks with their reason in the manifest
    (``unavailable``) and the summary line; without it an unreadable source
    stops the export before anything is written.

    ``output`` picks the file format and the optional columns (messages, the
    flan-dump columns); the default writes Arrow with a ``messages`` column.
    ``license_policy`` removes tasks before planning (the manifest records the
    policy and what it removed); every export writes ``ATTRIBUTION.md``.
    ``decontaminate`` (eval set specs, see :mod:`flan_data.decontam`) drops rows
    that hold a benchmark n-gram and replaces hit few-shot exemplars by clean
    ones; ``decontamination.json`` and the manifest have the counts.

    A rerun over a complete export checks COMPLETED, the manifest and every
    shard's size (and sha256 with ``verify=True``) and repairs what is damaged.
    ``overwrite=True`` builds the new export beside the old one and swaps it in
    only once complete; it never deletes files flan did not write.
    """
    t0 = time.perf_counter()
    log = log or (lambda s: print(s, file=sys.stderr))
    if on_error not in ON_ERROR:
        raise UnknownNameError("error policy", on_error, ON_ERROR)
    if shard_rows <= 0:
        raise FlanDataError(f"--shard-rows must be > 0, got {shard_rows}")
    if workers < 1:
        raise FlanDataError(f"--workers must be >= 1, got {workers}")
    spec = catalog.mixture(mixture) if isinstance(mixture, str) else mixture
    cfg = render_config or RenderConfig()
    output = output or OutputSpec()
    src_choice = _source_choice(spec, source)
    dirs = {k: str(Path(v).resolve()) for k, v in (source_dirs or {}).items()}
    excludes = parse_excludes(catalog, exclude)
    if "://" in str(out):
        raise FlanDataError(
            f"--out {out}: object-store URLs are not supported yet; write to a local or shared filesystem path (see docs/RAY.md)"
        )
    out = Path(out)

    from .local import LocalExecutor

    policy = license_policy if license_policy is not None and license_policy.active else None
    tasks = candidate_tasks(catalog, spec, excludes, license_policy=policy)
    if not tasks:
        raise FlanDataError(
            f"mixture {spec.name!r} has no tasks to draw from (all excluded, or none with {src_choice} data)"
        )
    if backend == "ray":
        from .ray import RayExecutor

        executor = RayExecutor(catalog, cfg, workers, address=ray_address)
    elif ray_address:
        raise FlanDataError("--ray-address needs --backend ray")
    elif backend == "local":
        executor = LocalExecutor(catalog, cfg, workers, warm_tasks=[t.name for t in tasks])
    else:
        raise UnknownNameError("backend", backend, ("local", "ray"))
    syncer: ShardSyncer | None = None
    try:
        seekable: dict[str, bool] = {}
        unavailable: dict[str, str] | None = {} if skip_unavailable else None
        materialized: dict[str, str] = {}
        hashed: dict[str, Any] = {}  # the sources' sha256, made by the count pass's workers
        sizes = count_sizes(catalog, tasks, src_choice, dirs, executor=executor, seekable=seekable,
                            unreadable=unavailable, mat_dir=_materialize_dir(out),
                            materialized=materialized, hashed=hashed,
                            hash_cache=out / STATE_DIR / HASH_CACHE)  # fmt: skip
        if unavailable:
            if not sizes:
                raise SourceError(
                    f"none of the {len(unavailable)} source(s) of mixture {spec.name!r} can be read, e.g. "
                    f"{next(iter(unavailable))}: {next(iter(unavailable.values()))}"
                )
            excludes = [*excludes, *sorted(unavailable)]
            log(f"skipping {len(unavailable)} task(s) whose source cannot be read: "
                + ", ".join(sorted(unavailable)[:10]) + (" ..." if len(unavailable) > 10 else ""))  # fmt: skip
        plan = plan_mixture(
            catalog, spec, sizes, total=total, exclude=excludes, license_policy=policy
        )
        if sum(e.count for e in plan.entries) == 0:
            raise FlanDataError(f"mixture {spec.name!r} selects no examples")
        hashes: dict[str, Any] = {}
        state = {
            "tool_version": __version__,
            "catalog_hash": catalog.fingerprint,
            "plan": plan.to_json(),
            "mixture": plan.spec,
            "seed": seed,
            "shard_rows": shard_rows,
            "source": src_choice,
            "source_dirs": dirs,
            "render": {
                "shots": cfg.shots,
                "budget": cfg.budget,
                "option_style": cfg.option_style,
                "tokenizer": getattr(cfg.tokenizer, "name", type(cfg.tokenizer).__name__),
                "exemplar_picker": PICKER_VERSION,
            },  # fmt: skip
            "on_error": on_error,
            "output": output.to_json(),
            "sources": fingerprint(
                catalog, [catalog.task(t) for t in plan.tasks()], src_choice, dirs,
                cache_file=out / STATE_DIR / HASH_CACHE, cache_out=hashes, hashed=hashed,
            ),
        }  # fmt: skip
        if unavailable:
            state["unavailable"] = sorted(unavailable)
        dindex = _decontam_index(decontaminate, decontam_n, decontam_min_words, log)
        if dindex is not None:
            state["decontaminate"] = dindex.describe()
        final = out
        out = _prepare_out(final, state, overwrite)  # the folder to build in
        _probe_writable(out)
        save_cache(hashes, out / STATE_DIR / HASH_CACHE)
        _clean_leftovers(out)
        if (out / COMPLETED).is_file():
            m = _check_complete(out, deep=verify, log=log)
            if m is not None:
                return m
        jobs, num_shards = make_jobs(
            plan,
            sizes,
            seed=seed,
            shard_rows=shard_rows,
            source=src_choice,
            source_dirs=dirs,
            on_error=on_error,
            seekable=seekable,
            materialized=materialized,
            output=output,
            decontam=_save_decontam_index(dindex, out),
        )
        spill = out / STATE_DIR / "spill"
        _check_layout(spill, jobs, log)
        g = jobs[0].bucket_shards if jobs else 1
        if check_consumed(spill, out, num_shards, g, output):
            log(
                "a shard whose spill was already freed is missing or damaged: rendering the jobs again"
            )

        rows_total = sum(e.count for e in plan.entries)
        bar = _bar(rows_total, progress)
        skipped: dict[str, dict[str, int]] = {}
        for done, res in enumerate(executor.run_jobs(jobs, spill), 1):
            _fault("job", done)
            if res.skipped:
                merge_skips(skipped.setdefault(res.task, {}), res.skipped)
            bar.update(max(res.rows, 0))
        bar.close()

        shards_info = []
        job_indices = [j.index for j in jobs]
        freer = SpillFreer(spill, job_indices, num_shards, g)
        durable = [0]

        def now_durable(info: dict[str, Any]) -> None:
            freer.shard_done(info)  # a bucket's spill goes once its shards are durable
            durable[0] += 1
            _fault("shard", durable[0])

        # Shards are fsynced here, on a thread beside the assembly (not one by one
        # in the process that wrote them); COMPLETED waits for every one. The same
        # thread frees a bucket's spill once its shards are durable (truncating a run
        # may wait for the disk's writeback of it: ~5 ms a bucket, off this thread).
        syncer = ShardSyncer(on_durable=now_durable, threads=SYNC_THREADS)
        for info in executor.assemble(num_shards, spill, out, job_indices, output, g):
            shards_info.append(info)
            syncer.add(info, [out / info["file"], _shard_record(spill, info["file"])])
            # at most a bucket per worker written but not yet durable (nor its
            # spill freed): bounds peak disk without making the parent wait
            # on every fsync of its children's shards
            syncer.synced(max_pending=max(2, g) * max(1, workers))
        # Every worker must have started before the export is complete (a script
        # without a __main__ guard fails here). Checked after the shards, not
        # before: a child still starting (the forkserver's first imports) may
        # join the assembly, and the wait for it overlaps the shards' fsyncs.
        getattr(executor, "check_started", lambda: None)()
        getattr(executor, "retire", lambda: None)()  # children exit beside the manifest
        shards_info.sort(key=lambda s: s["file"])
        # temporary files of shard writers killed mid-write (a crashed run): every shard is now whole
        for p in (out / DATA_DIR).glob(".shard-*.tmp-*"):
            p.unlink(missing_ok=True)
        counts: dict[str, dict[str, int]] = {}
        for e in plan.entries:
            if e.count:
                counts.setdefault(e.task, {})[e.format] = e.count
        skipped_total = sum(n for d in skipped.values() for n in d.values())
        manifest = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "tool_version": __version__,
            "seed": seed,
            "num_rows": sum(s["rows"] for s in shards_info),
            "planned_rows": rows_total,
            "schema": schema_json(output.schema()),
            "file_format": output.file_format,
            "data_dir": DATA_DIR,
            "output": output.to_json(),
            "mixture": plan.spec,
            "plan": {
                "total": plan.total,
                "collections": plan.to_json()["collections"],
                "excluded": list(plan.excluded),
            },
            "source": src_choice,
            "render": state["render"],
            "catalog_hash": catalog.fingerprint,
            "counts": counts,
            "skipped": skipped,
            "on_error": on_error,
            "shards": shards_info,
            "source_routes": sources_used(catalog, counts, src_choice, dirs),
        }
        if unavailable:
            manifest["unavailable"] = dict(sorted(unavailable.items()))
        # The manifest and the files written beside it are written (not fsynced)
        # while the last shards' fsyncs run (the shards are known, not yet durable);
        # the same thread then fsyncs them, and COMPLETED is written only once every
        # one is durable: a COMPLETED export lists durable shards only, beside its
        # card, attribution file and report.
        dropped = _decontam_report(dindex, out, jobs, manifest, sync=False)
        if skipped_total or dropped:
            _subtract_skips(manifest, out)
        _governance(catalog, plan, policy, manifest, out, sync=False)
        _fault("manifest")
        from .card import CARD, write_card

        write_card(out, manifest, catalog, sync=False)
        digest = write_manifest(out, manifest, sync=False, completed=False)
        written = [out / n for n in (DECONTAM_REPORT, ATTRIBUTION_FILE, CARD, MANIFEST)]
        syncer.add(None, [f for f in written if f.is_file()])
        folders = (out / DATA_DIR, spill.parent / "shards", out)  # the renames
        syncer.finish([d for d in folders if d.is_dir()])
        write_completed(out, digest)
        _write_ledger(out)
        _clean_leftovers(out)
        if out != final:
            _swap(out, final)
            out = final
        dt = time.perf_counter() - t0
        log(f"wrote {manifest['num_rows']} rows in {len(shards_info)} shard(s) to {out} "
            f"({manifest['num_rows'] / dt:,.0f} examples/s, {dt:.1f}s; {len(counts)} tasks"
            + (f"; {skipped_total} skipped, see manifest 'skipped'" if skipped_total else "")
            + (f"; {len(unavailable)} unavailable task(s) left out: {', '.join(sorted(unavailable)[:10])}"
               + (" ..." if len(unavailable) > 10 else "") + ", see manifest 'unavailable'" if unavailable else "")
            + ")")  # fmt: skip
        return manifest
    except OSError as e:  # disk full, read-only folder, ...: one line, nothing marked complete
        raise disk_error(e, out) from None
    finally:
        if syncer is not None:
            syncer.close()
        executor.close()


#: Skip reasons of a task's few-shot pool start with this; every chunk job of
#: the task reports the same pool counts (see export/jobs.py).
POOL_SKIP = "pool: "
LAYOUT = "jobs.json"


def merge_skips(into: dict[str, int], job: Mapping[str, int]) -> None:
    """Add one job's skip counts to its task's: rows skipped add up over the
    task's chunk jobs; the pool's counts (the same in each) count once. The
    result does not depend on how the task was chunked or in which order its
    jobs finished.

    >>> d = {}
    >>> merge_skips(d, {"bad label": 2, "pool: bad label": 1})
    >>> merge_skips(d, {"bad label": 3, "pool: bad label": 1})
    >>> d
    {'bad label': 5, 'pool: bad label': 1}
    """
    for k, n in job.items():
        into[k] = n if k.startswith(POOL_SKIP) else into.get(k, 0) + n


def _check_layout(spill: Path, jobs: Sequence[Any], log: Callable[[str], None]) -> None:
    """Record the jobs' record ranges and spill buckets beside their spill; a
    spill written for another layout (an interrupted run of another flan-data
    version) is deleted, since its folders are named by job number and its
    runs cut by bucket."""
    layout = dumps([[j.index, j.task, j.lo, j.hi, j.bucket_shards] for j in jobs])
    f = spill / LAYOUT
    if spill.is_dir() and not (f.is_file() and f.read_bytes() == layout):
        if any(spill.iterdir()):
            log(
                f"{spill}: finished jobs of an interrupted run with another job layout; rendering them again"
            )
        shutil.rmtree(spill)
    if not f.is_file():
        spill.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(f, layout)


DECONTAM_REPORT = "decontamination.json"


def _decontam_index(specs: Sequence[str], n: int | None, min_words: int | None, log):
    """The eval n-gram index for --decontaminate (built once, here)."""
    if not specs:
        return None
    from ..decontam import DEFAULT_MIN_WORDS, DEFAULT_N, NgramIndex, read_evals

    n = n or DEFAULT_N
    index = NgramIndex.build(
        read_evals(specs), n=n, min_words=min_words or min(DEFAULT_MIN_WORDS, n)
    )
    log(f"decontamination index: {index.num_ngrams:,} n-grams (n={index.n}) from "
        + ", ".join(f"{s['name']} ({s['items']} items)" for s in index.sets))  # fmt: skip
    return index


def _save_decontam_index(index, out: Path) -> str | None:
    if index is None:
        return None
    folder = out / STATE_DIR / "decontam-index"
    index.save(folder)
    return str(folder.resolve())


def _decontam_report(index, out: Path, jobs, manifest: dict[str, Any], sync: bool = True) -> int:
    """Merge the jobs' decontamination counts: the report file next to the
    manifest (fsynced unless ``sync=False``), a summary in the manifest.
    Returns the number of rows dropped."""
    if index is None:
        return 0
    from ..decontam import Report

    rep = Report(index)
    for j in jobs:
        f = out / STATE_DIR / "spill" / f"{j.index:06d}" / "decontam.json"
        if f.is_file():
            rep.merge(json.loads(f.read_text()))
    data = rep.to_json()
    atomic_write_bytes(out / DECONTAM_REPORT, dumps(data), sync)
    by_task: dict[str, dict[str, dict[str, int]]] = {}
    for e in data["hits"]:
        by_task.setdefault(e["task"], {})[e["eval_set"]] = {
            "rows_dropped": e["rows_dropped"], "exemplars_replaced": e["exemplars_replaced"]}  # fmt: skip
    dropped = sum(e["rows_dropped"] for e in data["hits"])
    manifest["decontamination"] = {
        "report": DECONTAM_REPORT,
        "n": index.n,
        "min_words": index.min_words,
        "eval_sets": index.sets,
        "rows_checked": data["rows_total"],
        "rows_dropped": dropped,
        "exemplars_replaced": sum(e["exemplars_replaced"] for e in data["hits"]),
        "by_task": by_task,
    }
    return dropped


def _governance(catalog: Catalog, plan, policy, manifest: dict[str, Any], out: Path,
                sync: bool = True) -> None:  # fmt: skip
    """License policy, license summary and the attribution file (written before
    the manifest, so a COMPLETED export always has it; fsynced unless ``sync=False``)."""
    included = [catalog.task(t) for t in plan.tasks()]
    if policy is not None:
        manifest["license_policy"] = policy.to_json()
        manifest["plan"]["removed"] = dict(plan.removed)
    manifest["licenses"] = license_summary(included)
    text = attribution_markdown(included, mixture=plan.mixture, policy=policy)
    atomic_write_bytes(out / ATTRIBUTION_FILE, text.encode(), sync)


def _subtract_skips(manifest: dict[str, Any], out: Path) -> None:
    """With --on-error skip, recount per task × format from the shards themselves."""
    from .writer import read_table

    counts: dict[str, dict[str, int]] = {}
    for s in manifest["shards"]:
        t = read_table(out / s["file"]).select(["task", "format"])
        if t.num_rows == 0:
            continue
        g = t.group_by(["task", "format"]).aggregate([("task", "count")])
        for task, fmt, n in zip(
            g["task"].to_pylist(), g["format"].to_pylist(), g["task_count"].to_pylist()
        ):
            counts.setdefault(task, {})[fmt] = counts.get(task, {}).get(fmt, 0) + n
    manifest["counts"] = {k: dict(sorted(v.items())) for k, v in sorted(counts.items())}


class _NoBar:
    """The progress bar of ``progress=False``: no tqdm import (~50 ms) for nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(
        total=total, unit="ex", unit_scale=True, desc="export", disable=not enabled, file=sys.stderr
    )


#: The new export of ``--overwrite`` is built here (inside ``out``) and swapped
#: in once complete; the swap's intent record lists what the old export wrote.
STAGING = ".flan-export-next"
SWAP = ".flan-export-swap.json"
LEDGER = "files.json"
HASH_CACHE = "source-hashes.json"
_OURS = (STATE_DIR, STAGING, SWAP)


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir()) if d.is_dir() else []


def _is_flan_name(n: str) -> bool:
    ours = (
        MANIFEST,
        COMPLETED,
        ATTRIBUTION_FILE,
        "decontamination.json",
        DATA_DIR,
        "README.md",
        *_OURS,
    )
    return n in ours or n.startswith(("shard-", ".shard-"))


def _read_json(f: Path) -> Any:
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError):
        return None


def _prepare_out(out: Path, state: dict[str, Any], overwrite: bool) -> Path:
    """Create or validate the output folder; refuse to mix specs. Returns the
    folder to build in: ``out`` itself, or a staging folder for ``--overwrite``."""
    sdir = out / STATE_DIR
    spec_file = sdir / "spec.json"
    data = dumps(state)
    if out.exists() and not out.is_dir():
        raise FlanDataError(f"{out} exists and is not a folder")
    _finish_swap(out)
    names = _names(out)
    if names == [STATE_DIR] and not spec_file.is_file():
        names = []  # only what an interrupted count pass of ours wrote (materialised sources)
    if not names:
        sdir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(spec_file, data)
        return out
    if spec_file.is_file():
        if spec_file.read_bytes() == data:
            return out
        old = _read_json(spec_file) or {}
        if _same_but_mtimes(old, state):  # touched, not changed: same data
            atomic_write_bytes(spec_file, data)
            return out
        if not overwrite:
            change = describe_change(old.get("sources") or {}, state["sources"])
            why = (f"its sources changed since it was written ({change})" if change and old.get("sources") is not None
                   else "mixture, seed, total, catalog, sources or options changed")  # fmt: skip
            raise FlanDataError(
                f"{out} holds an export with a different spec ({why}); refusing to mix old and new rows. "
                "Pass --overwrite to replace it (the old export stays until the new one is complete), or choose another --out."
            )
        staging = out / STAGING
        sspec = staging / STATE_DIR / "spec.json"
        if staging.exists() and not (sspec.is_file() and sspec.read_bytes() == data):
            shutil.rmtree(staging)  # staged work for another spec: ours, not needed
        (staging / STATE_DIR).mkdir(parents=True, exist_ok=True)
        if not sspec.is_file():
            atomic_write_bytes(sspec, data)
        return staging
    if not overwrite:
        raise FlanDataError(
            f"{out} is not empty and was not written by flan export; choose another --out or pass --overwrite"
        )
    clash = [n for n in names if _is_flan_name(n)]
    if clash:
        raise FlanDataError(
            f"{out} holds files flan export did not write but would replace ({', '.join(clash[:5])}); "
            "--overwrite only replaces what flan wrote: move them away or choose another --out"
        )
    sdir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(sdir / "foreign.json", dumps(names))  # the user's files: never touched
    atomic_write_bytes(spec_file, data)
    return out


def _materialize_dir(out: Path) -> Path | None:
    """Where the count pass keeps read-once copies of sources that cannot seek:
    the export's state folder, when ``out`` is new, empty or an export of ours
    (never inside a folder of someone else's files, which the export may refuse)."""
    from .materialize import MAT_DIR

    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / STATE_DIR).is_dir())
    ):
        return None
    if (out / COMPLETED).is_file():
        return None  # a complete export: nothing to render unless --overwrite, which keeps it untouched
    return (out / STATE_DIR / MAT_DIR).resolve()


def _probe_writable(out: Path) -> None:
    """Fail early, naming the folder, when the output cannot be written (read-only, full)."""
    probe = out / STATE_DIR / f"probe-{os.getpid()}"
    atomic_write_bytes(probe, b"probe\n", sync=False)
    probe.unlink()


def _same_but_mtimes(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def strip(st: Mapping[str, Any]) -> Any:
        d = dict(st)
        d["sources"] = {t: [{k: v for k, v in e.items() if k != "mtime_ns"} for e in es]
                        for t, es in (st.get("sources") or {}).items()}  # fmt: skip
        return d

    return old.get("sources") is not None and strip(old) == strip(new)


def _foreign(out: Path) -> set[str]:
    return set(_read_json(out / STATE_DIR / "foreign.json") or [])


def _write_ledger(out: Path) -> None:
    """Record every top-level name this export wrote (what --overwrite may delete)."""
    foreign = _foreign(out)
    written = [n for n in _names(out) if n not in foreign and n not in _OURS and ".tmp-" not in n]
    atomic_write_bytes(out / STATE_DIR / LEDGER, dumps(written))


def _ledger(out: Path) -> list[str]:
    """Names flan wrote in ``out``: the ledger, else (older exports) the manifest's files."""
    led = _read_json(out / STATE_DIR / LEDGER)
    if isinstance(led, list):
        return [str(n) for n in led]
    m = _read_json(out / MANIFEST)
    names = [MANIFEST, COMPLETED, ATTRIBUTION_FILE]
    if isinstance(m, dict) and isinstance(m.get("shards"), list):
        names += [str(s["file"]) for s in m["shards"] if isinstance(s, dict) and "file" in s]
    return [n for n in names if n not in _foreign(out)]


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p)
    elif p.exists() or p.is_symlink():
        p.unlink()


def _swap(staging: Path, out: Path) -> None:
    """Replace the export in ``out`` by the complete one in ``staging``."""
    intent = {"old": _ledger(out), "foreign": sorted(_foreign(out))}
    atomic_write_bytes(out / SWAP, dumps(intent))
    _finish_swap(out)


def _finish_swap(out: Path) -> None:
    """Carry out (or finish, after a crash) a recorded swap; each step is idempotent."""
    intent = _read_json(out / SWAP)
    if intent is None:
        return
    staging = out / STAGING
    if staging.is_dir():
        new = [n for n in _names(staging) if n != STATE_DIR]
        if (staging / COMPLETED).exists():  # files not all moved yet
            _remove(out / COMPLETED)
            for n in intent["old"]:
                if n not in new and n not in _OURS:
                    _remove(out / n)
            for n in sorted(new, key=lambda n: n == COMPLETED):  # COMPLETED last
                if (out / n).is_dir():
                    shutil.rmtree(out / n)
                os.replace(staging / n, out / n)
        if (staging / STATE_DIR).is_dir():
            shutil.rmtree(out / STATE_DIR, ignore_errors=True)
            os.replace(staging / STATE_DIR, out / STATE_DIR)
            if intent["foreign"]:
                atomic_write_bytes(out / STATE_DIR / "foreign.json", dumps(intent["foreign"]))
                _write_ledger(out)
        shutil.rmtree(staging)
    (out / SWAP).unlink()


_LEFTOVER = re.compile(r"^\..+\.tmp-\d+$")


def _clean_leftovers(out: Path) -> None:
    """Temporary files of interrupted writes, and the spill folder once complete."""
    for d in (out, out / DATA_DIR):
        for n in _names(d):
            if _LEFTOVER.match(n):
                (d / n).unlink(missing_ok=True)
    if (out / COMPLETED).is_file():
        from .materialize import MAT_DIR

        shutil.rmtree(out / STATE_DIR / "spill", ignore_errors=True)
        shutil.rmtree(out / STATE_DIR / MAT_DIR, ignore_errors=True)


def _check_complete(out: Path, *, deep: bool, log: Callable[[str], None]) -> dict[str, Any] | None:
    """A complete export's manifest when COMPLETED, the manifest and every shard's
    size (and sha256 when ``deep``) agree; else report what is wrong, undo the
    damage so that the caller re-renders it (byte-identical), and return None."""
    from .verify import check_manifest, load_manifest

    try:
        m = load_manifest(out)
        bad = check_manifest(m, out / MANIFEST)
    except FlanDataError as e:
        m, bad = None, [str(e)]
    listed: set[str] = set()
    damaged: list[str] = []
    if m is not None and not bad:
        for s in m["shards"]:
            f = out / s["file"]
            listed.add(s["file"])
            if not f.is_file():
                bad.append(f"{f}: missing")
            elif f.stat().st_size != s["bytes"]:
                bad.append(
                    f"{f}: {f.stat().st_size} bytes, manifest says {s['bytes']} (truncated or edited)"
                )
            elif deep and sha256_file(f) != s["sha256"]:
                bad.append(f"{f}: sha256 differs from the manifest's (edited or corrupted)")
            else:
                continue
            damaged.append(s["file"])
        extra = [
            str(p.relative_to(out))
            for d in (out, out / DATA_DIR)
            for p in sorted(d.glob("shard-*"))
            if str(p.relative_to(out)) not in listed
        ]
        if extra:
            raise FlanDataError(
                f"{out / extra[0]}: a shard that is not part of this export (not in its manifest); "
                "move it away, then rerun"
            )
    if not bad:
        what = "sha256" if deep else "size"
        log(
            f"{out} is already complete for this spec (COMPLETED, manifest and {what} of {len(m['shards'])} shard(s) checked); nothing to do"
        )
        return m
    for b in bad:
        log(f"repairing {b}")
    _remove(out / COMPLETED)
    if m is None or damaged == []:
        _remove(out / MANIFEST)
    for name in damaged:
        _remove(out / name)
        _remove(out / STATE_DIR / "shards" / f"{Path(name).name}.json")
    return None


def read_shard(path: str | Path, columns: Sequence[str] | None = None):
    """One shard file of any format (arrow, parquet, jsonl, jsonl.gz) as a ``pyarrow.Table``.

    Raises FlanDataError naming the file when it is unreadable or lacks ``columns``.
    """
    from .writer import read_table

    try:
        t = read_table(Path(path))
    except (OSError, ValueError) as e:
        raise FlanDataError(f"shard {path} cannot be read: {e}") from None
    if columns is not None:
        missing = [c for c in columns if c not in t.column_names]
        if missing:
            raise FlanDataError(f"shard {path} lacks columns {missing}")
        t = t.select(list(columns))
    return t


__all__ = [
    "DEFAULT_SHARD_ROWS",
    "ON_ERROR",
    "candidate_tasks",
    "count_sizes",
    "export_mixture",
    "read_shard",
]
