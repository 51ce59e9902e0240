"""The CPU as the operating system describes it: model name, family and model numbers, feature flags."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import attrs


@attrs.frozen
class CpuInfo:
    model: str  # the marketing name; a hypervisor may shorten it ("AMD EPYC")
    # x86 "family F model M": tells apart CPU generations that share a shortened name (an AMD EPYC of family 25
    # and one of family 26 differ in speed); "" where the system does not say.
    family_model: str
    flags: frozenset[str]

    @property
    def label(self) -> str:
        return cpu_label(self.model, self.family_model)


def cpu_label(model: str, family_model: str) -> str:
    """The model name with its family and model numbers (``AMD EPYC (family 25 model 17)``), for whatever tells
    machines apart: reports, cached timings."""
    return f"{model} ({family_model})" if family_model else model


@functools.lru_cache(maxsize=1)
def read_cpuinfo() -> CpuInfo:
    """This machine's CPU: ``/proc/cpuinfo`` on Linux, elsewhere what ``platform`` knows."""
    fallback = platform.processor() or platform.machine() or "unknown CPU"
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(model=fallback, family_model="", flags=frozenset())
    return parse_cpuinfo(text, fallback_model=fallback)


def parse_cpuinfo(text: str, *, fallback_model: str) -> CpuInfo:
    """The first processor's entry of a ``/proc/cpuinfo`` text (x86: ``model name``, ``cpu family``, ``model``,
    ``flags``; ARM: ``Features`` and often no name, so ``fallback_model``)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon:
            continue
        if key == "processor" and "processor" in fields:
            break  # the next processor's entry: the first one says it all
        fields.setdefault(key, value.strip())
    family, model = fields.get("cpu family", ""), fields.get("model", "")
    family_model = f"family {family} model {model}" if family.isdigit() and model.isdigit() else ""
    flags = frozenset((fields.get("flags") or fields.get("Features") or "").split())
    return CpuInfo(model=fields.get("model name") or fallback_model, family_model=family_model, flags=flags)
