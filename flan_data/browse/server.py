"""``flan browse``: a local, read-only web app over the catalog (and an export).

Stack: the standard library's :class:`http.server.ThreadingHTTPServer`, pages
rendered on the server with Jinja (autoescaped), one small stylesheet and one
small script served from this package. No Node build, no CDN, no extra
dependency (see docs/BROWSE.md for why).

Safety: binds 127.0.0.1 unless a host is given; answers GET/HEAD only; refuses
requests whose ``Host`` header is not the bound address (DNS rebinding); static
and shard file parameters resolve only to files the app lists; strict
Content-Security-Policy.

>>> app = BrowseApp(Catalog.load())
>>> app.handle("/task/anli_r1").status
200
>>> app.handle("/task/no_such_task").status
404
"""

from __future__ import annotations

import ipaddress
import json
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import jinja2

from ..catalog import Catalog
from ..errors import FlanDataError, UnknownNameError
from ..render import Renderer
from . import pages
from .pages import ExportView, PathRefused
from .preview import preview

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
_STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                 ".svg": "image/svg+xml", ".png": "image/png"}  # fmt: skip
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


class BrowseApp:
    """Routes a path + query to a :class:`Response` (no sockets: easy to test).

    Routes: ``/`` catalog, ``/task/NAME``, ``/mixture[/NAME]``, ``/export``,
    ``/api/preview`` (JSON), ``/api/task/NAME`` (JSON), ``/static/FILE``.
    """

    def __init__(self, catalog: Catalog, export_dir: str | Path | None = None,
                 source_dirs: dict[str, Path] | None = None):  # fmt: skip
        self.catalog = catalog
        self.source_dirs = dict(source_dirs or {})
        self.export = ExportView(Path(export_dir)) if export_dir is not None else None
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(HERE / "templates")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["q"] = lambda s: quote(str(s), safe="")
        self.env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
        self._lock = threading.Lock()  # rendering shares compiled caches

    # -- helpers

    def page(self, template: str, code: int = 200, **ctx: Any) -> Response:
        html = self.env.get_template(template).render(has_export=self.export is not None, **ctx)
        return Response(code, html.encode("utf-8"))

    def error(self, status: int, message: str, title: str | None = None) -> Response:
        return self.page("error.html", status, title=title or HTTPStatus(status).phrase,
                         status=status, message=message)  # fmt: skip

    @staticmethod
    def json(data: Any, status: int = 200) -> Response:
        return Response(status, json.dumps(data, ensure_ascii=False).encode("utf-8"),
                        "application/json; charset=utf-8")  # fmt: skip

    # -- routing

    def handle(self, target: str) -> Response:
        """Answer a GET for ``target`` (path with optional ``?query``)."""
        parts = urlsplit(target)
        raw_path = parts.path
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        path = unquote(raw_path)
        if "\x00" in path or "\\" in path or any(seg in ("..", ".") for seg in path.split("/")):
            return self.error(400, f"refused path {raw_path!r}", "Refused")
        api = path.startswith("/api/")
        try:
            with self._lock:
                return self._route(path, params)
        except PathRefused as e:
            return self.json({"error": str(e)}, 400) if api else self.error(400, str(e), "Refused")
        except UnknownNameError as e:
            return (
                self.json({"error": str(e)}, 404) if api else self.error(404, str(e), "Not found")
            )
        except FlanDataError as e:
            return (
                self.json({"error": str(e)}, 422)
                if api
                else self.error(422, str(e), "Cannot show this")
            )

    def _route(self, path: str, params: dict[str, str]) -> Response:
        cat = self.catalog
        if path in ("/", "/catalog"):
            return self.page("catalog.html", title="Catalog", **pages.catalog_page(cat, params))
        if path.startswith("/task/"):
            name = path[len("/task/") :]
            data = pages.task_page(cat, name, params)
            return self.page("task.html", title=name, **data)
        if path == "/mixture" or path.startswith("/mixture/"):
            name = path[len("/mixture/") :] if path.startswith("/mixture/") else ""
            name = name or None
            data = pages.mixture_page(cat, name, params)
            return self.page(
                "mixture.html", title=f"Mixture {name}" if name else "Mixtures", **data
            )
        if path == "/export":
            if self.export is None:
                return self.page("export_none.html", title="Export")
            return self.page("export.html", title="Export", **self.export.page(params))
        if path == "/api/preview":
            name = params.get("task", "")
            t = cat.task(name)
            formats = list(Renderer(cat).task_renderer(t).formats())
            args = pages.preview_args(cat, t, params, formats)
            p = preview(cat, name, fmt=args["format"], seed=args["seed"], template_id=args["template"],
                        row=args["row"], split=args["split"], source_dirs=self.source_dirs,
                        config=pages.render_config(args))  # fmt: skip
            return self.json(p)
        if path.startswith("/api/task/"):
            return self.json(pages.task_info(cat, cat.task(path[len("/api/task/") :])))
        if path.startswith("/static/"):
            return self.static(path[len("/static/") :])
        return self.error(404, f"no page at {path!r}", "Not found")

    def static(self, name: str) -> Response:
        """A file of this package's static folder, by exact name; nothing else."""
        allowed = {p.name: p for p in STATIC.iterdir() if p.is_file()}
        if name not in allowed:
            raise PathRefused(f"no static file {name!r}")
        p = allowed[name]
        return Response(
            200, p.read_bytes(), _STATIC_TYPES.get(p.suffix, "application/octet-stream")
        )


# ----------------------------------------------------------------------------- HTTP


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _make_handler(app: BrowseApp, allowed_hosts: frozenset[str] | None):
    class Handler(BaseHTTPRequestHandler):
        server_version = "flan-browse"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            pass  # quiet: the terminal shows the URL, not every request

        def _send(self, r: Response, head: bool = False) -> None:
            self.send_response(r.status)
            self.send_header("Content-Type", r.content_type)
            self.send_header("Content-Length", str(len(r.body)))
            for k, v in {**_HEADERS, **r.headers}.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(r.body)

        def _answer(self, head: bool) -> None:
            if allowed_hosts is not None:
                host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
                if host not in allowed_hosts:
                    self._send(app.error(403, f"unexpected Host header {host!r}", "Refused"), head)
                    return
            try:
                r = app.handle(self.path)
            except Exception as e:  # noqa: BLE001 - never kill the server on a page bug
                r = app.error(500, f"{type(e).__name__}: {e}", "Internal error")
            self._send(r, head)

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self._answer(False)

        def do_HEAD(self) -> None:  # noqa: N802 - stdlib name
            self._answer(True)

        def _refuse(self) -> None:
            r = app.error(405, "this app is read-only: GET and HEAD only", "Method not allowed")
            r.headers["Allow"] = "GET, HEAD"
            self._send(r)

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_server(
    app: BrowseApp, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """Bind ``host:port`` (port 0: a free one). Loopback binds only accept loopback Host headers."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    cls = type("Server", (_Server,), {"address_family": family})
    try:
        srv = cls((host, port), _make_handler(app, None))
    except OSError as e:
        raise FlanDataError(
            f"cannot listen on {host}:{port}: {e.strerror or e} (try --port 0 for a free port)"
        ) from None
    if is_loopback(host):
        allowed = frozenset({"localhost", "127.0.0.1", "::1", host.lower()})
        srv.RequestHandlerClass = _make_handler(app, allowed)
    return srv


def url_of(srv: ThreadingHTTPServer) -> str:
    host, port = srv.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    return f"http://{shown}:{port}/"
