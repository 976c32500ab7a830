"""The captured AMI transcript (tests/fixtures/ami-transcript.raw): wire
bytes between annotation lines ("#### SECTION: ...", "#### SENT",
"#### RECV +Nms", LF only). A block ends with the LF that precedes the next
annotation line; that LF is the annotation's, not the wire's."""
import re
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "ami-transcript.raw"


def blocks(path=FIXTURE):
    """[(section, "SENT" | "RECV", bytes)] in file order."""
    data = Path(path).read_bytes()
    out = []
    section = ""
    parts = re.split(rb"^(#### [^\n]*\n)", data, flags=re.M)
    kind = None
    for p in parts:
        if p.startswith(b"#### "):
            line = p[5:].decode().rstrip("\n")
            if line.startswith("SECTION: "):
                section, kind = line[len("SECTION: "):], None
            else:
                kind = line.split()[0]
            continue
        if kind is None:
            continue
        if p.endswith(b"\n") and not p.endswith(b"\r\n"):
            p = p[:-1]
        out.append((section, kind, p))
    return out


def stream(direction="RECV", path=FIXTURE):
    """Every block of one direction joined: what a client reads (RECV) or
    writes (SENT)."""
    return b"".join(b for _, d, b in blocks(path) if d == direction)


def sections(path=FIXTURE):
    """{section title: (sent bytes, received bytes)}."""
    out = {}
    for sec, d, b in blocks(path):
        s, r = out.get(sec, (b"", b""))
        out[sec] = (s + b, r) if d == "SENT" else (s, r + b)
    return out
