"""`saga book --engine alsf` where the second engine cannot run: one line, exit 2, before any stack is looked for
(the endpoint below answers nothing)."""

import pytest

from saga.cli import main
from saga.commands import ExitStatus

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens, so a lookup would fail with another message


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wait"], "--engine alsf runs on a local cloud only: pass --endpoint-url (saga local up serves one)"),
        (["--wait", "--api", "--endpoint-url", NOWHERE], "--engine alsf starts the saga itself, so it cannot go "),
        (["--endpoint-url", NOWHERE], "--engine alsf runs the booking inside this command, which waits for it: "),
    ],
)
def test_the_second_engine_is_refused_off_a_local_cloud_through_the_api_or_without_wait(
    capsys, monkeypatch, args, message
):
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    code = main(["book", "--engine", "alsf", *args])

    out, err = capsys.readouterr()
    assert (code, out) == (ExitStatus.ERROR, "")
    assert err.startswith(f"saga: error: {message}") and err.count("\n") == 1, err


def test_the_second_engine_is_refused_without_node_22(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr("saga.node.PROJECT_NODE", tmp_path / "node_modules" / ".bin" / "node")
    monkeypatch.setenv("PATH", str(tmp_path))  # and none on PATH

    code = main(["book", "--engine", "alsf", "--wait", "--endpoint-url", NOWHERE])

    out, err = capsys.readouterr()
    assert (code, out) == (ExitStatus.ERROR, "")
    assert err == "saga: error: the second engine needs Node.js 22 (on Linux, `npm ci` installs it); found no Node.js\n"
