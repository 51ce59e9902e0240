"""Collect the steps of ``benchmarks/gpu_check.sh`` into OUT/gpu_check.json and OUT/gpu_check.md.

    python benchmarks/gpu_check_report.py OUT
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

# mmsegmentation's published figures for DeepLabV3+ R50-D8, 512x1024 crops, 80k iterations (configs/deeplabv3plus
# README): training memory per GPU at batch 2, inference frames per second at 1024x2048, on a V100.
ANCHOR = {"source": "mmsegmentation deeplabv3plus_r50-d8_4xb2-80k_cityscapes-512x1024", "gpu": "V100",
          "train_memory_gb_batch2": 7.5, "inference_images_per_s_1024x2048": 3.94}


def _json(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _steps(out: Path) -> dict:
    steps = {}
    for line in (out / "steps.tsv").read_text().splitlines():
        name, rc, ms = line.split("\t")
        steps[name] = {"status": int(rc), "wall_s": int(ms) / 1000,
                       "outcome": "ok" if rc == "0" else "timed out" if rc in ("124", "137") else "failed"}
    return steps


def _run(out: Path, name: str) -> dict | None:
    results = next((out / name).rglob("results.json"), None) if (out / name).exists() else None
    if results is None:
        return None
    r = _json(results)
    return {key: r.get(key) for key in ("mIoU", "pixel_accuracy", "iterations", "epochs", "precision", "device",
                                        "wall_time_s")}


def collect(out: Path) -> dict:
    report = {"machine": common.machine(), "anchor": ANCHOR, "steps": _steps(out)}
    report["quickstart_bf16"] = _run(out, "runs-bf16")
    report["fp16_steps"] = _run(out, "runs-fp16")
    torchrun = _run(out, "runs-torchrun")
    log = out / "logs" / "torchrun_nccl.err"
    if torchrun is not None:
        torchrun["backend_nccl"] = log.exists() and "1 process(es), nccl" in log.read_text()
    report["torchrun"] = torchrun
    report["train_step"] = {}
    for batch in (2, 8):
        data = _json(out / f"train_step_b{batch}" / "train_step.json")
        if data:
            v = data["models"]["deeplabv3plus"]["variants"]["segbench"]
            report["train_step"][batch] = {"s_per_step": v["median_s"], "images_per_s": v["images_per_s"],
                                           "peak_memory_gib": v.get("peak_memory_bytes", 0) / 2**30,
                                           "settings": v["settings"]}
    inference = _json(out / "inference" / "eval.json")
    report["inference"] = {p: {"images_per_s": v["images_per_s"], "settings": v["settings"]}
                           for p, v in inference["inference"]["deeplabv3plus"].items()} if inference else {}
    return report


def markdown(report: dict) -> str:
    lines = ["# GPU check", "", common.machine_line(report["machine"]) + ".", "",
             "| step | outcome | wall s |", "|---|---|---:|"]
    lines += [f"| {name} | {s['outcome']} ({s['status']}) | {s['wall_s']:.0f} |" for name, s in report["steps"].items()]
    quick = report["quickstart_bf16"]
    if quick:
        lines += ["", f"Quickstart on CUDA ({quick['precision']}): val mIoU {quick['mIoU']:.3f}, training"
                  f" {quick['wall_time_s']:.0f} s, whole command {report['steps']['quickstart_bf16']['wall_s']:.0f} s."]
    for name, title in (("fp16_steps", "fp16 with the gradient scaler"), ("torchrun", "torchrun, one process")):
        run = report[name]
        if run:
            extra = f", nccl backend: {'yes' if run.get('backend_nccl') else 'not seen in the log'}" \
                if name == "torchrun" else ""
            lines.append(f"{title}: {run['iterations']} iterations completed (a non-finite loss stops a run),"
                         f" val mIoU {run['mIoU']:.3f}{extra}.")
    anchor = report["anchor"]
    lines += ["", f"DeepLabV3+ R50, 512x1024 crops; beside it {anchor['source']} on a {anchor['gpu']}:", "",
              "| measurement | segbench | mmsegmentation (V100) |", "|---|---:|---:|"]
    for batch, v in report["train_step"].items():
        mm = f"{anchor['train_memory_gb_batch2']} GB" if int(batch) == 2 else "-"  # mmseg: MiB / 1024
        lines.append(f"| training, batch {batch}: s/step, images/s ({v['settings']}) | {v['s_per_step']:.3f} s,"
                     f" {v['images_per_s']:.1f} img/s | - |")
        lines.append(f"| training, batch {batch}: peak memory (max_memory_allocated) | {v['peak_memory_gib']:.2f} GiB"
                     f" | {mm} |")
    for precision, v in report["inference"].items():
        lines.append(f"| inference 1024x2048, {v['settings']} | {v['images_per_s']:.2f} img/s"
                     f" | {anchor['inference_images_per_s_1024x2048']} img/s (fp32) |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = common.argument_parser(__doc__)
    parser.add_argument("out", type=Path, help="the folder gpu_check.sh wrote (it holds steps.tsv)")
    out = parser.parse_args().out
    if not (out / "steps.tsv").is_file():
        parser.error(f"{out} holds no steps.tsv; give the OUT folder of a finished bash benchmarks/gpu_check.sh")
    report = collect(out)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    print(f"wrote {out / 'gpu_check.json'} and {out / 'gpu_check.md'}")


if __name__ == "__main__":
    main()
