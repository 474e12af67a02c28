"""Run every sample of the bounce corpus through the reading `bounces receive` uses; print how
it fared against the hand-made labels.

    python -m tests.bounces.bounce_corpus          # the confusion table and every miss

The corpus (tests/bounces/corpus/, labels.tsv says where each sample comes from) is real mail
from public sources: flufl.bounce's test data, the RFC 3464 and RFC 5965 examples, and real
reports other projects keep. Each is parsed by ``bounces.parse.parse`` exactly as a piped mail
is; what ``intake.apply_notice`` then does with a notice (match the copy, record it) needs a
database and changes nothing about what the notice says, so it is left out here.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from newsletter.bounces.parse import parse
from newsletter.models import BounceKind

CORPUS = Path(__file__).resolve().parent / "corpus"
OUTCOMES = ("hard", "soft", "about_us", "complaint", "nothing")
# A report about several recipients is judged by what it does at its worst to a reader.
_RANK = {
    BounceKind.HARD: "hard",
    BounceKind.COMPLAINT: "complaint",
    BounceKind.SOFT: "soft",
    BounceKind.BLOCKED: "about_us",
}


@dataclass(frozen=True)
class Sample:
    """One labelled sample and what the reading made of it."""

    path: str
    expected: str
    got: str
    note: str


def outcome_of(raw: bytes) -> str:
    """Return what the mail does to the reader it names: one of ``OUTCOMES``."""
    kinds = {notice.kind for notice in parse(raw)}
    for kind, outcome in _RANK.items():
        if kind in kinds:
            return outcome
    return "nothing"


def run() -> list[Sample]:
    """Read every labelled sample; return each with its label and its reading."""
    samples = []
    for line in (CORPUS / "labels.tsv").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        path, expected, note = line.split("\t", 2)
        if expected not in OUTCOMES:
            raise ValueError(f"{path}: unknown label {expected!r}")
        got = outcome_of((CORPUS / path).read_bytes())
        samples.append(Sample(path, expected, got, note))
    return samples


def table(samples: list[Sample]) -> str:
    """Return the confusion table (rows: the label, columns: the reading) and the misses."""
    counts = Counter((s.expected, s.got) for s in samples)
    width = max(len(o) for o in OUTCOMES) + 2
    lines = ["label \\ read".ljust(width + 4) + "".join(o.rjust(width) for o in OUTCOMES)]
    for expected in OUTCOMES:
        cells = "".join(str(counts[expected, got]).rjust(width) for got in OUTCOMES)
        lines.append(expected.ljust(width + 4) + cells)
    not_hard = [s for s in samples if s.expected != "hard"]
    wrongly_hard = [s for s in not_hard if s.got == "hard"]
    hard = [s for s in samples if s.expected == "hard"]
    missed = [s for s in hard if s.got != "hard"]
    lines += [
        "",
        f"{len(samples)} samples; {len(wrongly_hard)} of {len(not_hard)} non-hard reports "
        f"read as hard; {len(missed)} of {len(hard)} hard ones missed",
        "",
    ]
    lines += [
        f"  {s.path}: labelled {s.expected}, read {s.got} ({s.note})"
        for s in samples
        if s.expected != s.got
    ]
    return "\n".join(lines)


def main() -> int:
    """Print the table; exit 1 when more than 1 in 100 non-hard reports read as hard."""
    samples = run()
    print(table(samples))
    not_hard = [s for s in samples if s.expected != "hard"]
    return int(sum(s.got == "hard" for s in not_hard) * 100 > len(not_hard))


if __name__ == "__main__":
    sys.exit(main())
