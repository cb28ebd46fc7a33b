#!/usr/bin/env python3
"""Finds import circles between the source files of each crate.

    scripts/module-cycles.py            # every crate under crates/; exit 1 on a circle
    scripts/module-cycles.py --graph    # also print each file's imports

A file imports another when it names one of its modules through `crate::`,
`super::` or `self::` paths (in `use` items or inline paths). Tests (`tests/`,
`#[cfg(test)] mod tests { … }` blocks at the end of a file) are left out: a
test module may use anything. A module's own submodules (`mod x;` inside it)
are not imports: a parent owning its children is the layout, not a circle.
Strongly connected components with more than one file are the circles.
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def module_of(src: Path, file: Path) -> tuple:
    """The module path of `file` inside the crate rooted at `src`."""
    parts = list(file.relative_to(src).with_suffix("").parts)
    if parts[-1] in ("lib", "main", "mod"):
        parts = parts[:-1]
    return tuple(parts)


def strip_tests(text: str) -> str:
    """Drops a trailing `#[cfg(test)] mod tests { ... }` and comments."""
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod \w+ \{", text, re.M)
    if cut:
        text = text[: cut.start()]
    text = re.sub(r"//[^\n]*", "", text)
    return text


PATH = re.compile(r"\b(crate|super|self)((?:::\w+)+)")
USE_GROUP = re.compile(r"\buse\s+(crate|super|self)((?:::\w+)*)::\{([^;]*)\};", re.S)


def referenced(module: tuple, text: str) -> set:
    """Module paths (absolute) that `text`, the source of `module`, names."""
    refs = set()

    def resolve(root: str, rest: list) -> tuple:
        base = {"crate": (), "self": module, "super": module[:-1]}[root]
        return base + tuple(rest)

    for m in USE_GROUP.finditer(text):
        head = [p for p in m.group(2).split("::") if p]
        for item in re.split(r",", m.group(3)):
            first = re.split(r"::|\s", item.strip())[0]
            if first and first not in ("self",) and first[0].islower():
                refs.add(resolve(m.group(1), head + [first]))
            else:
                refs.add(resolve(m.group(1), head))
    for m in PATH.finditer(text):
        parts = [p for p in m.group(2).split("::") if p]
        refs.add(resolve(m.group(1), parts))
    return refs


def crate_graph(src: Path):
    files = sorted(p for p in src.rglob("*.rs"))
    modules = {module_of(src, f): f for f in files}
    graph = {f: set() for f in files}
    for module, file in modules.items():
        text = strip_tests(file.read_text())
        for ref in referenced(module, text):
            # The longest prefix of the path that is a module file.
            for n in range(len(ref), 0, -1):
                target = modules.get(ref[:n])
                if target is not None:
                    break
            else:
                continue
            # Own descendants are the layout; the crate root is the guide.
            if target == file or ref[: len(module)] == module and len(module) < n:
                continue
            if target.name in ("lib.rs", "main.rs"):
                continue
            graph[file].add(target)
    return graph


def circles(graph):
    """Tarjan's strongly connected components, those of more than one file."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    show = "--graph" in sys.argv
    found = 0
    for src in sorted(ROOT.glob("crates/*/src")):
        graph = crate_graph(src)
        for comp in circles(graph):
            found += 1
            names = [str(f.relative_to(ROOT)) for f in comp]
            print(f"circle in {src.parent.name}: " + ", ".join(names))
            for f in comp:
                for t in sorted(graph[f] & set(comp)):
                    print(f"    {f.relative_to(src)} -> {t.relative_to(src)}")
        if show:
            for f, targets in graph.items():
                for t in sorted(targets):
                    print(f"{src.parent.name}: {f.relative_to(src)} -> {t.relative_to(src)}")
    if found:
        print(f"{found} circle(s)")
        return 1
    print("no import circle in any crate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
