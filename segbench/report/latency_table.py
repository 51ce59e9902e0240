"""The latency columns of ``segbench compare``, from ``segbench benchmark`` records."""
from __future__ import annotations

MISSING = "–"


def latency_backends(rows) -> list[str]:
    from segbench.report.latency import BACKENDS

    return [backend for backend in BACKENDS if any(backend in row.latency for row in rows)]


def setting(record) -> str:
    """What a latency depends on besides the model: machine, device, precision, threads, batch, image size."""
    return (f"{record.gpu or record.cpu} ({record.instruction_set}), {record.device} {record.precision},"
            f" {record.threads} thread(s), batch {record.batch}, {record.input_size[0]}x{record.input_size[1]}")


def setting_tags(rows, backends: list[str]) -> dict[str, dict[str, str]]:
    """backend -> each distinct setting of its measurements -> its tag (``a``, ``b``, ...), in order of appearance.
    Each backend's column is compared within itself (onnxruntime always measures fp32 on the CPU)."""
    tags: dict[str, dict[str, str]] = {backend: {} for backend in backends}
    for row in rows:
        for backend, known in tags.items():
            if backend in row.latency:
                text = setting(row.latency[backend])
                if text not in known:
                    index = len(known)
                    known[text] = chr(ord("a") + index % 26) + (str(index // 26) if index >= 26 else "")
    return tags


def setting_tag(record, backend: str, tags: dict[str, dict[str, str]]) -> str:
    """`` [a]`` naming ``record``'s setting where ``backend``'s measurements in the table were taken in several
    settings (another image size, batch or thread count; listed by :func:`latency_notes`), else ``""``."""
    known = tags[backend]
    return f" [{known[setting(record)]}]" if len(known) > 1 else ""


def latency_cells(row, backends: list[str], tags: dict[str, dict[str, str]]) -> list[str]:
    """Median latencies (model only / end to end) and FPS, tagged with their setting where settings differ."""
    cells = []
    for backend in backends:
        record = row.latency.get(backend)
        if record is None:
            cells += [MISSING, MISSING]
        else:
            tag = setting_tag(record, backend, tags)
            cells += [f"{record.model_only.p50_ms:.2f} / {record.end_to_end.p50_ms:.2f}{tag}",
                      f"{record.end_to_end.images_per_s:.1f}{tag}"]
    return cells


def latency_notes(backends: list[str], tags: dict[str, dict[str, str]]) -> list[str]:
    parts, mixed = [], False
    for backend in backends:
        known = tags[backend]
        if len(known) == 1:
            parts.append(f"{backend}: {next(iter(known))}")
        elif known:
            mixed = True
            parts.append(f"{backend} in several settings, not comparable across them: "
                         + "; ".join(f"[{t}] {s}" for s, t in known.items()))
    if not parts:
        return []
    advice = (" (`segbench benchmark` each run with the same --size, --batch and --threads to compare them)"
              if mixed else "")
    return ["", "Latency: median of repeated runs after a warm-up (segbench benchmark), in ms per batch, model only"
            " (forward on a normalised image) / end to end (normalisation, forward, up-sampling, argmax; no file"
            " I/O); FPS: images per second end to end. Measured on " + "; ".join(parts) + advice + "."]


LATENCY_COLUMNS = ("model_p50_ms", "model_p90_ms", "e2e_p50_ms", "e2e_p90_ms", "e2e_images_per_s", "device",
                   "precision", "threads", "batch", "size", "cpu")


def latency_value(record, column):
    if record is None:
        return None
    return {"model_p50_ms": record.model_only.p50_ms, "model_p90_ms": record.model_only.p90_ms,
            "e2e_p50_ms": record.end_to_end.p50_ms, "e2e_p90_ms": record.end_to_end.p90_ms,
            "e2e_images_per_s": record.end_to_end.images_per_s, "device": record.device,
            "precision": record.precision, "threads": record.threads, "batch": record.batch,
            "size": f"{record.input_size[0]}x{record.input_size[1]}", "cpu": record.gpu or record.cpu}[column]
