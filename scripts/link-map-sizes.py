"""What the release binary is made of, per crate, from the linker's map (docs/build.md):

    cargo rustc --release --bin tweetflow -- -C link-arg=-Wl,-Map=/tmp/tweetflow.map
    python3 scripts/link-map-sizes.py /tmp/tweetflow.map [TOP]

Relinks only the binary's own crate. Sums the input sections the linker kept, by the crate
whose compilation produced them (generic code counts where it was instantiated, which is the
crate whose opt-level decides its size), for code (.text), read-only data, unwind tables and
the rest. Reads LLD's map format (VMA LMA Size Align Out In Symbol)."""

import collections
import re
import sys

path = sys.argv[1]
top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
kinds = {".text": "code", ".rodata": "rodata", ".eh_frame": "unwind", ".gcc_except_table": "unwind",
         ".data.rel.ro": "data", ".data": "data", ".tbss": "data", ".tdata": "data"}
skip = (".debug", ".comment", ".symtab", ".strtab")
sizes = collections.defaultdict(lambda: collections.Counter())
totals = collections.Counter()
out_section = None
out_col = None
crate_re = re.compile(r"lib([A-Za-z0-9_]+?)-[0-9a-f]{16}\.rlib|/([A-Za-z0-9_]+?)-[0-9a-f]{16}\.[^/]*rcgu\.o")
for line in open(path, errors="replace"):
    if out_col is None:
        if "Out" in line and "In" in line:
            out_col = line.index(" Out") + 1
        continue
    parts = line.split(None, 4)
    if len(parts) < 5 or not re.fullmatch(r"[0-9a-f]+", parts[0]):
        continue
    name = parts[4].rstrip("\n")
    if line[out_col:out_col + 1] not in (" ", ""):  # a name in the Out column
        out_section = name.strip()
        continue
    if out_section is None or ":(" not in name:
        continue  # a symbol line, or a linker-made section
    size = int(parts[2], 16)
    if out_section.startswith(skip):
        continue
    kind = kinds.get(out_section, "other")
    src = name.strip().split(":(", 1)[0]
    m = crate_re.search(src)
    if m:
        crate = m.group(1) or m.group(2)
    elif "/rustlib/" in src:
        crate = "std (precompiled)"
    elif ".a(" in src or src.endswith(".o"):
        crate = "C objects: " + re.sub(r"\(.*", "", src.rsplit("/", 1)[-1])
    else:
        crate = src.rsplit("/", 1)[-1][:60]
    sizes[crate][kind] += size
    totals[kind] += size

grand = sum(totals.values())
mb = lambda n: f"{n / 1e6:.1f}"
print(f"input sections kept: {mb(grand)} MB: " + ", ".join(f"{k} {mb(v)}" for k, v in totals.most_common()))
print(f"\n| crate | total MB | code | rodata | unwind | share |\n| --- | ---: | ---: | ---: | ---: | ---: |")
for crate, c in sorted(sizes.items(), key=lambda kv: -sum(kv[1].values()))[:top]:
    t = sum(c.values())
    print(f"| {crate} | {mb(t)} | {mb(c['code'])} | {mb(c['rodata'])} | {mb(c['unwind'])} | {100 * t / grand:.1f}% |")
