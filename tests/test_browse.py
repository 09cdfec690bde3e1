"""Catalog browsing without a browser: `flan catalog show/templates/search`, the
browse app's routes (status codes, 404s, refused paths, Host checks) and its
loopback-only default bind."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import threading

import pytest
from click.testing import CliRunner

from flan_data import Catalog
from flan_data.browse.query import search_tasks, task_info, template_sets, template_tokens
from flan_data.browse.server import BrowseApp, is_loopback, make_server, url_of
from flan_data.cli import main


def run(*args: str):
    return CliRunner().invoke(main, list(args))


def ok(r) -> str:
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def cat():
    return Catalog.load()


@pytest.fixture(scope="module")
def app(cat):
    return BrowseApp(cat)


# ----------------------------------------------------------------------------- terminal


def test_show_prints_every_template_text(cat):
    out = ok(run("catalog", "show", "anli_r1", "--no-pager"))
    tpls = cat.templates_for("anli_r1")
    for t in tpls:
        assert f"    {t.id}" in out
        for line in t.input.splitlines():
            if line.strip():
                assert line in out, (t.id, line)
    assert "record rules:" in out and "set nli" in out
    brief = ok(run("catalog", "show", "anli_r1", "--brief"))
    assert (
        tpls[0].id in brief and tpls[0].input.splitlines()[0] not in brief.split("templates (")[1]
    )


def test_show_json_has_template_text_and_record_rules(cat):
    info = json.loads(ok(run("catalog", "show", "bool_q", "--json")))
    by_id = {t["id"]: t for t in info["templates"]}
    for t in cat.templates_for("bool_q"):
        assert by_id[t.id]["input"] == t.input and by_id[t.id]["target"] == t.target
        assert by_id[t.id]["set"] == t.set
    assert "record_rules" in info and "options_block" in by_id[t.id]["variables"]


def test_show_template_renders_like_flan_render():
    r = json.loads(ok(run("catalog", "show", "anli_r1", "--template", "nli-03", "--format", "fs_opt",
                          "--seed", "7", "--row", "1", "--json")))  # fmt: skip
    rendered = [json.loads(x) for x in ok(run("render", "anli_r1", "-n", "2", "-f", "fs_opt", "--seed", "7",
                                              "--template", "nli-03", "--json")).splitlines()]  # fmt: skip
    assert r["example"] == rendered[1]
    assert r["template"]["id"] == "nli-03" and "{{" in r["template"]["input"]
    assert r["record"] is not None
    text = ok(run("catalog", "show", "anli_r1", "-t", "nli-03", "-f", "zs_noopt", "--seed", "2"))
    assert "template input" in text and "rendered inputs" in text and "source record" in text
    plain = json.loads(ok(run("render", "anli_r1", "-n", "1", "-f", "zs_noopt", "--seed", "2",
                              "--template", "nli-03", "--json")))  # fmt: skip
    assert plain["targets"] in text


def test_show_template_bad_input():
    r = run("catalog", "show", "anli_r1", "--template", "nli-99")
    assert r.exit_code == 1 and "Error:" in r.output and "nli-09" in r.output  # closest names
    r = run("catalog", "show", "anli_r1", "--template", "nli-01", "--format", "cot")
    assert r.exit_code == 1 and "chain-of-thought" in r.output
    r = run("catalog", "show", "anli_r9")
    assert r.exit_code == 1 and "anli_r1" in r.output


def test_templates_lists_sets_and_users(cat):
    data = json.loads(ok(run("catalog", "templates", "--json")))
    assert {s["set"] for s in data} == set(cat.template_sets)
    nli = next(s for s in data if s["set"] == "nli")
    assert "anli_r1" in nli["tasks"] and nli["size"] == len(cat.template_sets["nli"])
    one = json.loads(ok(run("catalog", "templates", "--set", "nli", "--json")))
    assert [s["set"] for s in one] == ["nli"]
    g = json.loads(ok(run("catalog", "templates", "--grep", "PREMISE", "--json")))
    assert g and all(
        "premise" in (t["input"] + t["target"] + t["id"]).lower() for s in g for t in s["templates"]
    )
    out = ok(run("catalog", "templates", "--set", "nli"))
    assert "used by" in out and "(+1 more, --all lists them)" in out
    r = run("catalog", "templates", "--set", "nil")
    assert r.exit_code == 1 and "nli" in r.output


def test_search_by_name_category_license_template(cat):
    hits = search_tasks(cat, "anli_r1")
    assert hits[0]["name"] == "anli_r1" and "name" in hits[0]["matched"]
    lic = search_tasks(cat, "cc-by-sa-3.0", fields=["license"])
    assert lic and all(cat.task(h["name"]).metadata.license == "cc-by-sa-3.0" for h in lic)
    # a phrase that occurs only in one template set's wording
    phrase = "does the hypothesis have to be"
    hits = search_tasks(cat, phrase, fields=["template"], phrase=True)
    assert {h["name"] for h in search_tasks(cat, f'"{phrase}"', fields=["template"])} == {
        h["name"] for h in hits
    }
    expect = {t.name for t in cat.tasks.values()
              if any(phrase in x.input.lower() for x in cat.templates_for(t))}  # fmt: skip
    assert expect and {h["name"] for h in hits} == expect
    assert all(any(m.startswith("template:") for m in h["matched"]) for h in hits)
    # every word must match
    assert search_tasks(cat, "anli_r1 zzzz-nothing") == []
    cli = json.loads(ok(run("catalog", "search", phrase, "--phrase", "--in", "template", "--json")))
    assert {h["name"] for h in cli} == expect
    out = ok(run("catalog", "search", "entailment", "--limit", "2"))
    assert "showing 2" in out
    js = json.loads(
        ok(run("catalog", "search", "german", "--in", "language", "--json", "--limit", "0"))
    )
    assert all("language" in h["matched"] for h in js)


def test_template_tokens_round_trip():
    src = "A {{ x }} {% if y %}B{% endif %}{# note #} C"
    toks = template_tokens(src)
    assert "".join(t for _, t in toks) == src
    assert [k for k, _ in toks if k != "text"] == ["var", "tag", "tag", "comment"]


def test_task_info_every_sample_task_is_json(cat):
    for name in ("anli_r1", "cot_gsm8k", "task1388_cb_entailment", "qrecc"):
        json.dumps(task_info(cat, cat.task(name)))
    assert template_sets(cat, "nli")[0]["templates"][0]["input"]


# ----------------------------------------------------------------------------- app routes


def test_pages_answer(app):
    for path in ("/", "/?q=anli&collection=flan2021", "/?sample=1&page=1", "/task/anli_r1",
                 "/task/cot_gsm8k", "/mixture", "/mixture/demo", "/mixture/demo?total=50&exclude=niv2",
                 "/mixture/flan2022", "/export", "/static/app.css", "/static/app.js"):  # fmt: skip
        r = app.handle(path)
        assert r.status == 200, (path, r.text[-500:])
        if r.content_type.startswith("text/html"):  # offline: no asset from another host
            import re

            assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', r.text), path


def test_catalog_filter_counts(app, cat):
    r = app.handle("/?collection=cot")
    n = sum(1 for t in cat.tasks.values() if t.collection == "cot")
    assert f"{n} task(s)" in r.text
    assert r.text.count('class="task-link"') == min(n, 100)


def test_preview_api_equals_flan_render(app):
    r = app.handle("/api/preview?task=anli_r1&format=fs_noopt&seed=11&row=1")
    assert r.status == 200 and r.content_type.startswith("application/json")
    got = json.loads(r.body)["example"]
    want = [json.loads(x) for x in ok(run("render", "anli_r1", "-n", "2", "-f", "fs_noopt", "--seed", "11",
                                          "--json")).splitlines()][1]  # fmt: skip
    assert got == want


def test_bad_requests(app):
    r = app.handle("/task/anli_r9")
    assert r.status == 404 and "anli_r1" in r.text and "<h1" in r.text
    assert app.handle("/nowhere").status == 404
    assert app.handle("/mixture/flan2023").status == 404
    assert app.handle("/api/preview?task=anli_r1&format=cot").status == 422
    assert app.handle("/api/preview?task=nope").status == 404
    assert app.handle("/task/anli_r1?seed=x").status == 422
    assert app.handle("/task/anli_r1?row=5000").status == 422
    assert app.handle("/api/preview?task=anli_r1&template=nli-99").status == 404
    assert app.handle("/export").status == 200  # no export: an explanation, not an error
    assert "--export DIR" in app.handle("/export").text


@pytest.mark.parametrize("path", [
    "/static/../catalog.py", "/static/..%2F..%2Fcatalog.py", "/static/%2e%2e/server.py",
    "/task/..%2F..%2Fetc%2Fpasswd", "/static/app.css%00.txt", "/static/..\\\\server.py",
    "/static/templates", "/static/", "/../../etc/passwd",
])  # fmt: skip
def test_path_traversal_refused(app, path):
    r = app.handle(path)
    assert r.status in (400, 404), (path, r.status)
    assert "import" not in r.text and "root:" not in r.text


def test_export_shard_parameter_refused(tmp_path):
    from flan_data.export import export_mixture

    cat = Catalog.load()
    out = tmp_path / "exp"
    export_mixture(cat, "demo", out, total=40, seed=0, shard_rows=15, progress=False)
    (tmp_path / "secret.arrow").write_bytes(b"x")
    app = BrowseApp(cat, out)
    r = app.handle("/export")
    assert r.status == 200 and "verify: OK" in r.text
    name = json.loads((out / "manifest.json").read_text())["shards"][0]["file"]
    assert app.handle(f"/export?shard={name}&page=1").status == 200
    assert app.handle(f"/export?shard={name}&page=2").status == 422  # 15 rows: one page
    # rows of one task × format, across shards, match the manifest's count
    m = json.loads((out / "manifest.json").read_text())
    task, counts = next(iter(m["counts"].items()))
    fmt, n = next(iter(counts.items()))
    page = app.export.page({"task": task, "format": fmt})
    assert page["matches"] == n and len(page["rows"]) == min(n, 20)
    assert all(r["task"] == task and r["format"] == fmt for r in page["rows"])
    assert app.export.page({"task": task})["matches"] == sum(counts.values())
    assert len(m["shards"]) == 3
    every = [r for t in m["counts"] for r in app.export.matching(t, "", 0, 1000)[0]]
    assert len(every) == 40 and len({r["_where"] for r in every}) == 40
    assert app.handle("/export?task=no_such_task").status == 404
    assert app.handle(f"/export?task={task}&format=zs_nope").status == 404
    for bad in ("../secret.arrow", "/etc/passwd", str(tmp_path / "secret.arrow"), "manifest.json"):
        r = app.handle(f"/export?shard={bad}")
        assert r.status == 400 and "not listed" in r.text, bad
    # a tampered export shows its verify problems
    shard = out / name
    shard.write_bytes(shard.read_bytes()[:-10])
    r = BrowseApp(cat, out).handle("/export")
    assert "problem(s)" in r.text


# ----------------------------------------------------------------------------- HTTP and binding


@pytest.fixture()
def live(app):
    srv = make_server(app, "127.0.0.1", 0)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _get(srv, path, method="GET", host=None):
    c = http.client.HTTPConnection(*srv.server_address[:2], timeout=30)
    c.putrequest(method, path, skip_host=host is not None)
    if host is not None:
        c.putheader("Host", host)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r, body


def test_http_headers_methods_and_host_check(live):
    r, body = _get(live, "/task/anli_r1")
    assert r.status == 200 and "script-src 'self'" in r.getheader("Content-Security-Policy")
    assert b"http://" not in body.split(b"<main>")[0].replace(b"http://www.w3.org", b"")  # no CDN
    assert _get(live, "/", "POST")[0].status == 405
    assert _get(live, "/", host="evil.example:80")[0].status == 403  # DNS rebinding
    assert _get(live, "/", host=f"localhost:{live.server_address[1]}")[0].status == 200
    r, body = _get(live, "/static/../../../../etc/passwd")
    assert r.status == 400 and b"root:" not in body
    assert _get(live, "/", "HEAD")[0].status == 200


def test_default_bind_is_loopback(monkeypatch):
    seen = {}

    class Stop(Exception):
        pass

    def fake(app, host, port):
        seen.update(host=host, port=port)
        raise Stop

    import flan_data.browse.server as server_mod

    monkeypatch.setattr(server_mod, "make_server", fake)
    CliRunner().invoke(main, ["browse", "--no-open", "--port", "0"])
    assert seen == {"host": "127.0.0.1", "port": 0}
    CliRunner().invoke(main, ["browse", "--no-open", "--host", "0.0.0.0", "--port", "0"])
    assert seen["host"] == "0.0.0.0"


def test_browse_catalog_option(monkeypatch, toy_root):
    import flan_data.browse.server as server_mod

    seen = {}

    def fake(app, host, port):
        seen["tasks"] = sorted(app.catalog.tasks)
        raise SystemExit(0)

    monkeypatch.setattr(server_mod, "make_server", fake)
    r = CliRunner().invoke(main, ["browse", "--no-open", "--catalog", str(toy_root)])
    assert r.exit_code == 0 and seen["tasks"] == ["toy"]


def test_loopback_server_unreachable_from_other_addresses(app):
    srv = make_server(app, "127.0.0.1", 0)
    try:
        assert url_of(srv).startswith("http://127.0.0.1:") and is_loopback(srv.server_address[0])
        others = set()
        with contextlib.suppress(OSError):
            others = {
                a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
            }
        others = {a for a in others if not is_loopback(a)}
        for a in others:  # the machine's own non-loopback addresses cannot reach it
            with pytest.raises(OSError):
                socket.create_connection((a, srv.server_address[1]), timeout=2).close()
    finally:
        srv.server_close()
    assert not is_loopback("0.0.0.0") and is_loopback("::1") and is_loopback("localhost")


def test_browse_cli_refuses_busy_port(app):
    srv = make_server(app, "127.0.0.1", 0)
    try:
        r = run("browse", "--no-open", "--port", str(srv.server_address[1]))
        assert r.exit_code == 1 and "cannot listen" in r.output and "--port 0" in r.output
    finally:
        srv.server_close()
    r = run("browse", "--no-open", "--export", "/nonexistent-dir")
    assert r.exit_code == 2 and "does not exist" in r.output


def test_record_rules_shown_when_a_spec_has_them(cat):
    import dataclasses
    import types

    from flan_data.browse.query import record_rules, record_rules_lines

    @dataclasses.dataclass(frozen=True)
    class Rules:
        filter: str | None = None
        explode: dict = dataclasses.field(default_factory=dict)

        def __bool__(self):
            return bool(self.filter or self.explode)

        def describe(self):
            return [f"filter: {self.filter}"] if self.filter else []

    t = types.SimpleNamespace(records=Rules(filter="label >= 0"), source=cat.task("anli_r1").source)
    assert record_rules(t) == {"filter": "label >= 0"}
    assert record_rules_lines(t) == ["filter: label >= 0"]
    empty = types.SimpleNamespace(records=Rules(), source=cat.task("anli_r1").source)
    assert record_rules(empty) is None and record_rules_lines(empty) == []
    # every task of the bundled catalog: JSON-able rules, and the text page shows them
    for name, t in cat.tasks.items():
        if record_rules(t):
            out = ok(run("catalog", "show", name, "--brief"))
            assert all(line in out for line in record_rules_lines(t))
            break


def test_preview_reads_source_dirs(cat, tmp_path):
    from pathlib import Path

    hold = cat.task("cot_gsm8k").source.validation_size or 0
    (tmp_path / "gsm8k_train.tsv").write_text(
        "".join(f"What is {i}+1?\t{i + 1}\t{i} plus one is {i + 1}.\n" for i in range(hold + 5))
    )
    app = BrowseApp(cat, source_dirs={"cot_gsm8k": Path(tmp_path)})
    r = app.handle("/api/preview?task=cot_gsm8k&format=cot&seed=4&row=1")
    got = json.loads(r.body)["example"]
    want = [json.loads(x) for x in ok(run("render", "cot_gsm8k", "-f", "cot", "--seed", "4", "-n", "2",
                                          "--source-dir", f"cot_gsm8k={tmp_path}", "--json")).splitlines()]  # fmt: skip
    assert "What is 6+1?" in got["inputs"] and got == want[1]


def test_export_manifest_pointing_outside_is_refused(tmp_path):
    import hashlib

    from flan_data.export import export_mixture

    cat = Catalog.load()
    out = tmp_path / "exp"
    export_mixture(cat, "demo", out, total=30, seed=0, progress=False)
    m = json.loads((out / "manifest.json").read_text())
    (tmp_path / "outside.arrow").write_bytes((out / m["shards"][0]["file"]).read_bytes())
    m["shards"][0]["file"] = "../outside.arrow"
    data = json.dumps(m).encode()
    (out / "manifest.json").write_bytes(data)
    (out / "COMPLETED").write_text(hashlib.sha256(data).hexdigest())
    app = BrowseApp(cat, out)
    r = app.handle("/export?shard=../outside.arrow")
    assert r.status == 400 and "outside the export folder" in r.text
    r = app.handle("/export")  # the page itself still shows, with the problem
    assert r.status == 200 and "outside the export folder" in r.text and "problem(s)" in r.text


def test_flan_browse_process_serves_on_loopback(tmp_path):
    """The real command: starts, prints a 127.0.0.1 URL, serves pages, stops on SIGINT."""
    import os
    import re
    import signal
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "flan_data", "browse", "--port", "0", "--no-open"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)  # fmt: skip
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        c = http.client.HTTPConnection("127.0.0.1", int(m.group(1)), timeout=60)
        c.request("GET", "/task/bool_q")
        r = c.getresponse()
        assert r.status == 200 and b"boolq-01" in r.read()
        c.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_preview_api_honours_render_options(app):
    r = app.handle(
        "/api/preview?task=anli_r1&format=fs_opt&seed=5&shots=1&option_style=plain&budget=4000"
    )
    got = json.loads(r.body)["example"]
    want = json.loads(ok(run("render", "anli_r1", "-n", "1", "-f", "fs_opt", "--seed", "5", "--shots", "1",
                             "--option-style", "plain", "--budget", "4000", "--json")))  # fmt: skip
    assert got == want and len(got["exemplar_ids"]) == 1
    assert app.handle("/api/preview?task=anli_r1&option_style=fancy").status == 404
    assert app.handle("/api/preview?task=anli_r1&shots=-1").status == 422


def test_mixture_page_numbers(cat):
    from flan_data.browse.pages import mixture_page

    d = mixture_page(cat, "flan2022", {"total": "100000", "exclude": "dialog"})
    assert d["plan"]["total"] == 100000 and d["sizes"] == "metadata"
    assert sum(sum(v.values()) for v in d["by_collection_format"].values()) == 100000
    assert "dialog" not in d["by_collection_format"]
    caps = {m.name: m.cap for m in cat.mixture("flan2022").members}
    for c in d["capped"]:
        t = cat.task(c["task"])
        assert c["cap"] == caps[t.collection] and c["size"] > c["cap"]
    # every capped task is listed: recount from the published sizes
    n = sum(1 for t in d["tasks"] if t["size"] > caps[t["collection"]])
    assert n <= len(d["capped"])
    counts = [t["count"] for t in d["tasks"]]
    assert counts == sorted(counts, reverse=True) and len(counts) == 25
    with pytest.raises(Exception, match="exclusion"):
        mixture_page(cat, "flan2022", {"exclude": "dialgo"})


def test_catalog_page_filters_keep_each_other(app, cat):
    from flan_data.browse.pages import catalog_page

    d = catalog_page(
        cat, {"license_class": "commercial", "language": "en", "collection": "flan2021"}
    )
    want = {
        t.name for t in cat.search(collection="flan2021", license_class="commercial", language="en")
    }
    got = {r["name"] for r in d["rows"]}
    assert want and got <= want and len(got) == min(100, len(want)) and d["matched"] == len(want)
    assert "license_class=commercial" in d["query"] and "collection=flan2021" in d["query"]
    assert "collection" not in d["base_query"] and "language=en" in d["base_query"]
    r = app.handle("/?license_class=commercial&page=2")
    assert r.status in (200, 422)
    assert app.handle("/?license_class=free").status == 404  # unknown class: closest names
    assert app.handle("/?collection=muffin").status == 200  # aliases work
    assert app.handle("/?collection=nope").status == 404


def test_task_page_shows_promptsource_dialect_templates(tmp_path):
    """Templates kept in promptsource's own form show their jinja and answer choices."""
    (tmp_path / "ps.yaml").write_text(
        "sets:\n  ps_boolq:\n    dialect: promptsource\n    templates:\n"
        "      - id: ps-boolq-1\n"
        "        jinja: '{{ passage }} Question: {{ question }}? ||| {{ answer_choices[answer] }}'\n"
        "        answer_choices: no ||| yes\n"
    )
    (tmp_path / "coll.yaml").write_text(
        "collection: flan2021\ntasks:\n  - name: bool_q_ps\n"
        "    source: {kind: jsonl, path: bool_q}\n    sample: {kind: jsonl, path: bool_q}\n"
        "    fields: {passage: passage, question: question, answer: '1 if answer else 0'}\n"
        "    templates: [ps_boolq]\n"
    )
    cat = Catalog.load(extra_files=[tmp_path / "ps.yaml", tmp_path / "coll.yaml"])
    r = BrowseApp(cat).handle("/task/bool_q_ps")
    assert r.status == 200, r.text[-400:]
    assert "promptsource rules" in r.text and "answer choices" in r.text
    assert "no ||| yes" in r.text.replace("&#124;", "|")
    p = BrowseApp(cat).handle("/api/preview?task=bool_q_ps&format=zs_noopt&seed=1")
    assert p.status == 200, p.text
    want = json.loads(ok(run("--extra", str(tmp_path / "ps.yaml"), "--extra", str(tmp_path / "coll.yaml"),
                             "render", "bool_q_ps", "-n", "1", "-f", "zs_noopt", "--seed", "1", "--json")))  # fmt: skip
    assert json.loads(p.body)["example"] == want and "Question:" in want["inputs"]
