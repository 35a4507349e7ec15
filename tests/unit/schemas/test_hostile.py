"""Hostile input gets its code: never a hang, a crash, or a file read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

NS = "urn:exgate:exchange:1"
ROOT = f'<EXCHANGE xmlns="{NS}" version="1">'

BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE EXCHANGE [\n<!ENTITY a "aaaaaaaaaa">\n'
    + b"".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">\n'.encode() for i in range(9)
    )
    + b"]>\n"
    + ROOT.encode()
    + b"<HEAD><XZQHDM>&j;</XZQHDM></HEAD></EXCHANGE>\n"
)
XXE = (
    b'<?xml version="1.0"?>\n<!DOCTYPE EXCHANGE [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    + ROOT.encode()
    + b"<HEAD><XZQHDM>&xxe;</XZQHDM></HEAD></EXCHANGE>"
)
EXTERNAL_DTD = (
    b'<?xml version="1.0"?>\n<!DOCTYPE EXCHANGE SYSTEM "http://127.0.0.1:9/evil.dtd">\n'
    + ROOT.encode()
    + b"</EXCHANGE>"
)
PARAMETER_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE EXCHANGE [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>\n'
    + ROOT.encode()
    + b"</EXCHANGE>"
)
DEEP = (ROOT + "<BODY>" + "<SBXX>" * 100_000).encode()
TRUNCATED = (f'<?xml version="1.0"?>\n{ROOT}<HEAD><XZQHDM>4301').encode()
GARBAGE = bytes(range(256)) * 64


def _big_text() -> bytes:
    return (
        f'<?xml version="1.0"?>\n{ROOT}<HEAD><XZQHDM>'.encode()
        + b"x" * (50 * 1024 * 1024)
        + b"</XZQHDM></HEAD></EXCHANGE>"
    )


CASES = [
    ("billion laughs", lambda: BILLION_LAUGHS, "forbidden-dtd"),
    ("xxe file", lambda: XXE, "forbidden-dtd"),
    ("external dtd", lambda: EXTERNAL_DTD, "forbidden-dtd"),
    ("parameter entity", lambda: PARAMETER_ENTITY, "forbidden-dtd"),
    ("deep nesting", lambda: DEEP, "malformed-xml"),
    ("50 MB text node", _big_text, "file-too-large"),
    ("binary garbage", lambda: GARBAGE, "malformed-xml"),
    ("truncated", lambda: TRUNCATED, "malformed-xml"),
    ("zero bytes", lambda: b"", "empty-file"),
]


@pytest.mark.parametrize(("make", "code"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_gets_its_code(tmp_path: Path, make, code: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "hostile.xml"
    path.write_bytes(make())
    # A child process with a timeout: a hang or a crash fails the test instead of the suite.
    done = subprocess.run(
        [sys.executable, "-m", "cli", "validate", "--format", "json", str(path)],
        capture_output=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert done.returncode == 1, done.stderr.decode()
    report = json.loads(done.stdout)
    assert [e["code"] for e in report["errors"]] == [code]
    assert "root:" not in done.stdout.decode()  # nothing of /etc/passwd leaked into the report


def test_external_dtd_is_never_fetched(tmp_path: Path) -> None:
    """A listening socket on loopback must see no connection from the validator."""
    import socket

    from schemas.reader import DocumentReader

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.5)
        port = server.getsockname()[1]
        data = (
            f'<?xml version="1.0"?>\n<!DOCTYPE EXCHANGE SYSTEM "http://127.0.0.1:{port}/x.dtd">\n'
            f"{ROOT}<HEAD><XZQHDM>&ext;</XZQHDM></HEAD></EXCHANGE>"
        ).encode()
        reader = DocumentReader(data, "net.xml")
        assert list(reader) == []
        assert [i.code for i in reader.issues] == ["forbidden-dtd"]
        with pytest.raises(TimeoutError):
            server.accept()


@pytest.mark.parametrize("data", [
    b"\x00\x01 not xml at all",     # reads as UTF-16 without a BOM: Python's codec refuses
    b"\x00<\x00?\x00x",             # UTF-16BE-looking, no declaration
    b"<\x00?\x00x\x00m\x00l\x00",   # UTF-16LE-looking, no BOM
    b"\xff\xfe<\x00",               # a BOM and almost nothing
])
def test_bytes_that_only_look_like_utf16_are_malformed_not_a_crash(data: bytes) -> None:
    """Once, the cut before undecodable bytes raised UnicodeError here, and the drop
    folder retried the file every minute for ever."""
    from schemas.reader import DocumentReader

    reader = DocumentReader(data, "g.xml")
    assert list(reader) == []
    assert [str(i.code) for i in reader.issues] == ["malformed-xml"] and reader.fatal
