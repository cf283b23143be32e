#!/usr/bin/env python3
"""Architecture checks the test suite runs (issue 19): no function over 80 lines outside tests, in every crate of
the workspace; no import circle between routerd's modules, at the first and the second level (`uplink`,
`uplink::dhcp4`), following `crate::` and `super::` paths. Exit status 1, with what is wrong, when either fails."""

import os
import re
import sys

MAX_LINES = 80
CRATES = ["routerd", "rtrctl", "proto", "recover", "image", "integration"]
ROUTERD = "routerd/src"


def rust_files(root):
    for directory, _, names in os.walk(root):
        if "/target" in directory:
            continue
        for name in names:
            if name.endswith(".rs"):
                yield os.path.join(directory, name)


def is_test_file(path):
    return "/tests/" in path or path.endswith("_tests.rs") or path.endswith("/tests.rs")


def long_functions():
    found = []
    for crate in CRATES:
        for path in rust_files(crate):
            if is_test_file(path):
                continue
            lines = open(path, encoding="utf-8").read().split("\n")
            # Everything from a `#[cfg(test)]` module on is test code.
            end = len(lines)
            for i, line in enumerate(lines):
                if re.match(r"\s*#\[cfg\(test\)\]", line) and i + 1 < len(lines) and "mod " in lines[i + 1]:
                    end = i
                    break
            for i, line in enumerate(lines[:end]):
                m = re.match(r"(\s*)(pub(\([^)]*\))?\s+)?(async\s+)?(const\s+)?(unsafe\s+)?fn\s+(\w+)", line)
                if not m or line.rstrip().endswith(";"):
                    continue
                indent = len(m.group(1))
                j = i
                while j < len(lines) and not (
                    lines[j].startswith(" " * indent + "}") and len(lines[j]) - len(lines[j].lstrip()) == indent
                ):
                    j += 1
                if j - i + 1 > MAX_LINES:
                    found.append(f"{path}:{i + 1}: fn {m.group(7)} is {j - i + 1} lines (at most {MAX_LINES})")
    return found


def module_of(path):
    parts = os.path.relpath(path, ROUTERD)[:-3].split("/")
    return parts[:-1] if parts[-1] == "mod" else parts


def import_edges(level):
    modules = {tuple(module_of(p)) for p in rust_files(ROUTERD)}

    def resolve(parts):
        for k in range(len(parts), 0, -1):
            if tuple(parts[:k]) in modules:
                return parts[:k]
        return None

    edges = {}
    for path in rust_files(ROUTERD):
        if is_test_file(path) or path.endswith(("lib.rs", "main.rs")):
            continue
        me = module_of(path)
        text = open(path, encoding="utf-8").read()
        cut = re.search(r"#\[cfg\(test\)\]\s*mod ", text)
        text = re.sub(r"//[^\n]*", "", text[: cut.start()] if cut else text)
        parent = me[:-1]
        targets = []
        for m in re.finditer(r"\b(crate|super)((?:::\w+)+)", text):
            rest = m.group(2).split("::")[1:]
            targets.append(rest if m.group(1) == "crate" else parent + rest)
        for m in re.finditer(r"use (crate|super)::\{([^;]*)\};", text, re.S):
            prefix = [] if m.group(1) == "crate" else parent
            for item in re.finditer(r"(\w+)(?:::\{([^{}]*)\}|::(\w+))?", m.group(2)):
                subs = []
                if item.group(2):
                    subs = [x.strip().split("::")[0] for x in item.group(2).split(",") if x.strip()]
                elif item.group(3):
                    subs = [item.group(3)]
                targets.extend([prefix + [item.group(1), s] for s in subs] or [prefix + [item.group(1)]])
        a = "::".join(me[:level])
        for target in targets:
            resolved = resolve(target)
            if resolved is None:
                continue
            b = "::".join(resolved[:level])
            if a != b and not b.startswith(a + "::") and not a.startswith(b + "::"):
                edges.setdefault(a, set()).add(b)
    return edges


def cycles(edges):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def main():
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    problems = long_functions()
    for level in (1, 2):
        edges = import_edges(level)
        for component in cycles(edges):
            arrows = [f"{a} -> {b}" for a in component for b in component if b in edges.get(a, ())]
            problems.append(f"import circle among routerd's modules: {', '.join(arrows)}")
    for problem in problems:
        print(problem)
    print(f"architecture: {len(problems)} problems (functions over {MAX_LINES} lines outside tests, import circles)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
