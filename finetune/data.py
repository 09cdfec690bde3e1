"""Data path of the finetuner: export dir → checked shards → tokens → packed batches.

Contract (see docs/FORMATS.md section 3):

* :func:`open_export` refuses a directory without ``COMPLETED``, whose
  ``COMPLETED`` does not hold the sha256 of ``manifest.json``, or with a shard
  whose sha256 differs from the manifest; the error names the file.
* Shards are Arrow IPC *file* format and are memory-mapped, so only the rows a
  batch needs are materialised.
* A held-out eval slice is chosen by hashing ``example_id`` (stable across
  seeds, and all renderings of one source record land on the same side).
* :class:`PackedBatches` yields numpy batches built by first-fit packing in a
  seeded order; its whole position is ``{"epoch", "pos"}``, which is what a
  checkpoint stores to resume the exact data order.

Example::

    >>> export = open_export("exp")                       # doctest: +SKIP
    >>> ds = ExampleSource(export, ByteTokenizer(), "encdec", 32, 16)  # doctest: +SKIP
    >>> it = PackedBatches(ds, ds.train_indices, rows=8, seed=0)       # doctest: +SKIP
    >>> batch = next(it)                                  # doctest: +SKIP
    >>> batch["encoder_input_tokens"].shape               # doctest: +SKIP
    (8, 32)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"
COMPLETED = "COMPLETED"
REQUIRED_COLUMNS = ("inputs", "targets", "task", "example_id")


class DataError(ValueError):
    """The export directory cannot be used; the message names the offending file."""


# ----------------------------------------------------------------------------
# Export directory
# ----------------------------------------------------------------------------


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class ExportDir:
    path: Path
    manifest: dict[str, Any]
    manifest_sha256: str
    shard_paths: list[Path]

    @property
    def num_rows(self) -> int:
        return int(self.manifest.get("num_rows", 0))


def open_export(data_dir: str | Path, verify_checksums: bool = True) -> ExportDir:
    """Validate an export directory and return its manifest and shard paths.

    Raises :class:`DataError` with a message naming the file that is missing or
    does not match.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist")
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{manifest_path} is missing: {root} is not a `flan export` directory")
    completed = root / COMPLETED
    if not completed.is_file():
        raise DataError(
            f"{completed} is missing: the export in {root} did not finish "
            "(rerun `flan export`, it resumes)"
        )
    raw = manifest_path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    recorded = completed.read_text(encoding="utf-8").strip()
    if recorded != digest:
        raise DataError(
            f"{completed} holds {recorded[:16]}… but {manifest_path} has sha256 {digest[:16]}…: "
            "the manifest changed after the export finished"
        )
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise DataError(f"{manifest_path} is not valid JSON: {exc}") from None
    if manifest.get("format") != "flan-data-shards":
        raise DataError(
            f"{manifest_path}: format is {manifest.get('format')!r}, expected 'flan-data-shards'"
        )
    if manifest.get("format_version") != 1:
        raise DataError(
            f"{manifest_path}: unsupported format_version {manifest.get('format_version')!r}"
        )
    shards = manifest.get("shards")
    if not isinstance(shards, list) or not shards:
        raise DataError(f"{manifest_path}: no shards listed")
    columns = {c.get("name") for c in manifest.get("schema", [])}
    missing_cols = [c for c in REQUIRED_COLUMNS if columns and c not in columns]
    if missing_cols:
        raise DataError(f"{manifest_path}: schema lacks columns {missing_cols}")
    paths = []
    for entry in shards:
        shard = root / entry["file"]
        if not shard.is_file():
            raise DataError(f"shard {shard} listed in {manifest_path} is missing")
        if verify_checksums:
            got = sha256_file(shard)
            if got != entry.get("sha256"):
                raise DataError(
                    f"shard {shard} has sha256 {got[:16]}… but {manifest_path} records "
                    f"{str(entry.get('sha256'))[:16]}…: the file is corrupt or was replaced"
                )
        paths.append(shard)
    return ExportDir(root, manifest, digest, paths)


def read_table(export: ExportDir, columns: Sequence[str] = REQUIRED_COLUMNS):
    """Memory-map every shard and return one zero-copy ``pyarrow.Table`` of ``columns``."""
    import pyarrow as pa
    import pyarrow.ipc as ipc

    tables = []
    for shard in export.shard_paths:
        if shard.suffix != ".arrow":  # Parquet / JSON Lines exports (flan export --format)
            from flan_data.export import read_shard

            try:
                tables.append(read_shard(shard, columns=columns))
            except Exception as exc:  # noqa: BLE001 - reported as the finetuner's own error
                raise DataError(str(exc)) from None
            continue
        source = pa.memory_map(str(shard), "r")
        try:
            reader = ipc.open_file(source)
        except pa.ArrowInvalid as exc:
            raise DataError(f"shard {shard} is not an Arrow IPC file: {exc}") from None
        table = reader.read_all()
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(f"shard {shard} lacks columns {missing}")
        tables.append(table.select(list(columns)))
    return pa.concat_tables(tables)


# ----------------------------------------------------------------------------
# Tokenizers
# ----------------------------------------------------------------------------


class ByteTokenizer:
    """UTF-8 bytes shifted by 3: ``pad=0, eos=1, unk=2``; needs no download.

    >>> tok = ByteTokenizer()
    >>> tok.encode("hi")
    [107, 108]
    >>> tok.decode([107, 108, 1, 50])
    'hi'
    """

    pad_id, eos_id, unk_id, offset = 0, 1, 2, 3
    vocab_size = 256 + 3
    name = "byte"

    def encode(self, text: str) -> list[int]:
        return [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids: Sequence[int]) -> str:
        out = bytearray()
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if self.offset <= i < self.offset + 256:
                out.append(i - self.offset)
        return out.decode("utf-8", errors="replace")


class SentencePieceTokenizer:
    """A SentencePiece ``.model`` (e.g. the T5 vocabulary); sentencepiece imported lazily."""

    def __init__(self, path: str):
        try:
            import sentencepiece as spm
        except ImportError:  # pragma: no cover - depends on the environment
            raise DataError(
                "tokenizer {path}: `pip install sentencepiece` to use a .model file"
            ) from None
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.name = str(path)
        self.pad_id = max(self.sp.pad_id(), 0)
        self.eos_id = self.sp.eos_id()
        self.unk_id = self.sp.unk_id()
        self.vocab_size = self.sp.get_piece_size()

    def encode(self, text: str) -> list[int]:
        return list(self.sp.encode(text))

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.sp.decode([i for i in ids if i != self.pad_id])


class HFTokenizer:
    """A Hugging Face ``tokenizer.json``; the `tokenizers` package is imported lazily."""

    def __init__(self, path: str):
        try:
            from tokenizers import Tokenizer
        except ImportError:  # pragma: no cover - depends on the environment
            raise DataError(
                f"tokenizer {path}: `pip install tokenizers` to use tokenizer.json"
            ) from None
        self.tok = Tokenizer.from_file(str(path))
        self.name = str(path)
        vocab = self.tok.get_vocab()

        def first(*names, default):
            for n in names:
                if n in vocab:
                    return vocab[n]
            return default

        self.eos_id = first("</s>", "<|endoftext|>", "<eos>", default=1)
        self.pad_id = first("<pad>", "[PAD]", default=self.eos_id)
        self.unk_id = first("<unk>", "[UNK]", default=self.pad_id)
        self.vocab_size = self.tok.get_vocab_size()

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: Sequence[int]) -> str:
        ids = [int(i) for i in ids]
        if self.eos_id in ids:
            ids = ids[: ids.index(self.eos_id)]
        return self.tok.decode([i for i in ids if i != self.pad_id])


def load_tokenizer(spec: str):
    """``byte`` → :class:`ByteTokenizer`; ``*.model`` → SentencePiece; ``*.json`` → HF tokenizers."""
    if spec in ("", "byte"):
        return ByteTokenizer()
    path = Path(spec)
    if path.is_dir() and (path / "tokenizer.json").is_file():
        path = path / "tokenizer.json"
    elif path.is_dir() and (path / "spiece.model").is_file():
        path = path / "spiece.model"
    if not path.is_file():
        raise DataError(
            f"tokenizer {spec!r}: no such file (use 'byte', a .model or a tokenizer.json)"
        )
    if path.suffix == ".json":
        return HFTokenizer(str(path))
    return SentencePieceTokenizer(str(path))


# ----------------------------------------------------------------------------
# Examples
# ----------------------------------------------------------------------------


@dataclass
class Example:
    """One tokenized example; ``inputs``/``targets`` already truncated and eos-terminated."""

    inputs: list[int]
    targets: list[int]
    task: int

    def lengths(self, kind: str) -> tuple[int, int]:
        """Slots the example takes: (encoder, decoder) for ``encdec``, (0, tokens) for ``decoder``."""
        if kind == "encdec":
            return len(self.inputs), len(self.targets)
        # decoder-only: [bos] + inputs + targets, fed shifted by one
        return 0, len(self.inputs) + len(self.targets)


@dataclass
class TruncationStats:
    examples: int = 0
    inputs_truncated: int = 0
    targets_truncated: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "examples": self.examples,
            "inputs_truncated": self.inputs_truncated,
            "targets_truncated": self.targets_truncated,
        }


def _eval_bucket(example_id: str) -> float:
    digest = hashlib.blake2b(example_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class ExampleSource:
    """Tokenizes rows of the export on demand and splits train / held-out eval by example id.

    ``kind`` is ``encdec`` (inputs → encoder, targets → decoder) or ``decoder``
    (``[eos-as-bos] + inputs + targets`` in one sequence, loss on targets only).
    """

    def __init__(
        self,
        export: ExportDir,
        tokenizer,
        kind: str,
        inputs_length: int,
        targets_length: int,
        eval_fraction: float = 0.0,
        eval_max_examples: int = 256,
    ):
        if kind not in ("encdec", "decoder"):
            raise ValueError(f"kind must be 'encdec' or 'decoder', not {kind!r}")
        self.export = export
        self.tokenizer = tokenizer
        self.kind = kind
        self.inputs_length = inputs_length
        self.targets_length = targets_length
        self.table = read_table(export)
        self.tasks = sorted(set(self.table.column("task").unique().to_pylist()))
        self._task_index = {t: i for i, t in enumerate(self.tasks)}
        self.truncation = TruncationStats()
        ids = self.table.column("example_id").to_pylist()
        is_eval = np.array([_eval_bucket(i) < eval_fraction for i in ids], dtype=bool)
        self.eval_indices = np.flatnonzero(is_eval)[:eval_max_examples]
        self.train_indices = np.flatnonzero(~is_eval)
        if len(self.train_indices) == 0:
            raise DataError(
                f"{export.path}: no training rows left after holding out the eval slice"
            )

    def __len__(self) -> int:
        return self.table.num_rows

    def _truncate(self, ids: list[int], budget: int) -> tuple[list[int], bool]:
        # keep one slot for eos
        if len(ids) > budget - 1:
            return ids[: budget - 1] + [self.tokenizer.eos_id], True
        return ids + [self.tokenizer.eos_id], False

    def encode_pair(self, inputs: str, targets: str, task: int = 0, count: bool = True) -> Example:
        tok = self.tokenizer
        inp, inp_cut = self._truncate(tok.encode(inputs), self.inputs_length)
        if self.kind == "decoder":
            inp = inp[:-1]  # the prompt carries no eos; the slot becomes the bos
        tgt, tgt_cut = self._truncate(tok.encode(targets), self.targets_length)
        if count:
            self.truncation.examples += 1
            self.truncation.inputs_truncated += int(inp_cut)
            self.truncation.targets_truncated += int(tgt_cut)
        return Example(inp, tgt, task)

    def get(self, indices: Sequence[int], count: bool = True) -> list[Example]:
        if len(indices) == 0:
            return []
        rows = self.table.take(np.asarray(indices, dtype=np.int64))
        inputs = rows.column("inputs").to_pylist()
        targets = rows.column("targets").to_pylist()
        tasks = rows.column("task").to_pylist()
        return [
            self.encode_pair(i or "", t or "", self._task_index[k], count)
            for i, t, k in zip(inputs, targets, tasks)
        ]

    def raw(self, index: int) -> dict[str, str]:
        row = self.table.slice(int(index), 1).to_pylist()[0]
        return {k: row[k] for k in ("inputs", "targets", "task")}


# ----------------------------------------------------------------------------
# Packing
# ----------------------------------------------------------------------------


def empty_batch(
    kind: str, rows: int, inputs_length: int, targets_length: int
) -> dict[str, np.ndarray]:
    z = np.zeros
    if kind == "encdec":
        li, lt = inputs_length, targets_length
        return {
            "encoder_input_tokens": z((rows, li), np.int32),
            "encoder_segment_ids": z((rows, li), np.int32),
            "encoder_positions": z((rows, li), np.int32),
            "decoder_input_tokens": z((rows, lt), np.int32),
            "decoder_target_tokens": z((rows, lt), np.int32),
            "decoder_segment_ids": z((rows, lt), np.int32),
            "decoder_positions": z((rows, lt), np.int32),
            "decoder_loss_weights": z((rows, lt), np.float32),
            "task_ids": np.full((rows, lt), -1, np.int32),
        }
    length = inputs_length + targets_length
    return {
        "decoder_input_tokens": z((rows, length), np.int32),
        "decoder_target_tokens": z((rows, length), np.int32),
        "decoder_segment_ids": z((rows, length), np.int32),
        "decoder_positions": z((rows, length), np.int32),
        "decoder_loss_weights": z((rows, length), np.float32),
        "decoder_prefix_mask": z((rows, length), np.int32),
        "task_ids": np.full((rows, length), -1, np.int32),
    }


def _place(
    batch: dict[str, np.ndarray],
    kind: str,
    row: int,
    enc_at: int,
    dec_at: int,
    seg: int,
    ex: Example,
    bos: int,
):
    if kind == "encdec":
        n, m = len(ex.inputs), len(ex.targets)
        batch["encoder_input_tokens"][row, enc_at : enc_at + n] = ex.inputs
        batch["encoder_segment_ids"][row, enc_at : enc_at + n] = seg
        batch["encoder_positions"][row, enc_at : enc_at + n] = np.arange(n)
        sl = slice(dec_at, dec_at + m)
        # teacher forcing: decoder input is the target shifted right, restarting at 0 per segment
        batch["decoder_input_tokens"][row, sl] = [0] + ex.targets[:-1]
        batch["decoder_target_tokens"][row, sl] = ex.targets
        batch["decoder_segment_ids"][row, sl] = seg
        batch["decoder_positions"][row, sl] = np.arange(m)
        batch["decoder_loss_weights"][row, sl] = 1.0
        batch["task_ids"][row, sl] = ex.task
        return
    seq = [bos] + ex.inputs + ex.targets
    n = len(seq) - 1
    sl = slice(dec_at, dec_at + n)
    batch["decoder_input_tokens"][row, sl] = seq[:-1]
    batch["decoder_target_tokens"][row, sl] = seq[1:]
    batch["decoder_segment_ids"][row, sl] = seg
    batch["decoder_positions"][row, sl] = np.arange(n)
    prompt = len(ex.inputs) + 1  # bos + inputs attend bidirectionally in prefix-LM mode
    batch["decoder_prefix_mask"][row, dec_at : dec_at + prompt] = 1
    weights = np.zeros(n, np.float32)
    weights[n - len(ex.targets) :] = 1.0  # loss only where the next token is a target token
    batch["decoder_loss_weights"][row, sl] = weights
    batch["task_ids"][row, sl] = np.where(weights > 0, ex.task, -1)


class Packer:
    """First-fit packing into ``rows`` fixed-length rows.

    :meth:`add` puts an example into the first row with room for it (in both the
    encoder and the decoder for ``encdec``) and returns False when no row has room,
    which closes the batch. With ``pack=False`` every example takes a fresh row.
    """

    def __init__(
        self,
        kind: str,
        rows: int,
        inputs_length: int,
        targets_length: int,
        pack: bool = True,
        bos: int = 1,
    ):
        self.kind, self.rows, self.pack, self.bos = kind, rows, pack, bos
        self.enc_cap = inputs_length if kind == "encdec" else 0
        self.dec_cap = targets_length if kind == "encdec" else inputs_length + targets_length
        self.batch = empty_batch(kind, rows, inputs_length, targets_length)
        self.enc_used = [0] * rows
        self.dec_used = [0] * rows
        self.segments = [0] * rows
        self.examples = 0

    def add(self, ex: Example) -> bool:
        le, ld = ex.lengths(self.kind)
        for r in range(self.rows):
            if not self.pack and self.segments[r] > 0:
                continue
            if self.enc_used[r] + le <= self.enc_cap and self.dec_used[r] + ld <= self.dec_cap:
                self.segments[r] += 1
                _place(
                    self.batch,
                    self.kind,
                    r,
                    self.enc_used[r],
                    self.dec_used[r],
                    self.segments[r],
                    ex,
                    self.bos,
                )
                self.enc_used[r] += le
                self.dec_used[r] += ld
                self.examples += 1
                return True
        return False

    def fill(self) -> float:
        """Share of token slots (encoder + decoder) holding real tokens."""
        used = sum(self.enc_used) + sum(self.dec_used)
        return used / (self.rows * (self.enc_cap + self.dec_cap))


def pack_examples(
    examples: Sequence[Example],
    kind: str,
    rows: int,
    inputs_length: int,
    targets_length: int,
    pack: bool = True,
) -> list[dict[str, np.ndarray]]:
    """Pack all ``examples`` (in order) into as many batches of ``rows`` rows as needed."""
    batches, packer = [], Packer(kind, rows, inputs_length, targets_length, pack)
    for ex in examples:
        if not packer.add(ex):
            batches.append(packer.batch)
            packer = Packer(kind, rows, inputs_length, targets_length, pack)
            packer.add(ex)
    if packer.examples:
        batches.append(packer.batch)
    return batches


@dataclass
class PackedBatches:
    """Seeded, resumable stream of packed batches over ``indices`` of an :class:`ExampleSource`.

    It yields the *global* batch. Every host builds the same global batch (same
    order, same packing) and the trainer keeps that host's block of rows
    (:func:`host_rows`), so the data order does not depend on the number of hosts
    and one ``{"epoch", "pos"}`` state resumes all of them.
    ``epochs=0`` repeats forever; otherwise iteration stops after the last epoch.
    """

    source: ExampleSource
    indices: np.ndarray
    rows: int
    seed: int
    epochs: int = 0
    pack: bool = True
    shuffle: bool = True
    epoch: int = 0
    pos: int = 0
    last_fill: float = 0.0
    last_examples: int = 0
    _order: np.ndarray | None = field(default=None, repr=False)
    _order_epoch: int = field(default=-1, repr=False)
    _pending: list = field(default_factory=list, repr=False)

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def restore(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._pending = []

    def _order_for(self, epoch: int) -> np.ndarray:
        if self._order_epoch != epoch:
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch])
                self._order = self.indices[rng.permutation(len(self.indices))]
            else:
                self._order = self.indices
            self._order_epoch = epoch
        return self._order

    def _peek(self, epoch: int, pos: int, n: int = 256) -> list[Example]:
        order = self._order_for(epoch)
        return self.source.get(order[pos : pos + n])

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        src = self.source
        packer = Packer(src.kind, self.rows, src.inputs_length, src.targets_length, self.pack)
        epoch, pos = self.epoch, self.pos
        # a cache of tokenized upcoming examples; rebuilt after restore()
        pending = self._pending
        while True:
            if self.epochs and epoch >= self.epochs:
                break
            if not pending:
                if pos >= len(self.indices):
                    epoch, pos = epoch + 1, 0
                    continue
                pending.extend(self._peek(epoch, pos))
            if not packer.add(pending[0]):
                break
            pending.pop(0)
            pos += 1
            if pos >= len(self.indices):
                epoch, pos = epoch + 1, 0
                pending.clear()
        if packer.examples == 0:
            raise StopIteration
        self.epoch, self.pos, self._pending = epoch, pos, pending
        self.last_fill, self.last_examples = packer.fill(), packer.examples
        return packer.batch


def host_rows(batch: dict[str, np.ndarray], process_index: int, process_count: int, axis: int = 0):
    """This host's contiguous block of rows along ``axis`` of a global batch."""
    n = next(iter(batch.values())).shape[axis]
    if n % process_count:
        raise ValueError(f"batch rows {n} not divisible by {process_count} hosts")
    per = n // process_count
    sl = [slice(None)] * (axis + 1)
    sl[axis] = slice(process_index * per, (process_index + 1) * per)
    return {k: v[tuple(sl)] for k, v in batch.items()}


def copy_baseline_accuracy(examples: Sequence[Example], kind: str) -> float:
    """Token accuracy of echoing the input: target token j predicted as input token j."""
    hit = total = 0
    for ex in examples:
        for j, t in enumerate(ex.targets):
            total += 1
            hit += int(j < len(ex.inputs) and ex.inputs[j] == t)
    return hit / max(total, 1)
