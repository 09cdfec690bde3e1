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
OPTIONAL_COLUMNS = ("format", "messages")  # read when every shard has them


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


def read_table(
    export: ExportDir, columns: Sequence[str] = REQUIRED_COLUMNS, optional: Sequence[str] = ()
):
    """Memory-map every shard and return one zero-copy ``pyarrow.Table`` of ``columns``.

    ``optional`` columns are added when every shard has them.
    """
    import pyarrow as pa
    import pyarrow.ipc as ipc

    tables = []
    for shard in export.shard_paths:
        if shard.suffix != ".arrow":  # Parquet / JSON Lines exports (flan export --format)
            from flan_data.export import read_shard

            try:
                table = read_shard(shard)  # all columns: the optional ones are picked below
            except Exception as exc:  # noqa: BLE001 - reported as the finetuner's own error
                raise DataError(str(exc)) from None
        else:
            source = pa.memory_map(str(shard), "r")
            try:
                reader = ipc.open_file(source)
            except pa.ArrowInvalid as exc:
                raise DataError(f"shard {shard} is not an Arrow IPC file: {exc}") from None
            table = reader.read_all()
        missing = [c for c in columns if c not in table.column_names]
        if missing:
            raise DataError(f"shard {shard} lacks columns {missing}")
        tables.append(table)
    extra = [c for c in optional if all(c in t.column_names for t in tables)]
    return pa.concat_tables([t.select(list(columns) + extra) for t in tables])


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
    eos_text = "</s>"  # how a chat template writes eos; encode_chat maps it to eos_id

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
        self.eos_text = self.sp.id_to_piece(self.eos_id) if self.eos_id >= 0 else "</s>"

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
        self.eos_text = self.tok.id_to_token(self.eos_id) or "</s>"
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
    """``byte`` → :class:`ByteTokenizer`; ``*.model`` → SentencePiece; ``*.json`` → HF tokenizers.

    (``train:N`` is resolved by :func:`train_tokenizer`, which needs the data.)
    """
    if spec in ("", "byte"):
        return ByteTokenizer()
    if spec.startswith("train:"):
        raise DataError(f"tokenizer {spec!r} is trained on the export: use train_tokenizer()")
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


def _tokenizer_texts(table, indices: np.ndarray, limit: int, seed: int) -> list[str]:
    # a seeded sample of rows (kept in table order) when the export is large
    if len(indices) > limit:
        rng = np.random.default_rng([seed, 0x5E9])
        indices = np.sort(rng.choice(indices, limit, replace=False))
    rows = table.take(np.asarray(indices, dtype=np.int64))
    texts = []
    for inp, tgt in zip(rows.column("inputs").to_pylist(), rows.column("targets").to_pylist()):
        texts.append(inp or "")
        texts.append(tgt or "")
    return texts


def train_tokenizer(
    table,
    indices: np.ndarray,
    vocab_size: int,
    seed: int,
    out_dir: str | Path,
    max_rows: int = 100_000,
) -> SentencePieceTokenizer:
    """Train (or reuse) a SentencePiece unigram model on the ``inputs``/``targets`` of ``indices``.

    Written to ``out_dir/spm.model`` with ``out_dir/spm.json`` recording what it
    was trained on; a later call with the same settings reuses the file (a resumed
    run keeps its vocabulary), different settings raise :class:`DataError`.
    Deterministic: one thread, rows in table order (a seeded sample above
    ``max_rows``), fixed random seed, so the same export and seed give the same
    ``.model`` bytes. Ids: pad 0, eos 1, unk 2 (T5's layout); byte fallback keeps
    every character representable; no normalisation, so decode(encode(x)) == x.

        >>> tok = train_tokenizer(table, idx, 2000, 0, "runs/a/tokenizer")  # doctest: +SKIP
    """
    try:
        import sentencepiece as spm
    except ImportError:
        raise DataError(
            "--tokenizer train:N needs the 'sentencepiece' package: pip install 'flan-data[finetune]'"
        ) from None
    out_dir = Path(out_dir)
    model, info_path = out_dir / "spm.model", out_dir / "spm.json"
    want = {"vocab_size": vocab_size, "seed": seed, "rows": int(len(indices)), "max_rows": max_rows}
    if model.is_file() and info_path.is_file():
        have = json.loads(info_path.read_text(encoding="utf-8"))
        if {k: have.get(k) for k in want} != want:
            raise DataError(
                f"{model} was trained with {have}, this run asks for {want}: "
                "use a fresh --out (or the same --tokenizer/--seed)"
            )
        tok = SentencePieceTokenizer(str(model))
        tok.name = f"train:{vocab_size}"
        return tok
    import io

    texts = _tokenizer_texts(table, indices, max_rows, seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # in memory: the .model then records no path, so its bytes are portable
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_writer=buf,
            vocab_size=vocab_size,
            model_type="unigram",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            byte_fallback=True,
            split_digits=True,
            character_coverage=0.9995,
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            max_sentence_length=1 << 16,
            hard_vocab_limit=False,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as exc:
        raise DataError(
            f"training a {vocab_size}-piece SentencePiece model failed: {exc}"
        ) from None
    raw = buf.getvalue()
    tmp = out_dir / ".spm.model.tmp"
    tmp.write_bytes(raw)
    info = {**want, "sha256": hashlib.sha256(raw).hexdigest()}
    info_path.write_text(json.dumps(info, sort_keys=True))
    tmp.replace(model)  # atomic: a killed run leaves no half-written model
    tok = SentencePieceTokenizer(str(model))
    tok.name = f"train:{vocab_size}"
    return tok


# ----------------------------------------------------------------------------
# Chat templates (decoder-only)
# ----------------------------------------------------------------------------

# Our own minimal markup: a role line, the content, eos after assistant turns. (The
# newline after a block tag is written as an expression: HF-style trim_blocks eats it.)
DEFAULT_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}"
    "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


class ChatTemplate:
    """A Jinja chat template (HF convention: ``messages``, ``add_generation_prompt``,
    ``bos_token``, ``eos_token``), compiled once in a sandbox with StrictUndefined.

    >>> t = ChatTemplate(DEFAULT_CHAT_TEMPLATE)
    >>> t.render([{"role": "user", "content": "2+2?"}], add_generation_prompt=True)
    '<|user|>\n2+2?\n<|assistant|>\n'
    """

    def __init__(
        self, source: str, name: str = "inline", bos_token: str = "", eos_token: str | None = None
    ):
        import jinja2
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        def raise_exception(message):
            raise DataError(f"chat template {name}: {message}")

        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined
        )
        env.globals["raise_exception"] = raise_exception
        try:
            self.template = env.from_string(source)
        except jinja2.TemplateError as exc:
            raise DataError(f"chat template {name}: {exc}") from None
        self.source, self.name = source, name
        self.bos_token, self.eos_token = bos_token, eos_token

    def render(self, messages, add_generation_prompt: bool = False, eos_token: str = "</s>") -> str:
        import jinja2

        try:
            return self.template.render(
                messages=list(messages),
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token if self.eos_token is not None else eos_token,
            )
        except jinja2.TemplateError as exc:
            raise DataError(f"chat template {self.name}: {exc}") from None


def _token_text(value) -> str:
    # tokenizer_config.json writes special tokens as a string or {"content": ...}
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return "" if value is None else str(value)


def load_chat_template(spec: str) -> ChatTemplate | None:
    """``none`` → None; ``default`` → :data:`DEFAULT_CHAT_TEMPLATE`; a Jinja string; or a
    ``tokenizer_config.json`` (or a folder holding one) with a ``chat_template`` key.
    """
    if spec in ("", "none"):
        return None
    if spec == "default":
        return ChatTemplate(DEFAULT_CHAT_TEMPLATE, "default")
    if "{{" in spec or "{%" in spec:
        return ChatTemplate(spec, "--chat_template")
    path = Path(spec)
    if path.is_dir():
        path = path / "tokenizer_config.json"
    if not path.is_file():
        raise DataError(
            f"chat template {spec!r}: not a file, a folder with tokenizer_config.json, "
            "a Jinja string, 'default' or 'none'"
        )
    try:
        conf = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON: {exc}") from None
    source = conf.get("chat_template") if isinstance(conf, dict) else None
    if isinstance(source, list):  # [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
        source = named.get("default") or next(iter(named.values()), None)
    if not isinstance(source, str) or not source:
        raise DataError(f"{path}: no 'chat_template' string in it")
    eos = _token_text(conf.get("eos_token")) or None
    return ChatTemplate(source, str(path), _token_text(conf.get("bos_token")), eos)


# ----------------------------------------------------------------------------
# Examples
# ----------------------------------------------------------------------------


@dataclass
class Example:
    """One tokenized example; ``inputs``/``targets`` already truncated (and eos-terminated).

    Decoder-only: the sequence is ``[bos] + inputs + targets`` and the loss falls on
    ``targets``; ``weights`` (one per target token, chat rows with several turns)
    zeroes the loss on the user turns that follow the first assistant turn.
    """

    inputs: list[int]
    targets: list[int]
    task: int
    weights: list[float] | None = None

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


TRUNCATE_SIDES = ("auto", "keep_start", "keep_end")


def keep_side(truncate: str, fmt: str | None) -> str:
    """Which end of a too-long input survives: ``auto`` keeps the end of few-shot rows
    (the query is last; the exemplars before it can go) and the start of the others.

    >>> keep_side("auto", "fs_opt"), keep_side("auto", "zs_noopt"), keep_side("keep_end", "cot")
    ('keep_end', 'keep_start', 'keep_end')
    """
    if truncate == "auto":
        return "keep_end" if (fmt or "").startswith("fs") else "keep_start"
    return truncate


def _cut(ids: list[int], budget: int, side: str) -> list[int]:
    if len(ids) <= budget:
        return ids
    if budget <= 0:
        return []
    return ids[-budget:] if side == "keep_end" else ids[:budget]


def percentiles(lengths: Sequence[int]) -> dict[str, int]:
    """p50/p90/p95/p99/max of token lengths (nearest-rank, integers).

    >>> percentiles([1, 2, 3, 4, 100])["max"]
    100
    """
    arr = np.sort(np.asarray(lengths, dtype=np.int64))
    if arr.size == 0:
        return {"p50": 0, "p90": 0, "p95": 0, "p99": 0, "max": 0}
    out = {}
    for q in (50, 90, 95, 99):
        out[f"p{q}"] = int(arr[min(arr.size - 1, max(0, int(np.ceil(q / 100 * arr.size)) - 1))])
    out["max"] = int(arr[-1])
    return out


def auto_length(lengths: Sequence[int], cap: int, multiple: int = 16) -> int:
    """Smallest multiple of ``multiple`` covering 95% of ``lengths``, within [multiple, cap].

    >>> auto_length([10] * 95 + [500] * 5, cap=1024)
    16
    """
    p95 = percentiles(lengths)["p95"]
    return int(min(cap, max(multiple, -(-p95 // multiple) * multiple)))


class ExampleSource:
    """Tokenizes rows of the export on demand and splits train / held-out eval by example id.

    ``kind`` is ``encdec`` (inputs → encoder, targets → decoder) or ``decoder``
    (``[eos-as-bos] + prompt + answer`` in one sequence, loss on the answer only).
    For ``decoder`` with a ``chat_template``, the prompt and answer are the
    template's rendering of the row's ``messages`` (when the export has that
    column) or of ``[user: inputs, assistant: targets]``; the loss falls on the
    assistant turns only. ``truncate`` picks the side of a too-long input to keep
    (see :func:`keep_side`). Lengths of 0 must be set (e.g. with
    :func:`auto_length` on :meth:`measure`) before examples are made.
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
        truncate: str = "auto",
        chat_template: ChatTemplate | None = None,
        table=None,
    ):
        if kind not in ("encdec", "decoder"):
            raise ValueError(f"kind must be 'encdec' or 'decoder', not {kind!r}")
        if truncate not in TRUNCATE_SIDES:
            raise ValueError(f"truncate must be one of {TRUNCATE_SIDES}, not {truncate!r}")
        self.export = export
        self.tokenizer = tokenizer
        self.kind = kind
        self.inputs_length = inputs_length
        self.targets_length = targets_length
        self.truncate = truncate
        self.chat = chat_template if kind == "decoder" else None
        self.table = table if table is not None else read_table(export, optional=OPTIONAL_COLUMNS)
        self.has_messages = "messages" in self.table.column_names
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

    # -- tokenizing -------------------------------------------------------------

    def _encode_special(self, text: str) -> list[int]:
        # the template writes eos as text; map it to the eos id
        tok = self.tokenizer
        parts = text.split(tok.eos_text) if tok.eos_text else [text]
        out: list[int] = []
        for j, part in enumerate(parts):
            if j:
                out.append(tok.eos_id)
            if part:
                out.extend(tok.encode(part))
        return out

    def chat_pieces(self, messages: list[dict]) -> list[tuple[list[int], str]]:
        """Tokenized pieces of a conversation: ``(ids, kind)`` with kind ``markup``,
        ``content`` (non-assistant message text, the part truncation may cut) or
        ``assistant`` (loss).

        Pieces come from rendering growing prefixes of the conversation: the text a
        message adds is the difference of two renderings, so any template whose
        rendering of ``messages[:i]`` is a prefix of ``messages[:i+1]`` works.
        """
        chat, eos = self.chat, self.tokenizer.eos_text
        pieces: list[tuple[list[int], str]] = []
        done = chat.render([], eos_token=eos) if messages else ""
        if done:
            pieces.append((self._encode_special(done), "markup"))
        for i, m in enumerate(messages):
            role, content = m.get("role"), m.get("content") or ""
            full = chat.render(messages[: i + 1], eos_token=eos)
            if role == "assistant":
                gen = chat.render(messages[:i], add_generation_prompt=True, eos_token=eos)
                if not (gen.startswith(done) and full.startswith(gen)):
                    raise DataError(
                        f"chat template {chat.name}: the rendering of a conversation does not "
                        "extend the rendering of its first turns; it cannot mark assistant tokens"
                    )
                if len(gen) > len(done):
                    pieces.append((self._encode_special(gen[len(done) :]), "markup"))
                pieces.append((self._encode_special(full[len(gen) :]), "assistant"))
            else:
                if not full.startswith(done):
                    raise DataError(
                        f"chat template {chat.name}: rendering {i + 1} message(s) does not "
                        f"extend the rendering of {i}; it cannot mark assistant tokens"
                    )
                added = full[len(done) :]
                at = added.find(content) if content else -1
                if at < 0:
                    pieces.append((self._encode_special(added), "markup"))
                else:
                    for text, k in (
                        (added[:at], "markup"),
                        (content, "content"),
                        (added[at + len(content) :], "markup"),
                    ):
                        if text:
                            pieces.append((self._encode_special(text), k))
            done = full
        return pieces

    def _messages(self, inputs: str, targets: str, messages) -> list[dict]:
        if messages:
            return [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
        return [{"role": "user", "content": inputs}, {"role": "assistant", "content": targets}]

    def _decoder_pieces(self, inputs: str, targets: str, messages) -> list[tuple[list[int], str]]:
        if self.chat is not None:
            return self.chat_pieces(self._messages(inputs, targets, messages))
        tok = self.tokenizer
        return [(tok.encode(inputs), "content"), (tok.encode(targets) + [tok.eos_id], "assistant")]

    def raw_lengths(self, inputs: str, targets: str, messages=None) -> tuple[int, int]:
        """(input tokens, target tokens) before truncation, eos included."""
        tok = self.tokenizer
        if self.kind == "encdec":
            return len(tok.encode(inputs)) + 1, len(tok.encode(targets)) + 1
        pieces = self._decoder_pieces(inputs, targets, messages)
        first = next((j for j, (_, k) in enumerate(pieces) if k == "assistant"), len(pieces))
        return sum(len(p) for p, _ in pieces[:first]), sum(len(p) for p, _ in pieces[first:])

    def encode_pair(
        self,
        inputs: str,
        targets: str,
        task: int = 0,
        count: bool = True,
        fmt: str | None = None,
        messages=None,
    ) -> Example:
        if not self.inputs_length or not self.targets_length:
            raise ValueError("inputs_length/targets_length are 0: resolve them from the data first")
        tok = self.tokenizer
        side = keep_side(self.truncate, fmt)
        if self.kind == "encdec":
            raw_in, raw_tgt = tok.encode(inputs), tok.encode(targets)
            inp = _cut(raw_in, self.inputs_length - 1, side) + [tok.eos_id]
            tgt = _cut(raw_tgt, self.targets_length - 1, "keep_start") + [tok.eos_id]
            ex = Example(inp, tgt, task)
            inp_cut, tgt_cut = (
                len(raw_in) >= self.inputs_length,
                len(raw_tgt) >= self.targets_length,
            )
        else:
            ex, inp_cut, tgt_cut = self._decoder_example(
                self._decoder_pieces(inputs, targets, messages), task, side
            )
        if count:
            self.truncation.examples += 1
            self.truncation.inputs_truncated += int(inp_cut)
            self.truncation.targets_truncated += int(tgt_cut)
        return ex

    def _decoder_example(self, pieces, task: int, side: str) -> tuple[Example, bool, bool]:
        budget = self.inputs_length + self.targets_length
        tgt_cut = any(k == "assistant" and len(p) > self.targets_length for p, k in pieces)
        pieces = [(p[: self.targets_length] if k == "assistant" else list(p), k) for p, k in pieces]
        excess = sum(len(p) for p, _ in pieces) - budget
        inp_cut = excess > 0
        content = [j for j, (_, k) in enumerate(pieces) if k == "content"]
        if side == "keep_start":
            content.reverse()
        for j in content:  # cut user/system text first, from the side we do not keep
            if excess <= 0:
                break
            p, k = pieces[j]
            n = min(excess, len(p))
            pieces[j] = (_cut(p, len(p) - n, "keep_end" if side == "keep_end" else "keep_start"), k)
            excess -= n
        seq = [t for p, _ in pieces for t in p]
        w = [float(k == "assistant") for p, k in pieces for _ in p]
        if len(seq) > budget:  # markup or answers alone overflow: cut the tail
            seq, w, tgt_cut = seq[:budget], w[:budget], True
        first = w.index(1.0) if 1.0 in w else len(w)
        inputs, targets, weights = seq[:first], seq[first:], w[first:]
        return (
            Example(inputs, targets, task, None if all(weights) else weights),
            inp_cut,
            tgt_cut,
        )

    def _columns(self, rows):
        n = rows.num_rows
        fmts = rows.column("format").to_pylist() if "format" in rows.column_names else [None] * n
        msgs = (
            rows.column("messages").to_pylist()
            if self.has_messages and self.chat is not None
            else [None] * n
        )
        return (
            rows.column("inputs").to_pylist(),
            rows.column("targets").to_pylist(),
            rows.column("task").to_pylist(),
            fmts,
            msgs,
        )

    def get(self, indices: Sequence[int], count: bool = True) -> list[Example]:
        if len(indices) == 0:
            return []
        rows = self.table.take(np.asarray(indices, dtype=np.int64))
        return [
            self.encode_pair(i or "", t or "", self._task_index[k], count, f, m)
            for i, t, k, f, m in zip(*self._columns(rows))
        ]

    def measure(self, indices: Sequence[int], limit: int = 20_000, seed: int = 0):
        """Token lengths ``(inputs, targets)`` (numpy arrays, before truncation) of ``indices``,
        on a seeded sample of ``limit`` rows when there are more."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) > limit:
            idx = np.sort(np.random.default_rng([seed, 0x1E7]).choice(idx, limit, replace=False))
        rows = self.table.take(idx)
        li, lt = [], []
        for i, t, _, _, m in zip(*self._columns(rows)):
            a, b = self.raw_lengths(i or "", t or "", m)
            li.append(a)
            lt.append(b)
        return np.asarray(li, np.int64), np.asarray(lt, np.int64)

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
    # loss only where the next token is a target (assistant) token
    weights[n - len(ex.targets) :] = 1.0 if ex.weights is None else ex.weights
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
