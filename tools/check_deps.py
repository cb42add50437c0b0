#!/usr/bin/env python3
"""Fails when a module includes a module it may not depend on (STYLE.md, "Layout").

Usage: check_deps.py REPO_ROOT. Scans src/<module>/**/*.{h,cc} for project includes
("module/..."); exits 1 listing every forbidden include.
"""
import pathlib
import re
import sys

# module -> modules it may include (besides itself). Dependencies point down only.
ALLOWED = {
    "base": set(),
    "wire": {"base"},
    "stun": {"wire", "base"},
    "pake": {"wire", "base"},
    "control": {"wire", "base"},
    "traversal": {"stun", "wire", "base"},
    "io": {"wire", "base"},
    "quic": {"io", "wire", "base"},
    "share": {"io", "wire", "base"},
    "relay": {"control", "stun", "io", "wire", "base"},
    "client": {"traversal", "quic", "control", "pake", "share", "stun", "io", "wire", "base"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    problems = []
    src = root / "src"
    for path in sorted(src.rglob("*")):
        if path.suffix not in (".h", ".cc") or not path.is_file():
            continue
        module = path.relative_to(src).parts[0]
        allowed = ALLOWED.get(module)
        if allowed is None:
            problems.append(f"{path}: module '{module}' is not listed in tools/check_deps.py")
            continue
        for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            dep = m.group(1)
            if dep != module and dep in ALLOWED and dep not in allowed:
                problems.append(f"{path}:{lineno}: {module} may not include {dep}/")
    for p in problems:
        print(p)
    print(f"check_deps: {len(problems)} forbidden include(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
