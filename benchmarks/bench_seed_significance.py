"""Does ``segbench compare`` tell a real difference from run-to-run noise? Three 3-seed experiments of the
quickstart on the synthetic city:

- A: the quickstart (seeds 0, 1, 2);
- B: the quickstart with a clearly worse setting (learning rate divided by 100; seeds 0, 1, 2);
- A': the quickstart again with other seeds (3, 4, 5).

B − A should exclude zero, A' − A should include it. Not a speed benchmark: it writes the two comparison
tables to ``results/seed_significance.md`` (and the numbers to ``.json``). ``--scale`` shrinks the
schedule: ``tiny`` (a test-sized run, ~seconds per seed; too short for the verdicts to mean anything),
``small`` (default; 89 s for all 9 runs on 2 AMD EPYC cores, AVX-512 + bf16) or ``full`` (the quickstart as written,
about a minute per seed there).

    python benchmarks/bench_seed_significance.py [--scale tiny|small|full] [--runs-dir DIR]
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

ROOT = common.ROOT
QUICKSTART = ROOT / "recipes" / "quickstart.yaml"
WORSE = ["optimizer.lr=1.0e-3"]  # the quickstart's 0.1 divided by 100
SCALES = {
    "tiny": ["data.dataset.train=48", "data.dataset.val=24", "trainer.epochs=3", "trainer.eval_every=3",
             "data.train.subset.random=8", "data.select.subset.random=8", "evaluation.flip=false"],
    "small": ["data.dataset.train=160", "data.dataset.val=50", "trainer.epochs=10", "trainer.eval_every=5",
              "trainer.batch_size=8", "trainer.report_checkpoint=best"],
    "full": [],
}


def experiments(scale: str, runs_dir: Path, progress: bool = False) -> dict:
    """Train the three experiments (complete runs are reused) and compare them; returns the record."""
    import attrs

    from segbench.engine.runner import run_recipe_file
    from segbench.functional import bootstrap
    from segbench.report.experiments import class_names_of, replicates, resolve_experiment
    from segbench.report.significance import difference_text, verdict

    base = SCALES[scale]
    folders = {"A": runs_dir / "quickstart", "B": runs_dir / "worse"}
    started = time.perf_counter()
    run_recipe_file(QUICKSTART, base, runs_dir=folders["A"], seeds=(0, 1, 2, 3, 4, 5), progress=progress)
    run_recipe_file(QUICKSTART, [*base, *WORSE], runs_dir=folders["B"], seeds=(0, 1, 2), progress=progress)
    seconds = time.perf_counter() - started
    a = resolve_experiment("quickstart:0,1,2", folders["A"])
    a_again = resolve_experiment("quickstart:3,4,5", folders["A"])
    worse_lr = WORSE[0].split("=")[1]
    b = attrs.evolve(resolve_experiment("quickstart", folders["B"]), label=f"quickstart, lr {worse_lr}")
    record = {"scale": scale, "overrides": base, "worse": WORSE, "train_seconds": round(seconds, 1),
              "comparisons": {}}
    texts = []
    for key, (first, second) in {"worse_minus_quickstart": (a, b),
                                 "other_seeds_minus_quickstart": (a, a_again)}.items():
        diff = bootstrap.compare(replicates(first), replicates(second))
        texts.append(f"### {key}\n\n" + difference_text(first, second, diff, class_names_of(first), 0))
        record["comparisons"][key] = {
            "A": first.label, "B": second.label, "seeds_paired": diff.paired_seeds, "images": diff.images,
            "mIoU_difference": diff.miou.estimate, "interval": [diff.miou.low, diff.miou.high],
            "excludes_zero": diff.miou.excludes_zero, "verdict": verdict(diff, "A", "B")}
    record["text"] = "\n".join(texts)
    return record


def main(argv=None) -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="small")
    parser.add_argument("--runs-dir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not update results/")
    args = parser.parse_args(argv)
    os.environ.setdefault("SEGBENCH_NO_REEXEC", "1")
    machine = common.machine()  # measured before the runs, so its GEMM does not overlap them
    with tempfile.TemporaryDirectory() as tmp:
        record = experiments(args.scale, args.runs_dir or Path(tmp), progress=sys.stderr.isatty())
    record["machine"] = machine
    header = (f"# Seed significance ({args.scale} scale: {' '.join(record['overrides']) or 'the quickstart as written'})\n\n"
              f"Training all 9 runs took {record['train_seconds']} s. Machine: {common.machine_line(machine)}.\n\n")
    text = header + record.pop("text")
    print(text)
    if not args.no_write:
        common.write_results("seed_significance", record, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
