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
from ..licenses import ATTRIBUTION_FILE, LicensePolicy, attribution_markdown, license_summary
from ..mixture import is_excluded, parse_excludes, plan_mixture
from ..render import RenderConfig
from ..specs import MixtureSpec, TaskSpec
from ..views import OutputSpec
from .jobs import make_jobs
from .writer import (
    COMPLETED,
    DATA_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    STATE_DIR,
    atomic_write_bytes,
    dumps,
    schema_json,
    write_manifest,
)

ON_ERROR = ("fail", "skip")
#: Fault injection for crash tests: FLAN_DATA_FAULT="job:N" | "shard:N" | "manifest"
#: makes the export SIGKILL itself after N jobs / N shards / before the manifest.
FAULT_ENV = "FLAN_DATA_FAULT"


def _fault(stage: str, n: int = 0) -> None:
    want = os.environ.get(FAULT_ENV)
    if not want:
        return
    name, _, count = want.partition(":")
    if name == stage and (not count or int(count) == n):
        os.kill(os.getpid(), signal.SIGKILL)


DEFAULT_SHARD_ROWS = 10_000


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
    return out


def count_sizes(catalog: Catalog, tasks: Iterable[TaskSpec], source: str, source_dirs: Mapping[str, str],
                workers: int = 1, executor=None, seekable: dict[str, bool] | None = None,
                progress: bool = False, unreadable: dict[str, str] | None = None) -> dict[str, int]:  # fmt: skip
    """Train-split sizes of ``tasks``; every unreachable source is reported at once
    (tasks failing for the same reason, e.g. an unreachable hub, share one line).

    ``seekable``, when given, is filled with whether each task's source can
    read a record range without reading what comes before it. With
    ``unreadable`` given, tasks that cannot be read are recorded there (name ->
    reason) and left out instead of raising. ``progress`` shows a progress bar."""
    from .local import count_one

    names = [t.name for t in tasks]
    args = [(catalog.root, n, source, dict(source_dirs)) for n in names]
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

    if backend == "ray":
        from .ray import RayExecutor

        executor = RayExecutor(catalog, cfg, workers, address=ray_address)
    elif ray_address:
        raise FlanDataError("--ray-address needs --backend ray")
    elif backend == "local":
        executor = LocalExecutor(catalog, cfg, workers)
    else:
        raise UnknownNameError("backend", backend, ("local", "ray"))
    try:
        policy = license_policy if license_policy is not None and license_policy.active else None
        tasks = candidate_tasks(catalog, spec, excludes, license_policy=policy)
        if not tasks:
            raise FlanDataError(
                f"mixture {spec.name!r} has no tasks to draw from (all excluded, or none with {src_choice} data)"
            )
        seekable: dict[str, bool] = {}
        unavailable: dict[str, str] | None = {} if skip_unavailable else None
        sizes = count_sizes(catalog, tasks, src_choice, dirs, executor=executor, seekable=seekable,
                            unreadable=unavailable)  # fmt: skip
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
            },  # fmt: skip
            "on_error": on_error,
            "output": output.to_json(),
        }
        if unavailable:
            state["unavailable"] = sorted(unavailable)
        _prepare_out(out, state, overwrite)
        if (out / COMPLETED).is_file():
            log(
                f"{out} is already complete for this spec; nothing to do (flan verify {out} checks it)"
            )
            return json.loads((out / MANIFEST).read_text())
        jobs, num_shards = make_jobs(
            plan,
            sizes,
            seed=seed,
            shard_rows=shard_rows,
            source=src_choice,
            source_dirs=dirs,
            on_error=on_error,
            seekable=seekable,
            output=output,
        )
        spill = out / STATE_DIR / "spill"
        spill.mkdir(parents=True, exist_ok=True)

        rows_total = sum(e.count for e in plan.entries)
        bar = _bar(rows_total, progress)
        skipped: dict[str, dict[str, int]] = {}
        for done, res in enumerate(executor.run_jobs(jobs, spill), 1):
            _fault("job", done)
            if res.skipped:
                skipped[res.task] = res.skipped
            bar.update(max(res.rows, 0))
        bar.close()

        shards_info = []
        for done, info in enumerate(
            executor.assemble(num_shards, spill, out, [j.index for j in jobs], output), 1
        ):
            shards_info.append(info)
            _fault("shard", done)
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
            "sources": sources_used(catalog, counts, src_choice, dirs),
        }
        if unavailable:
            manifest["unavailable"] = dict(sorted(unavailable.items()))
        if skipped_total:
            _subtract_skips(manifest, out)
        _governance(catalog, plan, policy, manifest, out)
        _fault("manifest")
        from .card import write_card

        write_card(out, manifest, catalog)
        write_manifest(out, manifest)
        shutil.rmtree(out / STATE_DIR / "spill", ignore_errors=True)
        dt = time.perf_counter() - t0
        log(f"wrote {manifest['num_rows']} rows in {len(shards_info)} shard(s) to {out} "
            f"({manifest['num_rows'] / dt:,.0f} examples/s, {dt:.1f}s; {len(counts)} tasks"
            + (f"; {skipped_total} skipped, see manifest 'skipped'" if skipped_total else "")
            + (f"; {len(unavailable)} unavailable task(s) left out: {', '.join(sorted(unavailable)[:10])}"
               + (" ..." if len(unavailable) > 10 else "") + ", see manifest 'unavailable'" if unavailable else "")
            + ")")  # fmt: skip
        return manifest
    finally:
        executor.close()


def _governance(catalog: Catalog, plan, policy, manifest: dict[str, Any], out: Path) -> None:
    """License policy, license summary and the attribution file (written before
    the manifest, so a COMPLETED export always has it)."""
    included = [catalog.task(t) for t in plan.tasks()]
    if policy is not None:
        manifest["license_policy"] = policy.to_json()
        manifest["plan"]["removed"] = dict(plan.removed)
    manifest["licenses"] = license_summary(included)
    text = attribution_markdown(included, mixture=plan.mixture, policy=policy)
    atomic_write_bytes(out / ATTRIBUTION_FILE, text.encode())


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


def _bar(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, unit="ex", unit_scale=True, desc="export", disable=not enabled, file=sys.stderr
    )


def _prepare_out(out: Path, state: dict[str, Any], overwrite: bool) -> None:
    """Create or validate the output folder; refuse to mix specs."""
    sdir = out / STATE_DIR
    spec_file = sdir / "spec.json"
    data = dumps(state)
    if out.exists() and not out.is_dir():
        raise FlanDataError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        ours = spec_file.is_file() or (out / MANIFEST).is_file()
        if not ours and not overwrite:
            raise FlanDataError(
                f"{out} is not empty and was not written by flan export; choose another --out or pass --overwrite"
            )
        same = spec_file.is_file() and spec_file.read_bytes() == data
        if not same:
            if not overwrite:
                raise FlanDataError(
                    f"{out} holds an export with a different spec (mixture, seed, total, catalog or options changed); "
                    "refusing to mix old and new shards. Pass --overwrite to replace it, or choose another --out."
                )
            _clear(out)
    sdir.mkdir(parents=True, exist_ok=True)
    if not spec_file.is_file():
        atomic_write_bytes(spec_file, data)


def _clear(out: Path) -> None:
    """Remove only what flan export writes."""
    from .card import is_our_card
    from .writer import format_of

    def ours(p: Path) -> bool:
        if not p.is_file():
            return False
        if p.name.startswith(".shard-"):
            return True
        try:
            return p.name.startswith("shard-") and format_of(p) is not None
        except FlanDataError:
            return False

    for p in out.iterdir():
        if (
            p.name in (MANIFEST, COMPLETED, ATTRIBUTION_FILE)
            or ours(p)
            or (p.name == "README.md" and is_our_card(p))
        ):
            p.unlink()
    data = out / DATA_DIR
    if data.is_dir():
        for p in data.iterdir():
            if ours(p):
                p.unlink()
        if not any(data.iterdir()):
            data.rmdir()
    shutil.rmtree(out / STATE_DIR, ignore_errors=True)


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
