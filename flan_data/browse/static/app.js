// flan browse: live preview on the task page (the only script; no framework).
"use strict";
(function () {
  const form = document.getElementById("preview-form");
  if (!form) return;
  const $ = (id) => document.getElementById(id);
  let seq = 0;
  async function render() {
    const params = new URLSearchParams(new FormData(form));
    params.set("task", form.dataset.task);
    const mine = ++seq;
    $("p-meta").textContent = "rendering…";
    form.dataset.state = "busy";
    let data;
    try {
      const r = await fetch("/api/preview?" + params.toString());
      data = await r.json();
    } catch (e) {
      data = { error: String(e) };
    }
    if (mine !== seq) return; // a newer request is on its way
    const err = $("p-error");
    if (data.error) {
      err.hidden = false;
      err.textContent = data.error;
      $("p-inputs").textContent = "";
      $("p-targets").textContent = "";
      $("p-record").textContent = "";
      $("p-meta").textContent = "error";
    } else {
      const ex = data.example;
      err.hidden = true;
      $("p-inputs").textContent = ex.inputs;
      $("p-targets").textContent = ex.targets;
      $("p-record").textContent = JSON.stringify(data.record, null, 2);
      let meta = `${ex.format} · template ${ex.template_id} · ${ex.source_split}/${ex.example_id} · seed ${ex.seed}`;
      if (ex.fewshot_style) meta += ` · style ${ex.fewshot_style} · exemplars ${ex.exemplar_ids.join(", ") || "-"}`;
      if (ex.options) meta += ` · options: ${ex.options.join(" | ")}`;
      $("p-meta").textContent = meta;
      document.querySelectorAll("article.template.current").forEach((el) => el.classList.remove("current"));
      const cur = document.getElementById("tpl-" + ex.template_id);
      if (cur) cur.classList.add("current");
    }
    form.dataset.key = params.toString();
    form.dataset.state = "done";
    history.replaceState(null, "", "?" + new URLSearchParams(new FormData(form)).toString() + "#preview");
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); render(); });
  form.addEventListener("change", render);
  let timer = null;
  form.addEventListener("input", (e) => {
    if (e.target.tagName !== "INPUT") return;
    clearTimeout(timer);
    timer = setTimeout(render, 250);
  });
  document.querySelectorAll("a.use-template").forEach((a) => a.addEventListener("click", (e) => {
    e.preventDefault();
    $("p-template").value = a.dataset.template;
    render();
    $("preview").scrollIntoView();
  }));
  render();
})();
