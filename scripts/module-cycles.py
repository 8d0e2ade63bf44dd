#!/usr/bin/env python3
"""Report two-way dependencies (cycles) between the modules of one crate.

Usage: scripts/module-cycles.py CRATE_SRC_DIR [--edges]

Every `.rs` file is a module (`a/mod.rs` and `a.rs` are `a`). A file depends on every module
it names through `crate::…`, `super::…` or `self::…` paths (in `use` items and inline paths,
brace groups expanded); comments, string literals and `#[cfg(test)]` modules are ignored.
A path is attributed to the longest module prefix that exists.

Reported (each as strongly connected components, Tarjan):
  * top-level cycles: between the crate's top-level modules (`cache` <-> `store`);
  * sibling cycles: between the files of one directory, its `mod.rs` excluded
    (`executor/attempt.rs` <-> `executor/shards.rs`);
  * cross cycles: any other cycle between files, parent/child pairs excluded
    (a `mod.rs` and the files it declares are one room: the parent re-exports, the child
    uses the parent's types).
Exit status 1 when any cycle is found.
"""
import os
import re
import sys


def strip(text):
    """Remove comments, string/char literals and #[cfg(test)] modules."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "r" and re.match(r'r#*"', text[i:i + 10]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = re.match(r'r(#*)"', text[i:])
            end = '"' + m.group(1)
            j = text.find(end, i + len(m.group(0)))
            i = n if j < 0 else j + len(end)
            out.append('""')
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            out.append('""')
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or (c == "'" and re.match(r"'\\[xu]", text[i:i + 3])):
            j = text.find("'", i + 2)
            i = j + 1
            out.append("' '")
        else:
            out.append(c)
            i += 1
    code = "".join(out)
    # drop `#[cfg(test)] mod name { ... }` blocks
    while True:
        m = re.search(r"#\[cfg\(test\)\]\s*(pub(\([^)]*\))?\s+)?mod\s+\w+\s*\{", code)
        if not m:
            break
        depth, j = 1, m.end()
        while j < len(code) and depth:
            depth += {"{": 1, "}": -1}.get(code[j], 0)
            j += 1
        code = code[:m.start()] + code[j:]
    return code


def expand(code, start):
    """Expand the path beginning at `start` (just after `crate::` etc.) into segment lists."""
    paths = []

    def walk(i, prefix):
        segs = list(prefix)
        while True:
            m = re.match(r"\s*(\{|[A-Za-z_][A-Za-z0-9_]*|\*)", code[i:])
            if not m:
                paths.append(segs)
                return i
            tok = m.group(1)
            i += m.end()
            if tok == "{":
                while True:
                    i = walk(i, segs)
                    m2 = re.match(r"\s*(,|\})", code[i:])
                    if not m2:
                        return i
                    i += m2.end()
                    if m2.group(1) == "}":
                        return i
                    if re.match(r"\s*\}", code[i:]):
                        i += re.match(r"\s*\}", code[i:]).end()
                        return i
            if tok == "*":
                paths.append(segs)
                return i
            segs = segs + [tok]
            m = re.match(r"\s*::", code[i:])
            if not m:
                paths.append(segs)
                return i
            i += m.end()

    walk(start, [])
    return paths


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    show_edges = "--edges" in sys.argv
    root = args[0] if args else "engine/src"
    modules = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            modules[tuple(parts)] = os.path.join(root, rel)
    if () in modules and not any(m for m in modules if m):
        pass
    edges = {m: set() for m in modules}
    for mod, path in modules.items():
        code = strip(open(path, encoding="utf-8").read())
        is_dir = os.path.basename(path) in ("mod.rs", "lib.rs", "main.rs")
        here = list(mod) if is_dir else list(mod)  # self:: = this module
        for m in re.finditer(r"\b(crate|super|self)\s*::", code):
            base = m.group(1)
            if base == "crate":
                prefix = []
            elif base == "self":
                prefix = list(mod)
            else:
                prefix = list(mod[:-1])
            # `super::super::x`
            for segs in expand(code, m.end()):
                while segs and segs[0] == "super":
                    prefix, segs = prefix[:-1], segs[1:]
                full = prefix + segs
                target = None
                for k in range(len(full), -1, -1):
                    if tuple(full[:k]) in modules:
                        target = tuple(full[:k])
                        break
                if target is not None and target != mod and target != ():
                    edges[mod].add(target)
    name = lambda m: "::".join(m) or "crate"
    if show_edges:
        for m in sorted(edges):
            for t in sorted(edges[m]):
                print(f"{name(m)} -> {name(t)}")

    def sccs(nodes, adj):
        index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]

        def visit(v):
            index[v] = low[v] = counter[0]
            counter[0] += 1
            stack.append(v)
            on.add(v)
            for w in adj.get(v, ()):
                if w not in index:
                    visit(w)
                    low[v] = min(low[v], low[w])
                elif w in on:
                    low[v] = min(low[v], index[w])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    result.append(sorted(comp))

        sys.setrecursionlimit(10000)
        for v in sorted(nodes):
            if v not in index:
                visit(v)
        return result

    found = 0
    # top level
    top = {}
    for m, ts in edges.items():
        if not m:
            continue
        for t in ts:
            if t and t[0] != m[0]:
                top.setdefault(m[0], set()).add(t[0])
    for comp in sccs({m[0] for m in modules if m}, top):
        found += 1
        print("top-level cycle: " + " <-> ".join(comp))
        for a in comp:
            for b in comp:
                if b in top.get(a, ()):
                    why = sorted({f"{name(m)} -> {name(t)}" for m, ts in edges.items() if m and m[0] == a for t in ts if t and t[0] == b})
                    print("    " + "; ".join(why))
    # siblings
    dirs = {m[:-1] for m in modules if len(m) > 1}
    for d in sorted(dirs):
        sib = [m for m in modules if len(m) == len(d) + 1 and m[:-1] == d]
        adj = {}
        for m in sib:
            for t in edges[m]:
                if len(t) > len(d) and t[:len(d)] == d:
                    tt = t[:len(d) + 1]
                    if tt != m and tt in modules:
                        adj.setdefault(m, set()).add(tt)
        for comp in sccs(sib, adj):
            found += 1
            print(f"sibling cycle in {name(d)}: " + " <-> ".join(name(c) for c in comp))
    # any cycle between files that is not parent/child
    adj = {m: {t for t in ts if not (t == m[:len(t)] or m == t[:len(m)])} for m, ts in edges.items()}
    reported = 0
    for comp in sccs(list(modules), adj):
        found += 1
        reported += 1
        print("file cycle: " + " <-> ".join(name(c) for c in comp))
    if not found:
        print(f"no cycles among {len(modules)} modules of {root}")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()
