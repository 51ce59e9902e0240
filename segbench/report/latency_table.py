"""The latency columns of ``segbench compare``, from ``segbench benchmark`` records."""
from __future__ import annotations

MISSING = "–"


def latency_backends(rows) -> list[str]:
    from segbench.report.latency import BACKENDS

    return [backend for backend in BACKENDS if any(backend in row.latency for row in rows)]


def latency_cells(row, backends: list[str]) -> list[str]:
    cells = []
    for backend in backends:
        record = row.latency.get(backend)
        if record is None:
            cells += [MISSING, MISSING]
        else:
            cells += [f"{record.model_only.p50_ms:.2f} / {record.end_to_end.p50_ms:.2f}",
                      f"{record.end_to_end.images_per_s:.1f}"]
    return cells


def latency_notes(rows, backends: list[str]) -> list[str]:
    setups = sorted({f"{b}: {r.gpu or r.cpu} ({r.instruction_set}), {r.device} {r.precision}, {r.threads} thread(s),"
                     f" batch {r.batch}" for row in rows for b, r in row.latency.items() if b in backends})
    if not setups:
        return []
    return ["", "Latency: median of repeated runs after a warm-up (segbench benchmark), in ms, model only (forward"
            " on a normalised image) / end to end (normalisation, forward, up-sampling, argmax; no file I/O);"
            " FPS end to end. Measured on " + "; ".join(setups) + "."]



LATENCY_COLUMNS = ("model_p50_ms", "model_p90_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_images_per_s", "device",
                   "precision", "threads", "size", "cpu")


def latency_value(record, column):
    if record is None:
        return None
    return {"model_p50_ms": record.model_only.p50_ms, "model_p90_ms": record.model_only.p90_ms,
            "e2e_p50_ms": record.end_to_end.p50_ms, "e2e_p90_ms": record.end_to_end.p90_ms,
            "e2e_images_per_s": record.end_to_end.images_per_s, "device": record.device,
            "precision": record.precision, "threads": record.threads,
            "size": f"{record.input_size[0]}x{record.input_size[1]}", "cpu": record.gpu or record.cpu}[column]
