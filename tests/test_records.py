"""Run files as typed records: one JSON round trip each, old files still load, third-party readers need no torch."""
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from segbench.records import (SCHEMA_VERSION, EvaluationRecord, RecordError, ResultsRecord, SelectionRecord,
                              TrainStepRecord, read_evaluation, read_metrics, read_results, write_record)

# Written by `segbench run` and `segbench evaluate` before the files carried a schema version.
OLD_RUN = Path(__file__).parent / "fixtures" / "run_v0" / "toy-f7d60cfd"


def test_files_without_a_schema_version_load_with_every_value():
    raw = json.loads((OLD_RUN / "results.json").read_text())
    results = read_results(OLD_RUN / "results.json")
    assert "schema_version" not in raw and results.schema_version == SCHEMA_VERSION
    assert results.mIoU == raw["mIoU"] and results.per_class_iou == raw["per_class_iou"]
    assert results.confusion_matrix == raw["confusion_matrix"] and results.evaluation.mode == "whole"
    evaluation = read_evaluation(OLD_RUN / "evaluation-report.json")
    assert evaluation.mIoU == results.mIoU and evaluation.labelids_export is None
    records = read_metrics(OLD_RUN / "metrics.jsonl")
    assert len(records) == len((OLD_RUN / "metrics.jsonl").read_text().splitlines())
    assert isinstance(records[0], TrainStepRecord) and isinstance(records[-1], SelectionRecord)
    assert records[-1].best_mIoU == results.best_selection_mIoU


def test_each_record_round_trips_through_json_and_keeps_the_old_keys(tmp_path):
    results = read_results(OLD_RUN / "results.json")
    write_record(tmp_path / "results.json", results)
    written = json.loads((tmp_path / "results.json").read_text())
    old = json.loads((OLD_RUN / "results.json").read_text())
    added = {key: value for key, value in written.items() if key not in old}
    assert {key: written[key] for key in old} == old  # every old value kept under its old key ...
    assert [key for key in written if key in old] == list(old)  # ... in the same order
    assert added["schema_version"] == SCHEMA_VERSION
    assert all(value in (None, False) for key, value in added.items() if key != "schema_version")  # defaults
    assert read_results(tmp_path / "results.json") == results
    evaluation = read_evaluation(OLD_RUN / "evaluation-report.json")
    assert EvaluationRecord.from_json(evaluation.to_json()) == evaluation
    for record in read_metrics(OLD_RUN / "metrics.jsonl"):
        assert type(record).from_json(record.to_json()) == record
        assert "\n" not in record.to_json()  # one line of metrics.jsonl


def test_a_newer_schema_or_a_wrong_field_is_a_clear_error(tmp_path):
    data = json.loads((OLD_RUN / "results.json").read_text())
    with pytest.raises(RecordError, match="schema_version 99.*Upgrade segbench"):
        ResultsRecord.from_json(json.dumps({**data, "schema_version": 99}), source="x/results.json")
    with pytest.raises(RecordError, match=r"x/results.json.*report_images"):
        ResultsRecord.from_json(json.dumps({**data, "report_images": "six"}), source="x/results.json")
    del data["mIoU"]
    with pytest.raises(RecordError, match="mIoU"):
        ResultsRecord.from_json(json.dumps(data), source="x/results.json")
    (tmp_path / "cut.json").write_text('{"recipe": "to')
    with pytest.raises(RecordError, match="cut.json is not valid JSON"):
        read_results(tmp_path / "cut.json")


def test_metrics_reader_skips_a_cut_line_and_unknown_record_types(tmp_path):
    lines = (OLD_RUN / "metrics.jsonl").read_text().splitlines()
    path = tmp_path / "metrics.jsonl"
    path.write_text("\n".join([lines[0], '{"type": "note", "text": "from a newer version"}', lines[1][:20]]))
    assert read_metrics(path) == read_metrics(OLD_RUN / "metrics.jsonl")[:1]
    assert read_metrics(tmp_path / "missing.jsonl") == []


def test_compare_and_plot_read_an_old_run(tmp_path, cli):
    shutil.copytree(OLD_RUN, tmp_path / "runs" / OLD_RUN.name)
    status, out, err = cli("compare", tmp_path / "runs", "--format", "csv")
    assert status == 0, err
    header, row = out.splitlines()[:2]
    values = dict(zip(header.split(","), row.split(",")))
    assert float(values["mIoU"]) == read_results(OLD_RUN / "results.json").mIoU and values["status"] == "complete"
    status, out, err = cli("plot", tmp_path / "runs" / OLD_RUN.name, "--out", tmp_path / "curves.png")
    assert status == 0, err
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_third_party_reader_uses_the_record_classes_without_torch(tmp_path):
    """A script outside segbench ranks runs by reading their results through the record classes."""
    for name, miou in (("a-11111111", 0.25), ("b-22222222", 0.75)):
        results = read_results(OLD_RUN / "results.json")
        import attrs

        write_record(tmp_path / name / "results.json", attrs.evolve(results, recipe=name[0], mIoU=miou))
    script = textwrap.dedent("""
        import sys
        from pathlib import Path
        from segbench.records import read_results

        runs = [read_results(path) for path in sorted(Path(sys.argv[1]).glob("*/results.json"))]
        for results in sorted(runs, key=lambda r: -r.mIoU):
            print(results.recipe, f"{100 * results.mIoU:.1f}", results.evaluation.mode)
        print("torch loaded:", "torch" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                         check=True).stdout
    assert out.splitlines() == ["b 75.0 whole", "a 25.0 whole", "torch loaded: False"]
