"""Summary of a measured cold build (scripts/measure-cold-build.sh): wall time, load average,
CPU time of the compiler processes, and the top 10 units by CPU time and by wall time (the
latter from cargo's --timings report)."""

import collections
import json
import re
import sys
from pathlib import Path

out, start, end = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

loads = [float(line.split()[1]) for line in (out / "load.log").read_text().split("\n") if line]
print(f"wall: {end - start} s ({(end - start) / 60:.1f} min)")
if loads:
    print(f"load average (1 min) during the build: mean {sum(loads) / len(loads):.1f}, "
          f"max {max(loads):.1f}, {len(loads)} samples")

cpu = collections.defaultdict(float)
for line in (out / "cpu.tsv").read_text().split("\n"):
    if not line:
        continue
    tool, pkg, crate, user, sys_, _wall = line.split("\t")
    what = "C code" if tool != "rustc" else ("build script" if crate.startswith("build_script") else "")
    cpu[(pkg, what)] += float(user) + float(sys_)
total = sum(cpu.values())
print(f"CPU time of rustc and cc (user+sys): {total:.0f} s ({total / 60:.1f} min)")
print("\ntop 10 by CPU time (s):")
print("| unit | CPU s | share |\n| --- | ---: | ---: |")
for (pkg, what), s in sorted(cpu.items(), key=lambda kv: -kv[1])[:10]:
    label = f"{pkg} ({what})" if what else pkg
    print(f"| {label} | {s:.1f} | {100 * s / total:.1f}% |")

html = (out / "cargo-timing.html").read_text()
m = re.search(r"const UNIT_DATA = (\[.*?\]);\n", html, re.S)
if m:
    units = json.loads(m.group(1))
    print("\ntop 10 by wall time in cargo --timings (s; a busy machine stretches these):")
    print("| unit | wall s |\n| --- | ---: |")
    for u in sorted(units, key=lambda u: -u["duration"])[:10]:
        target = u.get("target", "").strip()
        print(f"| {u['name']} {u['version']}{' ' + target if target else ''} | {u['duration']:.1f} |")
