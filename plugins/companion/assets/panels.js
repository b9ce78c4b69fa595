// Other plugins' panels on the page, drawn from what the companion plugin sends: the game store
// (games members share, getting one, its progress), file transfer and the rest, with their
// buttons and inputs pressed as on the overlay; and their toasts.
"use strict";

const panels = (() => {
  const $ = (id) => document.getElementById(id);
  const drawn = new Map();

  function element(plugin, e, send) {
    switch (e.kind) {
      case "heading": {
        const h = document.createElement("h3");
        h.textContent = e.text;
        return h;
      }
      case "text":
      case "qr": {
        const p = document.createElement("p");
        p.textContent = e.text;
        return p;
      }
      case "items": {
        const ul = document.createElement("ul");
        ul.className = "items";
        for (const item of e.items) {
          const li = document.createElement("li");
          li.textContent = item;
          ul.append(li);
        }
        return ul;
      }
      case "progress": {
        const label = document.createElement("label");
        label.className = "progress";
        const bar = document.createElement("progress");
        bar.max = Math.max(e.total, 1);
        bar.value = e.done;
        bar.dataset.done = String(e.done);
        bar.dataset.total = String(e.total);
        label.append(document.createTextNode(e.label + " "), bar);
        return label;
      }
      case "button": {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = e.label;
        b.dataset.plugin = plugin;
        b.dataset.id = e.id;
        b.addEventListener("click", () => send({ type: "press", plugin, id: e.id, value: null }));
        return b;
      }
      case "input": {
        const form = document.createElement("form");
        form.className = "input";
        const input = document.createElement("input");
        input.placeholder = e.placeholder;
        input.value = e.value;
        const go = document.createElement("button");
        go.type = "submit";
        go.textContent = "OK";
        form.append(input, go);
        form.addEventListener("submit", (ev) => {
          ev.preventDefault();
          send({ type: "press", plugin, id: e.id, value: input.value });
        });
        return form;
      }
      default:
        return document.createComment(e.kind);
    }
  }

  return {
    draw(panel, send) {
      const section = document.createElement("section");
      section.className = "panel";
      section.dataset.plugin = panel.plugin;
      const title = document.createElement("h2");
      title.textContent = panel.title || panel.name;
      section.append(title);
      for (const e of panel.elements) section.append(element(panel.plugin, e, send));
      const old = drawn.get(panel.plugin);
      if (old) old.replaceWith(section);
      else $("panels").append(section);
      drawn.set(panel.plugin, section);
    },

    toast(toast) {
      const t = document.createElement("p");
      t.className = toast.outcome === "failed" ? "toast error" : "toast";
      t.textContent = toast.text;
      $("toasts").append(t);
      while ($("toasts").children.length > 4) $("toasts").firstChild.remove();
      setTimeout(() => t.remove(), 6000);
    },
  };
})();
