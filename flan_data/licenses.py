"""License policies for mixtures, and the attribution file of an export.

A :class:`LicensePolicy` says which tasks a mixture may use, judged on each
task's ``metadata.licensing`` facts (see :class:`~flan_data.specs.LicenseInfo`).
Planning removes the tasks it rejects *before* computing rates, so collection
rates, caps and format splits hold over what remains.

>>> p = LicensePolicy.from_options(license="commercial")
>>> p.classes
('commercial',)
>>> from flan_data.specs import LicenseInfo
>>> p.reason_for(LicenseInfo(use="non-commercial", licenses=("CC BY-NC 4.0",)))
'license class non-commercial (CC BY-NC 4.0)'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import FlanDataError, UnknownNameError
from .specs import LICENSE_CLASSES, LicenseInfo, TaskSpec

#: ``--license LEVEL`` allows every class up to LEVEL in this order (as the Data
#: Provenance Collection's own filter does); ``unknown`` is never implied.
LICENSE_LEVELS = LICENSE_CLASSES[:-1]
ATTRIBUTION_FILE = "ATTRIBUTION.md"


@dataclass(frozen=True)
class LicensePolicy:
    """Which tasks a mixture may draw from.

    ``classes``: the allowed use classes (None: any). ``share_alike``: whether
    share-alike data is allowed (False also removes tasks whose share-alike flag
    is unknown). ``model_generated``: whether data marked model-generated is
    allowed (False also removes tasks where that is unknown).
    """

    classes: tuple[str, ...] | None = None
    share_alike: bool = True
    model_generated: bool = True

    @classmethod
    def from_options(
        cls,
        license: str | None = None,
        license_classes: Iterable[str] = (),
        allow_share_alike: bool = True,
        exclude_model_generated: bool = False,
    ) -> LicensePolicy:
        """Build from the CLI flags; unknown names suggest the closest one."""
        classes: list[str] = []
        if license is not None and license != "any":
            if license not in LICENSE_LEVELS:
                raise UnknownNameError("license level", license, (*LICENSE_LEVELS, "any"))
            classes += LICENSE_LEVELS[: LICENSE_LEVELS.index(license) + 1]
        for c in license_classes:
            for part in str(c).split(","):
                part = part.strip()
                if part not in LICENSE_CLASSES:
                    raise UnknownNameError("license class", part, LICENSE_CLASSES)
                classes.append(part)
        return cls(
            classes=tuple(x for x in LICENSE_CLASSES if x in classes) if classes else None,
            share_alike=allow_share_alike,
            model_generated=not exclude_model_generated,
        )

    @property
    def active(self) -> bool:
        return self.classes is not None or not self.share_alike or not self.model_generated

    def reason_for(self, info: LicenseInfo) -> str | None:
        """Why a task with these facts is removed, or None when it is allowed."""
        names = ", ".join(dict.fromkeys(info.licenses)) or "no license facts"
        if self.classes is not None and info.use not in self.classes:
            return f"license class {info.use} ({names})"
        if not self.share_alike and info.share_alike is not False:
            return f"share-alike {'required' if info.share_alike else 'not known'} ({names})"
        if not self.model_generated and info.model_generated is not False:
            return "model-generated data" if info.model_generated else "model-generated not known"
        return None

    def reason(self, task: TaskSpec) -> str | None:
        return self.reason_for(task.metadata.licensing)

    def to_json(self) -> dict[str, Any]:
        return {
            "license_classes": list(self.classes) if self.classes is not None else None,
            "allow_share_alike": self.share_alike,
            "allow_model_generated": self.model_generated,
            "facts": "catalog metadata.licensing (Data Provenance Collection records unless overridden)",
        }


def group_reasons(removed: Mapping[str, str]) -> list[tuple[str, list[str]]]:
    """Removed tasks grouped by reason, largest group first (for display)."""
    groups: dict[str, list[str]] = {}
    for task, why in removed.items():
        groups.setdefault(why, []).append(task)
    return sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))


# ----------------------------------------------------------------------------- attribution

#: BibTeX of the papers behind each collection (bibliographic facts), and of the
#: license facts' source.
COLLECTION_BIBTEX = {
    "flan2021": """@inproceedings{wei2022finetuned,
  title = {Finetuned Language Models Are Zero-Shot Learners},
  author = {Wei, Jason and Bosma, Maarten and Zhao, Vincent Y. and Guu, Kelvin and Yu, Adams Wei and Lester, Brian and Du, Nan and Dai, Andrew M. and Le, Quoc V.},
  booktitle = {International Conference on Learning Representations},
  year = {2022},
  eprint = {2109.01652},
  archivePrefix = {arXiv}
}""",
    "t0sf": """@inproceedings{sanh2022multitask,
  title = {Multitask Prompted Training Enables Zero-Shot Task Generalization},
  author = {Sanh, Victor and Webson, Albert and Raffel, Colin and Bach, Stephen H. and others},
  booktitle = {International Conference on Learning Representations},
  year = {2022},
  eprint = {2110.08207},
  archivePrefix = {arXiv}
}""",
    "niv2": """@inproceedings{wang2022super,
  title = {Super-NaturalInstructions: Generalization via Declarative Instructions on 1600+ NLP Tasks},
  author = {Wang, Yizhong and Mishra, Swaroop and Alipoormolabashi, Pegah and Kordi, Yeganeh and others},
  booktitle = {Proceedings of the 2022 Conference on Empirical Methods in Natural Language Processing},
  year = {2022},
  eprint = {2204.07705},
  archivePrefix = {arXiv}
}""",
    "cot": """@article{chung2022scaling,
  title = {Scaling Instruction-Finetuned Language Models},
  author = {Chung, Hyung Won and Hou, Le and Longpre, Shayne and Zoph, Barret and others},
  journal = {arXiv preprint arXiv:2210.11416},
  year = {2022}
}""",
    "dialog": """@inproceedings{dai2022dialog,
  title = {Dialog Inpainting: Turning Documents into Dialogs},
  author = {Dai, Zhuyun and Chaganty, Arun Tejasvi and Zhao, Vincent Y. and Amini, Aida and others},
  booktitle = {International Conference on Machine Learning},
  year = {2022},
  eprint = {2205.09073},
  archivePrefix = {arXiv}
}

@inproceedings{anantha2021open,
  title = {Open-Domain Question Answering Goes Conversational via Question Rewriting},
  author = {Anantha, Raviteja and Vakulenko, Svitlana and Tu, Zhucheng and Longpre, Shayne and Pulman, Stephen and Chappidi, Srinivas},
  booktitle = {Proceedings of the 2021 Conference of the North American Chapter of the Association for Computational Linguistics},
  year = {2021},
  eprint = {2010.04898},
  archivePrefix = {arXiv}
}""",
}
GENERAL_BIBTEX = (
    """@inproceedings{longpre2023flan,
  title = {The Flan Collection: Designing Data and Methods for Effective Instruction Tuning},
  author = {Longpre, Shayne and Hou, Le and Vu, Tu and Webson, Albert and Chung, Hyung Won and others},
  booktitle = {International Conference on Machine Learning},
  year = {2023},
  eprint = {2301.13688},
  archivePrefix = {arXiv}
}""",
    """@article{longpre2023data,
  title = {The Data Provenance Initiative: A Large Scale Audit of Dataset Licensing \\& Attribution in AI},
  author = {Longpre, Shayne and Mahari, Robert and Chen, Anthony and Obeng-Marnu, Naana and others},
  journal = {arXiv preprint arXiv:2310.16387},
  year = {2023}
}""",
)


def attribution_entries(tasks: Sequence[TaskSpec]) -> list[dict[str, Any]]:
    """One entry per distinct license record (source dataset), with its tasks."""
    by_key: dict[tuple, dict[str, Any]] = {}
    for t in tasks:
        info = t.metadata.licensing
        key = (
            (info.source, info.use, info.licenses, info.url) if info.known else ("unknown", t.name)
        )
        e = by_key.get(key)
        if e is None:
            e = by_key[key] = {**info.to_dict(), "tasks": [], "collections": []}
        e["tasks"].append(t.name)
        if t.collection not in e["collections"]:
            e["collections"].append(t.collection)
    return sorted(by_key.values(), key=lambda e: (e["use"], e["source"] or "", e["tasks"][0]))


def attribution_markdown(
    tasks: Sequence[TaskSpec], *, mixture: str, policy: LicensePolicy | None = None
) -> str:
    """The attribution file of an export: every included task's license facts,
    grouped by source dataset, then the citations (BibTeX) of the collections."""
    tasks = sorted(tasks, key=lambda t: t.name)
    entries = attribution_entries(tasks)
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t.metadata.licensing.use] = counts.get(t.metadata.licensing.use, 0) + 1
    lines = [
        f"# Attribution: mixture `{mixture}`",
        "",
        f"{len(tasks)} task(s) from {len(entries)} license record(s). License facts are the catalog's "
        "`metadata.licensing` (the Data Provenance Collection's records unless a user override says "
        "otherwise); they describe each source dataset as its creators released it and are not legal advice.",
        "",
        "Tasks per use class: "
        + ", ".join(f"{c} {counts[c]}" for c in LICENSE_CLASSES if c in counts)
        + ".",
        "",
    ]
    if policy is not None and policy.active:
        pj = policy.to_json()
        lines += [
            f"License policy: classes {', '.join(pj['license_classes'] or ['any'])}; "
            f"share-alike {'allowed' if pj['allow_share_alike'] else 'excluded'}; "
            f"model-generated {'allowed' if pj['allow_model_generated'] else 'excluded'}.",
            "",
        ]
    need_attr = [e for e in entries if e["attribution"] is not False and e["use"] != "unknown"]
    share = [e for e in entries if e["share_alike"]]
    if need_attr:
        lines += [f"{len(need_attr)} record(s) require (or may require) attribution; "
                  f"{len(share)} carry a share-alike license.", ""]  # fmt: skip
    lines += ["## Licenses", ""]
    lines += ["| use | licenses | attribution | share-alike | model-generated | source | tasks |",
              "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip

    def flag(x: bool | None) -> str:
        return "unknown" if x is None else ("yes" if x else "no")

    def cell(s: str) -> str:
        return s.replace("|", "\\|").replace("\n", " ")

    for e in entries:
        src = e["source"] or "-"
        if e["url"]:
            src += f" <{e['url']}>"
        names = e["tasks"]
        shown = ", ".join(names[:12]) + (f" (+{len(names) - 12} more)" if len(names) > 12 else "")
        lines.append(
            f"| {e['use']} | {cell(', '.join(e['licenses']) or '-')} | {flag(e['attribution'])} | "
            f"{flag(e['share_alike'])} | {flag(e['model_generated'])} | {cell(src)} | {cell(shown)} |"
        )
    lines += ["", "## Citations", "", "```bibtex"]
    colls = list(dict.fromkeys(t.collection for t in tasks))
    bib = [COLLECTION_BIBTEX[c] for c in colls if c in COLLECTION_BIBTEX] + list(GENERAL_BIBTEX)
    lines += ["\n\n".join(bib), "```", ""]
    return "\n".join(lines)


def license_summary(tasks: Sequence[TaskSpec]) -> dict[str, Any]:
    """Counts per use class and the distinct license names (for manifests and cards)."""
    classes: dict[str, int] = {}
    names: dict[str, int] = {}
    for t in tasks:
        info = t.metadata.licensing
        classes[info.use] = classes.get(info.use, 0) + 1
        for n in dict.fromkeys(info.licenses):
            names[n] = names.get(n, 0) + 1
    return {
        "use_classes": {c: classes[c] for c in LICENSE_CLASSES if c in classes},
        "licenses": dict(sorted(names.items(), key=lambda kv: (-kv[1], kv[0]))),
        "file": ATTRIBUTION_FILE,
    }


def check_policy_leaves_tasks(removed: Mapping[str, str], kept: int, mixture: str) -> None:
    if kept == 0:
        raise FlanDataError(
            f"mixture {mixture!r}: the license policy removes every task ({len(removed)} removed); "
            "relax --license / --license-class or allow share-alike"
        )
