// tlrules audit page: the module tree, built lazily from the JSON the page embeds.
// Rendered by tlrules.render.html after glob.js; nothing here reaches the network.

function tlrulesMount(root) {
  "use strict";
  const data = JSON.parse(root.querySelector("script.tlr-data").textContent);
  const stages = data.stages;
  const names = data.names;
  const ns = stages.length;
  const AUTO_OPEN = 500; // search hits or highlighted parameters shown expanded up to this many
  const fmt = (n) => Number(n).toLocaleString("en-US");
  const SYMBOL = { train: "\u25cf", freeze: "\u25cb", mixed: "\u25d0" };
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // -- the tree, with per-stage counts on every node ------------------------------------
  const top = { name: "", path: "", depth: -1, kids: new Map(), idx: -1 };
  names.forEach((name, i) => {
    let node = top;
    for (const part of name.split(".")) {
      let kid = node.kids.get(part);
      if (kid === undefined) {
        const path = node.path ? node.path + "." + part : part;
        kid = { name: part, path, depth: node.depth + 1, kids: new Map(), idx: -1, up: node };
        node.kids.set(part, kid);
      }
      node = kid;
    }
    node.idx = i;
  });
  const leaves = new Array(names.length);
  (function count(node) {
    node.count = 0;
    node.numel = 0;
    node.tc = new Array(ns).fill(0); // names that train, per stage
    node.tn = new Array(ns).fill(0); // elements that train, per stage
    node.rule = new Array(ns).fill(undefined); // the one rule deciding it all, or null: several
    node.ch = new Array(ns).fill(0); // names whose action differs from the stage before
    const take = (rule, s) => {
      if (node.rule[s] === undefined) node.rule[s] = rule;
      else if (node.rule[s] !== rule) node.rule[s] = null;
    };
    if (node.idx >= 0) {
      const i = node.idx;
      leaves[i] = node;
      node.count = 1;
      node.numel = data.numel[i];
      for (let s = 0; s < ns; s += 1) {
        const train = stages[s].train[i] === "t";
        const part = (stages[s].rows || {})[i]; // a tensor trained in part: its rows
        node.tc[s] = train ? 1 : 0;
        node.tn[s] = train ? (part ? part.numel : node.numel) : 0;
        if (part) (node.rows = node.rows || [])[s] = part.label;
        take(stages[s].rule[i], s);
        node.ch[s] = s > 0 && stages[s].train[i] !== stages[s - 1].train[i] ? 1 : 0;
      }
    }
    node.kids.forEach((kid) => {
      count(kid);
      node.count += kid.count;
      node.numel += kid.numel;
      for (let s = 0; s < ns; s += 1) {
        node.tc[s] += kid.tc[s];
        node.tn[s] += kid.tn[s];
        node.ch[s] += kid.ch[s];
        take(kid.rule[s], s);
      }
    });
  })(top);

  // -- what the view shows: filter, highlight, open nodes --------------------------------
  // open: the nodes shown expanded; auto: those a search or a highlight opened, closed
  // again by the next one (what the reader opened stays open)
  const view = { hits: null, hitCount: 0, mark: null, markCount: 0, open: new Set(), auto: new Set() };
  function tally(flags, key) {
    (function walk(node) {
      let n = node.idx >= 0 && flags[node.idx] ? 1 : 0;
      node.kids.forEach((kid) => (n += walk(kid)));
      node[key] = n;
      return n;
    })(top);
  }
  function openAround(flags, count) {
    view.auto.forEach((node) => view.open.delete(node));
    view.auto.clear();
    if (flags === null || count > AUTO_OPEN) return;
    flags.forEach((on, i) => {
      for (let node = on ? leaves[i].up : null; node && node !== top; node = node.up) {
        if (!view.open.has(node)) view.auto.add(node);
        view.open.add(node);
      }
    });
  }

  // -- the page ----------------------------------------------------------------------------
  const title = el("h1", "tlr-title", data.title);
  const panels = el("div", "tlr-stages");
  const tools = el("div", "tlr-tools");
  const search = el("input", "tlr-search");
  search.type = "search";
  search.placeholder = "glob, as in a policy: layer4, *bn*, blocks.{8..11}";
  search.setAttribute("aria-label", "search parameter names (policy glob)");
  const status = el("span", "tlr-status");
  status.setAttribute("role", "status");
  tools.append(search, status);
  const grid = el("div", "tlr-grid");
  grid.style.setProperty("--tlr-stages", ns);
  grid.setAttribute("role", "tree");
  const head = el("div", "tlr-row tlr-head");
  head.append(el("span", "tlr-name", "module / parameter"), el("span", "tlr-num", "params"), el("span", "tlr-num", "elements"));
  stages.forEach((st) => head.append(el("span", "tlr-cell", st.stage === null ? "action / decided by" : `stage ${st.stage}`)));
  const body = el("div", "tlr-body");
  grid.append(head, body);
  root.append(title, panels, tools, grid);
  stages.forEach((st, s) => panels.append(panel(st, s)));

  function ruleOf(s, rule) {
    return rule === 0 ? null : stages[s].rules[rule - 1];
  }
  function ruleLabel(s, rule) {
    const use = ruleOf(s, rule);
    return use === null ? stages[s].default.label : use.label;
  }
  function ruleTitle(s, rule) {
    const use = ruleOf(s, rule);
    if (use === null) return stages[s].default.label + ": no rule matches";
    return `${use.label} at ${use.where}: ${use.action}` + (use.note ? ` (${use.note})` : "");
  }

  function panel(st, s) {
    const box = el("section", "tlr-panel");
    box.dataset.stage = s;
    box.append(el("h2", "", st.stage === null ? "summary" : `stage ${st.stage}`));
    const facts = el("dl", "tlr-summary");
    const fact = (key, label, text, cls) => {
      const v = el("dd", "", text);
      v.dataset.summary = key;
      facts.append(el("dt", cls, label), v);
    };
    const sm = st.summary;
    fact("parameters", "parameters", `${fmt(sm.parameters)} (${fmt(sm.numel)} elements)`);
    fact("trainable", `${SYMBOL.train} train`, `${fmt(sm.trainable)} (${fmt(sm.trainable_numel)} elements)`, "tlr-train");
    fact("frozen", `${SYMBOL.freeze} freeze`, `${fmt(sm.frozen)} (${fmt(sm.frozen_numel)} elements)`, "tlr-freeze");
    fact("memory", st.memory[0], st.memory[1]);
    if (s > 0) {
      const moved = top.ch[s];
      fact("changes", `changes from ${stages[s - 1].stage}`, moved ? `${fmt(moved)} parameters change action (outlined in the tree)` : "none");
    }
    box.append(facts);
    const legend = el("ol", "tlr-legend");
    legend.setAttribute("aria-label", "rules");
    st.rules.forEach((use) => legend.append(legendItem(s, use.rule, use)));
    const byDefault = st.rule.filter((r) => r === 0).length;
    if (byDefault) legend.append(legendItem(s, 0, null, byDefault));
    box.append(el("h3", "", "rules (click to highlight)"), legend);
    listed(box, "warnings", st.warnings.map((w) => `warning[${w.code}]: ${w.message}`), "tlr-warnings");
    const norms = st.norm_layers;
    if (norms.length) {
      const fixed = norms.filter((n) => n.stats === "frozen").length;
      const more = el("details", "tlr-norms");
      more.append(el("summary", "", `norm layers: ${fixed} with frozen statistics, ${norms.length - fixed} updating`));
      const list = el("ul");
      norms.forEach((n) => list.append(el("li", "tlr-stats-" + n.stats, `${n.name}: ${n.stats}`)));
      more.append(list);
      box.append(more);
    }
    listed(box, "optimizer groups", st.groups, "tlr-groups");
    return box;
  }
  function listed(box, heading, lines, cls) {
    if (!lines.length) return;
    const list = el("ul", cls);
    lines.forEach((line) => list.append(el("li", "", line)));
    box.append(el("h3", "", heading), list);
  }
  function legendItem(s, rule, use, byDefault) {
    const item = el("li", "tlr-rule");
    const button = el("button", "tlr-pick tlr-" + (use ? use.action : stages[s].default.action));
    button.type = "button";
    button.dataset.stage = s;
    button.dataset.rule = rule;
    const action = use ? use.action : stages[s].default.action;
    button.append(el("span", "tlr-sym", SYMBOL[action]), el("span", "tlr-label", ruleLabel(s, rule)));
    const counts = use ? [use.parameters, use.numel] : [byDefault, 0];
    const parts = el("span", "tlr-counts", `${fmt(counts[0])} parameters` + (use ? `, ${fmt(counts[1])} elements` : ""));
    parts.dataset.parameters = counts[0];
    button.append(parts);
    if (use) button.append(el("span", "tlr-where", use.where));
    if (use && use.flag) {
      item.classList.add("tlr-" + use.flag);
      button.append(el("span", "tlr-flag", use.flag));
    }
    button.title = ruleTitle(s, rule);
    button.addEventListener("click", () => pick(s, rule));
    item.append(button);
    return item;
  }

  // -- rows, made when their parent opens ------------------------------------------------
  function row(node) {
    const r = el("div", "tlr-row");
    r.setAttribute("role", "treeitem");
    r.dataset.name = node.path;
    r.style.setProperty("--tlr-depth", node.depth);
    const name = el("span", "tlr-name");
    if (node.kids.size) {
      const toggle = el("button", "tlr-toggle", view.open.has(node) ? "\u25be" : "\u25b8");
      toggle.type = "button";
      toggle.setAttribute("aria-label", "expand " + node.path);
      toggle.addEventListener("click", () => flip(node));
      name.append(toggle);
      r.setAttribute("aria-expanded", view.open.has(node));
    } else {
      name.append(el("span", "tlr-toggle"));
    }
    name.append(el("span", "tlr-key", node.name));
    if (node.idx >= 0) {
      r.dataset.leaf = "";
      const shape = data.shapes[node.idx].join("x") || "scalar";
      name.append(el("span", "tlr-shape", `[${shape}]`));
      const tie = data.tied[node.idx];
      if (tie) name.append(el("span", "tlr-shape", `= ${tie}`));
    }
    const shown = view.hits ? `${fmt(node.hit)} of ${fmt(node.count)}` : fmt(node.count);
    r.append(name, el("span", "tlr-num", node.kids.size ? shown : ""), el("span", "tlr-num", fmt(node.numel)));
    for (let s = 0; s < ns; s += 1) r.append(cell(node, s));
    if (view.mark) {
      if (node.idx >= 0 && node.mark) r.classList.add("tlr-hl");
      else if (node.mark) r.classList.add("tlr-hl-in");
    }
    return r;
  }
  function cell(node, s) {
    const action = node.tc[s] === node.count ? "train" : node.tc[s] === 0 ? "freeze" : "mixed";
    const c = el("span", "tlr-cell tlr-" + action);
    c.dataset.action = action;
    const bar = el("span", "tlr-bar");
    const fill = el("span", "tlr-fill");
    fill.style.width = node.numel ? `${(100 * node.tn[s]) / node.numel}%` : action === "train" ? "100%" : "0%";
    bar.append(fill);
    bar.title = `${fmt(node.tn[s])} of ${fmt(node.numel)} elements train`;
    const part = node.rows && node.rows[s]; // "rows 32000-32127 train (128 of 32,128)"
    c.append(bar, el("span", "tlr-sym", SYMBOL[action]), el("span", "tlr-act", part || action));
    const rule = node.rule[s];
    if (rule !== null && rule !== undefined) {
      const label = el("span", "tlr-by", ruleLabel(s, rule));
      c.title = ruleTitle(s, rule);
      const group = stages[s].group === null || node.idx < 0 ? null : stages[s].group[node.idx];
      if (group !== null) c.title += `; optimizer group ${group}`;
      label.addEventListener("click", () => pick(s, rule));
      c.append(label);
    }
    if (s > 0 && node.ch[s]) c.classList.add("tlr-changed");
    return c;
  }
  function kids(node) {
    const box = el("div", "tlr-kids");
    box.setAttribute("role", "group");
    node.kids.forEach((kid) => {
      if (view.hits && !kid.hit) return;
      box.append(row(kid));
      if (view.open.has(kid)) box.append(kids(kid));
    });
    return box;
  }
  function draw() {
    body.replaceChildren(kids(top));
  }
  function flip(node) {
    view.auto.delete(node); // the reader decides about this one now
    if (view.open.has(node)) view.open.delete(node);
    else view.open.add(node);
    draw();
  }

  // -- search and highlight ----------------------------------------------------------------
  function find(text) {
    view.hits = null;
    search.classList.remove("tlr-bad");
    if (text.trim() === "") {
      openAround(null, 0);
      say();
      return draw();
    }
    let found;
    try {
      found = tlrulesGlob(text.trim(), names);
    } catch (err) {
      search.classList.add("tlr-bad");
      openAround(null, 0);
      say(`not a glob: ${err.message}`);
      return draw();
    }
    view.hits = new Array(names.length).fill(false);
    found.forEach((i) => (view.hits[i] = true));
    view.hitCount = found.length;
    tally(view.hits, "hit");
    openAround(view.hits, found.length);
    say();
    draw();
  }
  function pick(s, rule) {
    if (view.mark && view.mark.s === s && view.mark.rule === rule) {
      view.mark = null;
      openAround(null, 0);
    } else {
      const flags = stages[s].rule.map((r) => r === rule);
      view.mark = { s, rule };
      view.markCount = flags.filter(Boolean).length;
      tally(flags, "mark");
      openAround(flags, view.markCount);
    }
    root.querySelectorAll(".tlr-pick").forEach((b) => {
      const on = view.mark && Number(b.dataset.stage) === view.mark.s && Number(b.dataset.rule) === view.mark.rule;
      b.setAttribute("aria-pressed", on ? "true" : "false");
    });
    say();
    draw();
  }
  function say(problem) {
    const parts = [];
    if (problem) parts.push(problem);
    else if (view.hits) parts.push(`${fmt(view.hitCount)} of ${fmt(names.length)} parameters match`);
    if (view.mark) {
      const where = stages[view.mark.s].stage === null ? "" : ` (stage ${stages[view.mark.s].stage})`;
      parts.push(`${ruleLabel(view.mark.s, view.mark.rule)}${where}: ${fmt(view.markCount)} parameters highlighted`);
    }
    status.textContent = parts.join("; ");
  }
  let pending = 0;
  search.addEventListener("input", () => {
    clearTimeout(pending);
    pending = setTimeout(() => find(search.value), 120);
  });
  search.addEventListener("keydown", (e) => e.key === "Enter" && (clearTimeout(pending), find(search.value)));

  draw();
  root.dataset.ready = String(performance.now());
}
