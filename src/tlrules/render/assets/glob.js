// The policy's glob in the page's search box, faithful to tlrules.patterns.syntax: the
// tests compare it with the policy matcher on real models (tests/render/test_html.py).

// The policy's glob (docs/spec.md#glob), as tlrules.patterns.syntax translates it:
// returns the RegExp a name must match, or null when a negative range finds no container.
function tlrulesGlobRegExp(text, names) {
  "use strict";
  function fail(message, pos) {
    const err = new Error(message);
    err.pos = pos;
    throw err;
  }
  const esc = (c) => c.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&");
  function parse(text, offset) {
    const out = [];
    let i = 0;
    while (i < text.length) {
      const c = text[i];
      if (c === "*") out.push("[^\\n]*");
      else if (c === "?") out.push("[^\\n]");
      else if (c === "\\") {
        if (i + 1 === text.length) fail("a trailing '\\' escapes nothing; remove it", offset + i);
        i += 1;
        out.push(esc(text[i]));
      } else if (c === "[") {
        let j = i + 1;
        const negate = text[j] === "!";
        if (negate) j += 1;
        const end = text.indexOf("]", text[j] === "]" ? j + 1 : j);
        if (end < 0) fail("unclosed '['; close the class with ']' or write '\\['", offset + i);
        const body = Array.from(text.slice(j, end), (ch) => ("\\[]^&~|".includes(ch) ? "\\" + ch : ch));
        out.push((negate ? "[^" : "[") + body.join("") + (negate ? "\\n]" : "]"));
        i = end;
      } else if (c === "{") {
        const m = /^\{(-?\d+)\.\.(-?\d+)?\}/.exec(text.slice(i));
        if (m) {
          const lo = BigInt(m[1]);
          const hi = m[2] === undefined ? null : BigInt(m[2]);
          if (lo >= 0n && hi !== null && hi >= 0n && lo > hi) {
            fail(`empty range '${m[0]}'; did you mean '{${hi}..${lo}}'?`, offset + i);
          }
          out.push({ lo, hi });
          i += m[0].length;
          continue;
        }
        const end = text.indexOf("}", i);
        if (end < 0) fail("unclosed '{'; close it with '}' or write '\\{'", offset + i);
        const body = text.slice(i + 1, end);
        if (body.includes("{")) fail("braces do not nest; write '{a,b}' with plain globs", offset + i);
        if (!body.includes(",")) {
          fail(`'{${body}}' is neither alternatives '{a,b}' nor a range '{N..M}'`, offset + i);
        }
        const alts = body.split(",").map((alt) => parse(alt, offset + i + 1).filter((p) => typeof p === "string").join(""));
        out.push("(?:" + alts.join("|") + ")");
        i = end;
      } else if (c === "]" || c === "}") fail(`unmatched '${c}'; write '\\${c}' for the character`, offset + i);
      else out.push(esc(c));
      i += 1;
    }
    return out;
  }
  // a whole digit run (no digit before or after it) whose value is in lo..hi (hi null: no end)
  function intRange(lo, hi) {
    function sameLen(a, b) {
      if (a === b) return a;
      if (a === "0".repeat(a.length) && b === "9".repeat(b.length)) {
        return a.length > 1 ? `\\d{${a.length}}` : "\\d";
      }
      if (a.length === 1) return `[${a}-${b}]`;
      if (a[0] === b[0]) return a[0] + sameLen(a.slice(1), b.slice(1));
      const rest = a.length - 1;
      const parts = [a[0] + sameLen(a.slice(1), "9".repeat(rest))];
      if (Number(b[0]) - Number(a[0]) > 1) {
        parts.push(`[${Number(a[0]) + 1}-${Number(b[0]) - 1}]` + sameLen("0".repeat(rest), "9".repeat(rest)));
      }
      parts.push(b[0] + sameLen("0".repeat(rest), b.slice(1)));
      return "(?:" + parts.join("|") + ")";
    }
    const width = (n) => String(n).length;
    const top = hi !== null ? hi : 10n ** BigInt(width(lo)) - 1n;
    const alts = [];
    for (let w = width(lo); w <= width(top); w += 1) {
      const floor = w > 1 ? 10n ** BigInt(w - 1) : 0n;
      const a = lo > floor ? lo : floor;
      const ceil = 10n ** BigInt(w) - 1n;
      const b = top < ceil ? top : ceil;
      if (a <= b) alts.push(sameLen(String(a), String(b)));
    }
    if (hi === null) alts.push(`[1-9]\\d{${width(lo)},}`);
    return "(?<!\\d)0*(?:" + alts.join("|") + ")(?!\\d)";
  }
  // the largest whole number that directly follows a match of `prefix` in any name
  function lastIndex(prefix) {
    const head = new RegExp("^(?:" + prefix.join("") + ")$");
    let best = null;
    for (const name of names) {
      for (const m of name.matchAll(/\d+/g)) {
        const value = BigInt(m[0]);
        if ((best === null || value > best) && head.test(name.slice(0, m.index))) best = value;
      }
    }
    return best;
  }
  const out = [];
  for (const piece of parse(text, 0)) {
    if (typeof piece === "string") {
      out.push(piece);
      continue;
    }
    let { lo, hi } = piece;
    if (lo < 0n || (hi !== null && hi < 0n)) {
      const last = lastIndex(out);
      if (last === null) return null;
      lo = lo >= 0n ? lo : last + 1n + lo;
      if (lo < 0n) lo = 0n;
      hi = hi === null || hi >= 0n ? hi : last + 1n + hi;
      if (hi !== null && hi < lo) return null;
    }
    out.push(intRange(lo, hi));
  }
  return new RegExp("^(?:" + out.join("") + ")(?:\\.[^\\n]*)?$");
}

// The indexes of `names` that the glob `text` matches, as a policy rule would match them.
function tlrulesGlob(text, names) {
  "use strict";
  if (text === "") throw new Error("empty pattern; use '*' to match every name");
  const re = tlrulesGlobRegExp(text, names);
  const found = [];
  if (re !== null) names.forEach((name, i) => re.test(name) && found.push(i));
  return found;
}

