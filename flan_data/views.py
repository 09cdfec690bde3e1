"""Views of one render: chat messages and the public Flan dumps' columns.

Both are pure functions of a rendered row, so an encoder-decoder model (which
reads ``inputs``/``targets``) and a decoder-only model (which reads
``messages``) train on exactly the same examples.

``messages`` is a list of ``{"role", "content"}`` turns: an optional system
turn, then ``user`` = inputs and ``assistant`` = targets. With
``chat_fewshot="multiturn"`` a few-shot row puts each exemplar in its own
user/assistant pair (the exemplar's own rendered input and target, without the
few-shot style's prefixes) and ends with the query.

>>> messages_for("2+2?", "4")
[{'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}]
>>> messages_for("Q: 1+1?\\nA: 2\\n\\nQ: 2+2?\\nA:", "4", turns=([("1+1?", "2")], "2+2?"))
[{'role': 'user', 'content': '1+1?'}, {'role': 'assistant', 'content': '2'}, {'role': 'user', 'content': '2+2?'}, {'role': 'assistant', 'content': '4'}]

The ``flan-dump`` column set adds the columns of the public Flan 2022 dumps
(``task_source``, ``task_name``, ``template_type``, ``template_idx``), so code
written for those dumps runs on an export unchanged:

>>> TASK_SOURCE["niv2"], TEMPLATE_TYPE["cot"]
('NIv2', 'zs_opt')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from .errors import FlanDataError, UnknownNameError

CHAT_FEWSHOT = ("single", "multiturn")
COLUMN_SETS = ("flan-dump",)

MESSAGE_TYPE = pa.struct([("role", pa.string()), ("content", pa.string())])
MESSAGES_TYPE = pa.list_(MESSAGE_TYPE)

#: Our collection ids → the ``task_source`` values of the public dumps.
TASK_SOURCE = {
    "flan2021": "Flan2021",
    "t0sf": "T0",
    "niv2": "NIv2",
    "cot": "CoT",
    "dialog": "Dialog",
}
#: Our formats → the dumps' ``template_type``. The dumps have no separate
#: chain-of-thought type: CoT rows are told apart by ``task_source == "CoT"``,
#: and our ``cot`` format (a zero-shot CoT template with its options) maps to
#: ``zs_opt``.
TEMPLATE_TYPE = {
    "zs_opt": "zs_opt",
    "zs_noopt": "zs_noopt",
    "fs_opt": "fs_opt",
    "fs_noopt": "fs_noopt",
    "cot": "zs_opt",
}
FLAN_DUMP_FIELDS = (
    pa.field("task_source", pa.string()),
    pa.field("task_name", pa.string()),
    pa.field("template_type", pa.string()),
    pa.field("template_idx", pa.int64()),
)
#: Type of every optional column an export may carry (readers of JSON Lines use it).
EXTRA_COLUMN_TYPES: dict[str, pa.DataType] = {
    "messages": MESSAGES_TYPE,
    **{f.name: f.type for f in FLAN_DUMP_FIELDS},
}


@dataclass(frozen=True)
class OutputSpec:
    """What an export writes besides the core columns, and in which file format.

    >>> OutputSpec(file_format="parquet", columns=("flan-dump",)).column_names()[-4:]
    ('task_source', 'task_name', 'template_type', 'template_idx')
    """

    file_format: str = "arrow"
    messages: bool = True
    chat_fewshot: str = "single"
    system: str | None = None
    columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        from .export.writer import shard_format

        shard_format(self.file_format)  # raises UnknownNameError with a suggestion
        if self.chat_fewshot not in CHAT_FEWSHOT:
            raise UnknownNameError("--chat-fewshot mode", self.chat_fewshot, CHAT_FEWSHOT)
        for c in self.columns:
            if c not in COLUMN_SETS:
                raise UnknownNameError("column set", c, COLUMN_SETS)
        if not self.messages and (self.chat_fewshot != "single" or self.system is not None):
            raise FlanDataError(
                "--chat-fewshot and --system shape the messages column; they need messages (drop --no-messages)"
            )
        object.__setattr__(self, "columns", tuple(dict.fromkeys(self.columns)))

    @property
    def multiturn(self) -> bool:
        return self.messages and self.chat_fewshot == "multiturn"

    def extra_fields(self) -> list[pa.Field]:
        out = [pa.field("messages", MESSAGES_TYPE)] if self.messages else []
        if "flan-dump" in self.columns:
            out.extend(FLAN_DUMP_FIELDS)
        return out

    def column_names(self) -> tuple[str, ...]:
        from .export.writer import SCHEMA

        return tuple(SCHEMA.names) + tuple(f.name for f in self.extra_fields())

    def schema(self) -> pa.Schema:
        from .export.writer import SCHEMA

        s = SCHEMA
        for f in self.extra_fields():
            s = s.append(f)
        return s

    def to_json(self) -> dict[str, Any]:
        return {
            "file_format": self.file_format,
            "messages": self.messages,
            "chat_fewshot": self.chat_fewshot if self.messages else None,
            "system": self.system,
            "columns": list(self.columns),
        }


Turns = tuple[Sequence[tuple[str, str]], str]


def messages_for(
    inputs: str, targets: str, *, turns: Turns | None = None, system: str | None = None
) -> list[dict[str, str]]:
    """The chat view of one row.

    ``turns`` = (exemplars as (input, target) pairs, query input) splits a
    few-shot row into turns; without it the user turn is ``inputs`` verbatim.
    """
    out = [{"role": "system", "content": system}] if system is not None else []
    if turns is None:
        out.append({"role": "user", "content": inputs})
    else:
        exemplars, query = turns
        for x, y in exemplars:
            out.append({"role": "user", "content": x})
            out.append({"role": "assistant", "content": y})
        out.append({"role": "user", "content": query})
    out.append({"role": "assistant", "content": targets})
    return out


def add_views(
    cols: dict[str, list[Any]], spec: OutputSpec, template_index: Mapping[str, int]
) -> dict[str, list[Any]]:
    """Add the optional columns of ``spec`` to rendered columns (in place; returned).

    ``cols`` are :meth:`~flan_data.render.TaskRenderer.render_batch` columns;
    a ``turns`` column (asked for with ``turns=True``) is consumed.
    ``template_index`` maps template id → its position among the task's templates.
    """
    turns = cols.pop("turns", None)
    if spec.messages:
        sys_ = spec.system
        if spec.multiturn and turns is not None:
            cols["messages"] = [
                messages_for(x, y, turns=t, system=sys_)
                for x, y, t in zip(cols["inputs"], cols["targets"], turns)
            ]
        else:
            cols["messages"] = [
                messages_for(x, y, system=sys_) for x, y in zip(cols["inputs"], cols["targets"])
            ]
    if "flan-dump" in spec.columns:
        cols["task_source"] = [TASK_SOURCE.get(c, c) for c in cols["collection"]]
        cols["task_name"] = list(cols["task"])
        cols["template_type"] = [TEMPLATE_TYPE[f] for f in cols["format"]]
        cols["template_idx"] = [template_index[t] for t in cols["template_id"]]
    return cols


def chat_task(
    catalog,
    task: str,
    *,
    fmt: str = "zs_opt",
    n: int = 3,
    seed: int = 0,
    split: str = "validation",
    template_id: str | None = None,
    source: str = "auto",
    source_dirs=None,
    config=None,
    chat_fewshot: str = "single",
    system: str | None = None,
    pool_size: int = 1000,
):
    """The messages view of :func:`~flan_data.render.render_task`'s rows (same records,
    same seed, same text); ``flan render --chat`` prints it.

    >>> from flan_data import Catalog
    >>> m = next(chat_task(Catalog.load(), "anli_r1", n=1, source="sample"))
    >>> [x["role"] for x in m]
    ['user', 'assistant']
    """
    import itertools

    from .render import Renderer, build_pool, is_fewshot_format
    from .sources import open_task_source

    if chat_fewshot not in CHAT_FEWSHOT:
        raise UnknownNameError("--chat-fewshot mode", chat_fewshot, CHAT_FEWSHOT)
    multi = chat_fewshot == "multiturn"
    tr = Renderer(catalog, config).task_renderer(task)
    src = open_task_source(catalog, tr.task, source, source_dirs)
    pool = None
    if is_fewshot_format(fmt) and not tr.task.exemplar_field:
        pool = build_pool(tr, src.read("train"), limit=pool_size)
    for eid, rec in itertools.islice(src.read(split), n):
        cols = tr.render_batch([(eid, rec)], split=split, fmt=fmt, seed=seed, pool=pool,
                               template_id=template_id, turns=multi)  # fmt: skip
        turns = cols["turns"][0] if multi else None
        yield messages_for(cols["inputs"][0], cols["targets"][0], turns=turns, system=system)


def check_messages(messages: Sequence[Mapping[str, str]]) -> tuple[str, str]:
    """(user text, assistant text) of a single-turn messages list; raises on another shape."""
    roles = [m["role"] for m in messages]
    if roles and roles[0] == "system":
        messages, roles = messages[1:], roles[1:]
    if roles != ["user", "assistant"]:
        raise FlanDataError(f"expected user/assistant turns, got roles {roles}")
    return messages[0]["content"], messages[1]["content"]


__all__ = [
    "CHAT_FEWSHOT",
    "COLUMN_SETS",
    "EXTRA_COLUMN_TYPES",
    "FLAN_DUMP_FIELDS",
    "MESSAGES_TYPE",
    "OutputSpec",
    "TASK_SOURCE",
    "TEMPLATE_TYPE",
    "add_views",
    "chat_task",
    "check_messages",
    "messages_for",
]
