"""Render cost of the bounded sandbox (TemplateLimits, issue 12) vs Jinja's plain sandbox, in one process.

Run: PYTHONPATH=. python bench/template_limits.py  (best of 3 render_batch calls of 2,000 rows)
"""

import time

import jinja2
from jinja2.sandbox import SandboxedEnvironment

import flan_data.templates as T
from flan_data import Catalog
from flan_data.render import RenderConfig, Renderer
from flan_data.sources import open_task_source

cat = Catalog.load()


class Plain(T.TemplateEngine):
    def __init__(self):
        super().__init__()
        self.env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.arm = self.env.disarm = lambda: None
        self.env.emit = lambda n: None
        self.env.limits, self.env.out = T.TemplateLimits(output_chars=2**62), 0
        self.env.globals["__flan_loop"] = lambda it: it
        self.env.globals["__flan_rows"] = lambda it: it


def setup(engine, task, fmt):
    r = Renderer(cat, RenderConfig(), engine=engine).task_renderer(task)
    recs = list(open_task_source(cat, cat.task(task), "sample", {}).read("train"))
    items = (recs * (2000 // len(recs) + 1))[:2000]
    return lambda: r.render_batch(items, split="train", fmt=fmt, seed=0, pool=None)


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


REPS = 21  # interleaved, best of each: the machine is shared and noisy
for task, fmt in [("anli_r1", "zs_opt"), ("bool_q", "zs_noopt"), ("cot_gsm8k", "cot")]:
    a_fn, b_fn = setup(Plain(), task, fmt), setup(T.TemplateEngine(), task, fmt)
    assert a_fn() == b_fn()  # same output
    a = b = 1e9
    for _ in range(REPS):
        a, b = min(a, timed(a_fn)), min(b, timed(b_fn))
    print(
        f"{task:12} {fmt:9} plain sandbox {a * 1e3:7.1f} ms  bounded {b * 1e3:7.1f} ms  ratio {b / a:.2f}"
    )
