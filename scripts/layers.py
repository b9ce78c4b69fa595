#!/usr/bin/env python3
"""Checks that the app's modules depend one way: a module may use only modules in layers below
its own (ARCHITECTURE.md, "Modules"). Reads every `crate::NAME` in app/src; prints each use that
goes up or sideways, and fails if there is one."""
import pathlib
import re
import sys

# Top to bottom; a module may use those in later layers only.
LAYERS = [
    ["main"],
    ["overlay", "cli"],
    ["session"],
    ["net"],
    ["config", "party", "plugins"],
    ["voice", "store", "transfer", "event_json", "companion"],
    ["stats", "ipc", "rate", "paths", "display", "desktop"],
    ["membership"],
    ["events"],
    ["choice"],
]
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}

src = pathlib.Path(__file__).resolve().parent.parent / "app" / "src"
bad = []
for path in sorted(src.rglob("*.rs")):
    rel = path.relative_to(src)
    module = rel.parts[0].removesuffix(".rs")
    if module == "lib":
        continue
    if module not in LAYER:
        bad.append(f"{rel}: module `{module}` is in no layer")
        continue
    text = path.read_text()
    # Tests may reach anywhere; only production code counts.
    text = text.split("#[cfg(test)]\nmod tests")[0]
    for used in sorted(set(re.findall(r"\bcrate::([a-z_]+)", text))):
        if used != module and used in LAYER and LAYER[used] <= LAYER[module]:
            bad.append(f"{rel}: `{module}` uses `{used}`, which is not below it")
for line in bad:
    print(line)
sys.exit(1 if bad else 0)
