// Knowledge: hybrid search over the indexed documents, optionally within one domain.

import { getJson } from "./api.js";
import { $, fill, h, showError } from "./util.js";

export async function loadDomains() {
  try {
    const { domains } = await getJson("/api/knowledge");
    const select = $("kb-domain");
    const chosen = select.value;
    const files = domains.reduce((sum, d) => sum + d.files, 0);
    const chunks = domains.reduce((sum, d) => sum + d.chunks, 0);
    fill(select, h("option", { value: "" }, "all domains"),
      domains.map((d) => h("option", { value: d.domain },
        `${d.domain} (${d.files} file${d.files === 1 ? "" : "s"}, ${d.chunks} chunks)`)));
    select.value = chosen;
    $("kb-info").textContent = `${files} documents, ${chunks} chunks indexed.`;
  } catch (error) {
    showError($("kb-error"), error);
  }
}

function result(item, rank) {
  return h("li", { className: "result" },
    h("div", { className: "result-head" },
      h("span", { className: "rank" }, `${rank}.`),
      h("strong", {}, item.title || item.source),
      h("span", { className: "badge" }, item.domain),
      h("span", { className: "muted score", title: "fused rank score" }, `score ${item.score.toFixed(4)}`)),
    h("div", { className: "source" }, h("code", {}, item.source), item.heading ? ` › ${item.heading}` : ""),
    h("div", { className: "chunk" }, item.text));
}

async function search(event) {
  event.preventDefault();
  const q = $("kb-q").value.trim();
  if (!q) return;
  const list = $("kb-results");
  list.setAttribute("aria-busy", "true");
  const started = performance.now();
  try {
    const { results } = await getJson("/api/knowledge/search",
      { q, domain: $("kb-domain").value, k: $("kb-k").value });
    fill(list, results.map((item, i) => result(item, i + 1)));
    const ms = Math.round(performance.now() - started);
    $("kb-info").textContent = results.length
      ? `${results.length} result${results.length === 1 ? "" : "s"}, best first (${ms} ms).`
      : "Nothing found. Try other words or all domains.";
    showError($("kb-error"), null);
  } catch (error) {
    fill(list);
    showError($("kb-error"), error);
  } finally {
    list.removeAttribute("aria-busy");
  }
}

export function initKnowledge() {
  $("kb-form").addEventListener("submit", search);
  return loadDomains();
}
