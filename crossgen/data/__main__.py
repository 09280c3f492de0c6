"""Command line: ``python -m crossgen.data emoji --out data/emoji [--from DIR] [--styles ...]`` builds the dataset;
``python -m crossgen.data fixture --data data/emoji --out tests/fixtures/emoji`` copies the test fixture;
``python -m crossgen.data ood --out data/ood`` builds the out-of-domain set from images that ship in packages;
``python -m crossgen.data holdout --data data/emoji`` writes the compositional hold-out crossgen/data/holdout.json."""
from __future__ import annotations

import argparse
import sys

from typing import Any

from ..cli import run
from .emoji import build_emoji
from .holdout import HOLDOUT_FILE, build_holdout, write_holdout
from .ood import build_ood
from .records import FIXTURE_STYLES, STYLES, build_fixture, load_records


def summary(info: dict[str, Any]) -> str:
    """Human-readable counts per style and split, match counts and rates (share of a package's icons that name a
    concept) and failures."""
    lines = [f"{'style':12s} {'train':>6s} {'val':>5s} {'test':>5s} {'total':>6s} {'failed':>6s}"]
    for s, c in info["counts"].items():
        lines.append(f"{s:12s} {c['train']:6d} {c['val']:5d} {c['test']:5d} {sum(c.values()):6d} "
                     f"{info['failed'].get(s, 0):6d}")
    sp = info["splits"]
    lines.append(f"{'all':12s} {sp['train']:6d} {sp['val']:5d} {sp['test']:5d} {info['records']:6d}")
    for s, m in info["matches"].items():
        lines.append(f"{s}: " + ", ".join(f"{k} {v:.1%}" if k == "rate" else f"{k} {v}" for k, v in m.items()))
    lines.append(f"{info['concepts']} concepts, {info['seconds']} s")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(prog="python -m crossgen.data", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("emoji", help="build the emoji dataset from the pinned npm packages of split.json")
    e.add_argument("--out", default="data/emoji", help="output directory (default data/emoji)")
    e.add_argument("--from", dest="source", default=None,
                   help="directory with already downloaded packages (<pkg>-<version>/package/ or <pkg>-<version>.tgz)"
                        "; default: npm pack into --cache")
    e.add_argument("--cache", default="data/npm", help="where npm pack puts and extracts packages (default data/npm)")
    e.add_argument("--styles", nargs="+", default=None, choices=list(STYLES), help="styles to build (default all)")
    e.add_argument("--workers", type=int, default=2, help="rasterising processes (default 2)")
    f = sub.add_parser("fixture", help="copy a small deterministic test fixture out of a built dataset")
    f.add_argument("--data", default="data/emoji", help="built dataset (default data/emoji)")
    f.add_argument("--out", default="tests/fixtures/emoji", help="fixture directory (default tests/fixtures/emoji)")
    f.add_argument("--concepts", type=int, default=100, help="number of concepts (default 100)")
    f.add_argument("--styles", nargs="+", default=list(FIXTURE_STYLES), choices=list(STYLES))
    o = sub.add_parser("ood", help="build the out-of-domain set (photos, screenshots, text, noise, drawings) "
                                   "from what scikit-image, scikit-learn and matplotlib ship")
    o.add_argument("--out", default="data/ood", help="output directory (default data/ood)")
    h = sub.add_parser("holdout", help="write the compositional hold-out (colour x object, skin tone x person)")
    h.add_argument("--data", default="data/emoji", help="built dataset (default data/emoji)")
    h.add_argument("--out", default=str(HOLDOUT_FILE), help="output file (default crossgen/data/holdout.json)")
    args = p.parse_args(argv)
    command = " ".join(["python -m crossgen.data", *argv])
    if args.cmd == "emoji":
        info = build_emoji(args.out, source=args.source, cache=args.cache, styles=args.styles,
                           workers=args.workers, command=command)
        print(summary(info))
        print(f"wrote {info['records']} records to {args.out}/records.jsonl")
    elif args.cmd == "holdout":
        info = build_holdout(load_records(args.data))
        write_holdout(info, args.out)
        print(f"hold-out: {info['counts']} -> {args.out}")
    elif args.cmd == "ood":
        info = build_ood(args.out)
        print(f"out-of-domain set: {info['records']} images {info['counts']} -> {args.out}")
    else:
        info = build_fixture(args.data, args.out, n=args.concepts, styles=tuple(args.styles), command=command)
        print(f"fixture: {info['concepts']} concepts, counts {info['counts']} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
