"""Templates are untrusted input: the work one render may do is bounded
(output size, sizes of built values, call depth, operations, time), and every
known sandbox escape stays closed."""

from __future__ import annotations

import copy

import pytest
from click.testing import CliRunner

from flan_data import Catalog, TemplateLimitError, TemplateSecurityError, lint
from flan_data.cli import main
from flan_data.export import export_mixture
from flan_data.specs import TemplateSpec
from flan_data.templates import TemplateEngine, TemplateLimits


def spec(input: str, target: str = "{{ x }}", id: str = "t-01") -> TemplateSpec:
    return TemplateSpec(
        id=id, set="s", kind="zero_shot", input=input, target=target, file="templates/x.yaml"
    )


@pytest.fixture(scope="module")
def eng() -> TemplateEngine:
    return TemplateEngine()


#: (template, the limit it must hit)
HOSTILE = [
    ("{{ 9 ** (9 ** 9) }}", "integer size"),
    ("{{ 'a' * 10 ** 10 }}", "sequence size"),
    ("{{ 10 ** 10 * 'a' }}", "sequence size"),
    ("{{ [0] * 10 ** 9 }}", "sequence size"),
    ("{{ lipsum(10 ** 7) }}", "sequence size"),
    ("{{ lipsum(n=5, max=10 ** 9) }}", "sequence size"),
    ("{% for i in range(10 ** 9) %}{% endfor %}", "number size"),
    ("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}", "work"),
    (
        "{% set r = range(100000) %}{% for a in r %}{% for b in r %}{% for c in r %}{% endfor %}{% endfor %}{% endfor %}",
        "work",
    ),
    ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "call depth"),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "work",
    ),
    (
        "{% set xs = [1] %}{% for i in range(64) %}{% set _ = xs.extend(xs) %}{% endfor %}",
        "sequence size",
    ),
    (
        "{% set s = namespace(v='ab') %}{% for i in range(64) %}{% set s.v = s.v + s.v %}{% endfor %}",
        "sequence size",
    ),
    (
        "{% set n = namespace(v=3) %}{% for i in range(64) %}{% set n.v = n.v * n.v %}{% endfor %}",
        "integer size",
    ),
    ("{{ 'x'|center(10 ** 9) }}", "sequence size"),
    ("{{ 'a\nb'|indent(10 ** 9) }}", "sequence size"),
    ("{{ '%0999999999d' % 1 }}", "sequence size"),
    ("{{ '%*d' % (10 ** 9, 1) }}", "sequence size"),
    ("{{ '{:>999999999}'.format(1) }}", "sequence size"),
    ("{{ '{:>{}}'.format(1, 10 ** 9) }}", "sequence size"),
    ("{{ '%0999999999d'|format(1) }}", "sequence size"),
    ("{{ 'ab'.ljust(10 ** 9) }}", "sequence size"),
    ("{{ 'a\t'.expandtabs(10 ** 9) }}", "sequence size"),
    ("{{ ('a' * 100000)|replace('a', 'a' * 100000) }}", "sequence size"),
    ("{{ ('a' * 100000).replace('a', 'a' * 100000) }}", "sequence size"),
    ("{{ range(10)|slice(10 ** 9)|list }}", "sequence size"),
    ("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", "output size"),
    (
        "{% set xs = [] %}{% for i in range(100) %}{% set _ = xs.append('y' * 900000) %}{% endfor %}{{ xs|join }}",
        "sequence size",
    ),
    (
        "{% set xs = [] %}{% for i in range(100) %}{% set _ = xs.append('y' * 900000) %}{% endfor %}{{ ''.join(xs) }}",
        "sequence size",
    ),
    ("{{ (10 ** 300) ** 2.0 }}", "number size"),
]


@pytest.mark.parametrize("text, limit", HOSTILE)
def test_hostile_template_hits_a_limit_with_a_one_line_error(eng, text, limit):
    with pytest.raises(TemplateLimitError) as ei:
        eng.render(eng.compile(spec(text)), {"x": "ok"})
    msg = str(ei.value)
    assert "\n" not in msg
    assert msg.startswith("templates/x.yaml: template 't-01': template exceeds the "), msg
    assert f"the {limit} limit" in msg, msg


@pytest.mark.parametrize("text, limit", HOSTILE[:12])
def test_hostile_template_in_the_target_too(eng, text, limit):
    with pytest.raises(TemplateLimitError, match=f"the {limit} limit"):
        eng.render(eng.compile(spec("{{ x }}", text)), {"x": "ok"})


def test_batch_rendering_gives_each_row_its_own_budget(eng):
    # 60,000 loop steps per row: fine for one row, over the budget only if rows shared it
    ct = eng.compile(spec("{% for i in range(60000) %}{% endfor %}{{ x }}"))
    rows = [{"x": f"r{i}"} for i in range(30)]
    assert eng.render_many(ct, rows) == [(f"r{i}", f"r{i}") for i in range(30)]


def test_batch_with_one_hostile_row_names_it(eng):
    ct = eng.compile(spec("{{ 'a' * x }}"))
    with pytest.raises(TemplateLimitError, match="'t-01'.*sequence size"):
        eng.render_many(ct, [{"x": 3}, {"x": 10**10}])


def test_real_templates_stay_far_below_the_limits(eng):
    text = (
        "{% macro opt(xs) %}{% for o in xs %}- {{ o|upper }}\n{% endfor %}{% endmacro %}"
        "{{ '%s: %d' % (x, 3) }} {{ '{:>5}'.format(x) }} {{ 'ab' * 3 }} {{ 2 ** 64 }}{{ opt(['a', 'b']) }}"
        "{{ lipsum(1, false, 5, 10)|length > 0 }} {{ 'Population {:,}'.format(38000000) }}"
    )
    i, t = eng.render(eng.compile(spec(text)), {"x": "ok"})
    assert i.startswith(
        "ok: 3    ok ababab 18446744073709551616- A\n- B\nTrue Population 38,000,000"
    )
    assert t == "ok"


def test_limits_are_configurable_and_validated():
    small = TemplateEngine(TemplateLimits(output_chars=10))
    with pytest.raises(TemplateLimitError, match="output size limit \\(10 characters"):
        small.render(small.compile(spec("{{ x * 11 }}")), {"x": "a"})
    with pytest.raises(ValueError, match="ops"):
        TemplateLimits(ops=0)


def test_limits_after_a_violation_do_not_leak_into_the_next_render(eng):
    bad = eng.compile(
        spec("{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}")
    )
    with pytest.raises(TemplateLimitError):
        eng.render(bad, {"x": "ok"})
    ok = eng.compile(spec("{% for a in range(1000) %}{% endfor %}{{ x }}", id="t-02"))
    assert eng.render(ok, {"x": "fine"}) == ("fine", "fine")


def test_field_expressions_are_bounded_too(eng):
    f = eng.expression("'a' * 10 ** 10")
    with pytest.raises(TemplateLimitError, match="sequence size"):
        f()


# ----------------------------------------------------------------------------- lint, render, export


def _catalog_with(h, root, inputs: list[str]):
    t = copy.deepcopy(h.TOY_TEMPLATES)
    t["sets"]["toy"]["templates"] = [
        {
            "id": f"toy-{i:02d}",
            "input": x + "{{ premise }}{{ options_block }}",
            "target": "{{ answer }}",
        }
        for i, x in enumerate(inputs, 1)
    ]
    return h.write_catalog_dir(
        root,
        templates=t,
        mixtures={"m": {"source": "sample", "members": [{"task": "toy", "formats": ["zs_opt"]}]}},
    )


def test_lint_survives_and_reports_every_hostile_template(tmp_path, h):
    root = _catalog_with(h, tmp_path / "c", [x for x, _ in HOSTILE])
    problems = [p for p in lint(Catalog.load(root)) if p.level == "error"]
    flagged = {
        p.where.split("template ")[1].split(",")[0] for p in problems if "template toy-" in p.where
    }
    assert flagged == {f"toy-{i:02d}" for i in range(1, len(HOSTILE) + 1)}
    assert all("limit" in p.message for p in problems if "template toy-" in p.where)
    r = CliRunner().invoke(main, ["--catalog", str(root), "lint"])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert r.output.count("exceeds the") >= len(HOSTILE)


def test_render_cli_gives_a_one_line_error(tmp_path, h):
    root = _catalog_with(h, tmp_path / "c", ["{{ 9 ** (9 ** 9) }}"])
    r = CliRunner().invoke(main, ["--catalog", str(root), "render", "toy"])
    h.assert_cli_error(r, "toy.yaml: template 'toy-01'", "integer size limit")


def test_export_fails_cleanly_or_counts_the_rows_as_record_errors(tmp_path, h):
    root = _catalog_with(h, tmp_path / "c", ["{{ 'a' * 10 ** 10 }}", "Plain: "])
    cat = Catalog.load(root)
    quiet = {"progress": False, "log": lambda s: None, "total": 12}
    r = CliRunner().invoke(
        main,
        [
            "--catalog",
            str(root),
            "export",
            "-m",
            "m",
            "--total",
            "12",
            "-q",
            "--out",
            str(tmp_path / "o1"),
        ],
    )
    h.assert_cli_error(r, "template 'toy-01'", "sequence size limit")
    assert not (tmp_path / "o1" / "COMPLETED").exists()
    m = export_mixture(cat, "m", tmp_path / "o2", on_error="skip", **quiet)
    skipped = sum(m["skipped"]["toy"].values())
    assert skipped > 0 and m["num_rows"] == 12 - skipped
    assert any("sequence size limit" in k for k in m["skipped"]["toy"])


# ----------------------------------------------------------------------------- escapes (regression)

#: 35 escape attempts tried against the sandbox: each must stay a security error.
ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ lipsum.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ ''.format.__globals__ }}",
    "{{ x.__class__.__base__.__subclasses__() }}",
    "{{ x|attr('__class__') }}",
    "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
    "{{ (''.__class__ or 'x') }}",
    "{{ ''.__class__ ~ '' }}",
    "{{ x.__class__ }}",
    "{% set c = ''.__class__ %}{{ c }}",
    "{{ (''.__class__ or 1) }}",
    "{{ x.__class__.__mro__ }}",
    "{{ [].__class__.__base__ }}",
    "{{ {}.__class__.__subclasses__() }}",
    "{{ ().__class__.__bases__[0] }}",
    "{{ x|attr('__class__')|string }}",
    "{{ range.__call__.__self__ }}",
    "{{ range.__globals__ }}",
    "{{ dict.__base__ }}",
    "{{ x.__len__.__self__ }}",
    "{{ x.upper.__self__.__class__ }}",
    "{{ cycler.next.__self__.__class__.__init__ }}",
    "{{ namespace.__class__.__init__ }}",
    "{{ (x|attr('__class__')).__mro__ }}",
    "{{ x.__doc__ }}",
    "{{ ''.__class__.__dict__ }}",
    "{% macro m() %}{% endmacro %}{{ m.__init__.__globals__ }}",
]


def test_there_are_35_distinct_escapes():
    assert len(set(ESCAPES)) == 35


@pytest.mark.parametrize("payload", ESCAPES)
def test_escape_payloads_stay_closed(eng, payload):
    with pytest.raises(TemplateSecurityError) as ei:
        eng.render(eng.compile(spec(payload)), {"x": "text"})
    assert "'t-01'" in str(ei.value) and "tried to leave the sandbox" in str(ei.value)
