"""Checkpoints of a run: orbax ``CheckpointManager`` under ``OUT/checkpoints``.

Each checkpoint step holds two items, written atomically by orbax (temporary
directory, then rename):

* ``state``: ``{"params", "opt_state", "step", "rng"}`` (sharded arrays);
* ``meta``: JSON with the data iterator position, the export manifest's sha256,
  the model name and config, and the run config.

:meth:`Checkpoints.check_compatible` refuses to resume a checkpoint written for
another model shape or another export.

Integrity: once a step is on disk, the sha256 and size of each of its files are
recorded in ``OUT/checkpoints-sha256/<step>.json``. :meth:`Checkpoints.restore_latest`
verifies them (and that ``state`` and a JSON ``meta`` are there and load); a
damaged or incomplete step is moved to ``OUT/checkpoints-damaged/`` with a
warning naming it, and the newest valid step is used instead. With none valid,
:class:`CheckpointError` says so in one line.

Example::

    >>> ckpt = Checkpoints("runs/a/checkpoints", every=100, keep=3)   # doctest: +SKIP
    >>> ckpt.save(100, state, meta)                                   # doctest: +SKIP
    >>> ckpt.latest_step()                                            # doctest: +SKIP
    100
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class CheckpointMismatch(ValueError):
    """The checkpoint in the run directory does not fit this run."""


class CheckpointError(ValueError):
    """No checkpoint in the run directory can be restored (all damaged or incomplete)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sums(folder: Path) -> dict[str, list[Any]]:
    """``{relative path: [bytes, sha256]}`` of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): [p.stat().st_size, _sha256(p)]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


class Checkpoints:
    def __init__(self, directory: str | Path, every: int, keep: int):
        import orbax.checkpoint as ocp

        self._ocp = ocp
        self.directory = Path(directory).absolute()
        self.every = max(every, 1)
        # the interval is applied in save(): orbax's own interval also saves the first step
        options = ocp.CheckpointManagerOptions(max_to_keep=max(keep, 1), create=True)
        self._options = options
        self.sums_dir = self.directory.with_name(self.directory.name + "-sha256")
        self.damaged_dir = self.directory.with_name(self.directory.name + "-damaged")
        self._pending: list[int] = []
        self.manager = self._manager()

    def _manager(self):
        return self._ocp.CheckpointManager(
            self.directory, options=self._options, item_names=("state", "meta")
        )

    # -- integrity

    def _record_sums(self) -> None:
        """Checksums of the steps saved since the last call (their writes are finished)."""
        if not self._pending:
            return
        self.manager.wait_until_finished()
        self.sums_dir.mkdir(parents=True, exist_ok=True)
        for step in self._pending:
            folder = self.directory / str(step)
            if folder.is_dir():
                data = json.dumps(
                    {"step": step, "files": file_sums(folder)}, indent=1, sort_keys=True
                )
                tmp = self.sums_dir / f".{step}.json.tmp-{os.getpid()}"
                tmp.write_text(data)
                os.replace(tmp, self.sums_dir / f"{step}.json")
        self._pending = []
        for f in self.sums_dir.glob("*.json"):  # steps orbax has deleted (max_to_keep)
            if f.stem.isdigit() and not (self.directory / f.stem).is_dir():
                f.unlink(missing_ok=True)

    def step_dirs(self) -> list[int]:
        """Step folders on disk, newest first (finished or not)."""
        if not self.directory.is_dir():
            return []
        return sorted(
            (int(p.name) for p in self.directory.iterdir() if p.name.isdigit() and p.is_dir()),
            reverse=True,
        )

    def check_step(self, step: int) -> str | None:
        """Why step ``step`` cannot be restored (checksums, items, meta), or None."""
        folder = self.directory / str(step)
        if not folder.is_dir() or not any(folder.iterdir()):
            return "empty step folder"
        for item in ("state", "meta"):
            if not (folder / item).is_dir() or not any((folder / item).iterdir()):
                return f"no '{item}' item (an interrupted save?)"
        sums_file = self.sums_dir / f"{step}.json"
        if sums_file.is_file():
            try:
                recorded = json.loads(sums_file.read_text())["files"]
            except (OSError, ValueError, KeyError, TypeError):
                return f"its checksum record {sums_file} is unreadable"
            for rel, (size, digest) in sorted(recorded.items()):
                f = folder / rel
                if not f.is_file():
                    return f"{rel} is missing"
                if f.stat().st_size != size:
                    return f"{rel} is {f.stat().st_size} bytes, {size} when saved (truncated?)"
                if _sha256(f) != digest:
                    return f"{rel} differs from its sha256 at save time (corrupted)"
        meta_file = folder / "meta" / "metadata"
        try:
            meta = json.loads(meta_file.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            return f"'meta' is not readable JSON ({type(e).__name__}: {str(e)[:80]})"
        if not isinstance(meta, dict) or "data_state" not in meta:
            return "'meta' lacks the data position ('data_state')"
        return None

    def _quarantine(self, step: int, problem: str, warn: Callable[[str], None]) -> None:
        folder = self.directory / str(step)
        self.damaged_dir.mkdir(parents=True, exist_ok=True)
        dest = self.damaged_dir / f"{step}-{time.strftime('%Y%m%dT%H%M%S')}"
        shutil.move(str(folder), dest)
        (self.sums_dir / f"{step}.json").unlink(missing_ok=True)
        warn(
            f"warning: checkpoint {folder} is damaged ({problem}); moved it to {dest} and resumed from an older one"
        )

    def restore_latest(
        self,
        abstract_state: Any,
        expected_meta: dict[str, Any],
        warn: Callable[[str], None] = print,
    ) -> tuple[int, dict[str, Any], Any] | None:
        """``(step, meta, state)`` of the newest valid checkpoint, or None when there is none.

        Damaged or incomplete steps are moved aside with a warning; a checkpoint
        for another model or export raises :class:`CheckpointMismatch`; when
        every step is damaged, :class:`CheckpointError` names them.
        """
        damaged: list[tuple[int, str]] = []
        for step in self.step_dirs():
            problem = self.check_step(step)
            if problem is None:
                meta = json.loads((self.directory / str(step) / "meta" / "metadata").read_text())
                self.check_compatible(meta, expected_meta, self.directory)
                try:
                    state = self.restore_state(step, abstract_state)
                except CheckpointMismatch:
                    if (self.sums_dir / f"{step}.json").is_file():
                        raise  # verified files that do not fit: a real mismatch
                    problem = "its state does not load (unverified files: no checksums recorded)"
                except Exception as e:  # noqa: BLE001 - any failure to read the files is damage
                    problem = f"its state does not load ({type(e).__name__}: {str(e)[:120]})"
                else:
                    if (
                        damaged
                    ):  # newer steps are damaged: move them aside so they can be saved again
                        self.manager.close()
                        for bad, why in damaged:
                            self._quarantine(bad, why, warn)
                        self.manager = self._manager()
                    return step, meta, state
            damaged.append((step, problem))
        if damaged:
            raise CheckpointError(
                f"no valid checkpoint in {self.directory}: "
                + "; ".join(f"step {st}: {why}" for st, why in damaged)
                + f" (move {self.directory} away to start from scratch)"
            )
        return None

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict[str, Any], force: bool = False) -> bool:
        """Save when ``step`` is a multiple of ``every`` (or ``force``); async, atomic."""
        if not force and step % self.every:
            return False
        ocp = self._ocp
        self._record_sums()  # the previous save is finished by now (orbax waits for it anyway)
        args = ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta))
        saved = self.manager.save(step, args=args, force=True)
        if saved:
            self._pending.append(step)
        return saved

    def read_meta(self, step: int) -> dict[str, Any]:
        ocp = self._ocp
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
            "meta"
        ]

    def restore_state(self, step: int, abstract_state: Any) -> Any:
        """Restore ``state`` into the structure, shapes and shardings of ``abstract_state``."""
        ocp = self._ocp
        try:
            restored = self.manager.restore(
                step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
            )
        except (
            ValueError,
            KeyError,
            TypeError,
        ) as exc:  # restore_latest tells damage from mismatch
            raise CheckpointMismatch(
                f"checkpoint step {step} in {self.directory} does not fit this model/optimizer: {exc}"
            ) from None
        return restored["state"]

    @staticmethod
    def check_compatible(meta: dict[str, Any], expected: dict[str, Any], where: Path) -> None:
        """Raise :class:`CheckpointMismatch` naming the first differing model/data field."""
        if meta.get("model_config") != expected.get("model_config"):
            old, new = meta.get("model_config") or {}, expected.get("model_config") or {}
            diffs = [
                f"{k}: {old.get(k)!r} → {new.get(k)!r}"
                for k in sorted(set(old) | set(new))
                if old.get(k) != new.get(k)
            ]
            raise CheckpointMismatch(
                f"{where} holds a checkpoint of model {meta.get('model')!r} with a different shape "
                f"({'; '.join(diffs[:4])}); use a fresh --out or the same model"
            )
        if meta.get("optimizer") != expected.get("optimizer"):
            raise CheckpointMismatch(
                f"{where} was trained with optimizer {meta.get('optimizer')!r}, this run asks for "
                f"{expected.get('optimizer')!r}"
            )
        if meta.get("manifest_sha256") != expected.get("manifest_sha256"):
            raise CheckpointMismatch(
                f"{where} was trained on an export with manifest sha256 {str(meta.get('manifest_sha256'))[:16]}…, "
                f"--data has {str(expected.get('manifest_sha256'))[:16]}…; resuming would change the data order"
            )

    def wait(self) -> None:
        self.manager.wait_until_finished()
        self._record_sums()

    def close(self) -> None:
        self._record_sums()
        self.manager.close()
