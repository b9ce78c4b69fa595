// Other plugins' panels on the page, drawn from what the companion plugin sends: the game store
// (games members share, getting one, its progress), file transfer and the rest, with their
// buttons and inputs pressed as on the overlay; and their toasts.
"use strict";

const panels = (() => {
  const $ = (id) => document.getElementById(id);
  const drawn = new Map();

  // A QR code from its modules (1 dark, 0 light, row by row), with a quiet zone around it.
  function qr(code) {
    const canvas = document.createElement("canvas");
    canvas.className = "qr";
    if (!code) return canvas;
    const scale = 4, margin = 4, side = (code.size + margin * 2) * scale;
    canvas.width = canvas.height = side;
    const g = canvas.getContext("2d");
    g.fillStyle = "#fff";
    g.fillRect(0, 0, side, side);
    g.fillStyle = "#000";
    for (let i = 0; i < code.modules.length; i++) {
      if (code.modules[i] !== "1") continue;
      const x = i % code.size, y = Math.floor(i / code.size);
      g.fillRect((x + margin) * scale, (y + margin) * scale, scale, scale);
    }
    return canvas;
  }

  function element(plugin, e, send) {
    switch (e.kind) {
      case "heading": {
        const h = document.createElement("h3");
        h.textContent = e.text;
        return h;
      }
      case "qr": {
        const box = document.createElement("div");
        const p = document.createElement("p");
        p.textContent = e.text;
        box.append(qr(e.qr), p);
        return box;
      }
      case "text": {
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
    qr,

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
