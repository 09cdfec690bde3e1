"""Browse the catalog: plain-data views for the terminal and a local web app.

- :mod:`flan_data.browse.query` — what ``flan catalog show/templates/search``
  print: task facts, template text, template sets and a search over names,
  metadata and template wording (pure functions over a :class:`Catalog`).
- :mod:`flan_data.browse.preview` — one sample row rendered exactly as
  ``flan render`` / ``flan export`` render it (same renderer, same sandbox).
- :mod:`flan_data.browse.server` — ``flan browse``: a read-only web app on the
  standard library's HTTP server, pages rendered server-side with Jinja.

Nothing here is imported by the rest of the library, so ``flan`` starts as fast
as before; the web server loads only when ``flan browse`` runs.
"""
