"""What `saga` says about its own arguments, before it looks for any stack: one line, exit 2, nothing done."""

import contextlib
import io

import pytest

from saga.cli import main
from saga.commands import ExitStatus
from saga.localcloud.cloud import TRANSACTION_WINDOW_SECONDS


def run(capsys, *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exit_:  # argparse exits; main's own errors return
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "--endpoint-url", "127.0.0.1:4611"], "argument --endpoint-url: must be a URL such as http://"),
        (["list", "--endpoint-url", "ftp://x"], "argument --endpoint-url: must be a URL such as http://"),
        (["local", "up", "--port", "99999"], "argument --port: must be a port number from 0 to 65535, not '99999'"),
        (["local", "up", "--port", "-1"], "argument --port: must be a port number from 0 to 65535"),
        (["local", "up", "--transaction-window", "-1"], "argument --transaction-window: must be 0 or more, not -1"),
        (["local", "up", "--transaction-window", "soon"], "argument --transaction-window: not a number: 'soon'"),
        (["replay", "--limit", "0"], "argument --limit: must be above 0, not 0"),
        (["list", "--limit", "many"], "argument --limit: not a number: 'many'"),
        (["book", "--timeout", "-3"], "argument --timeout: must be above 0, not -3"),
        (["book", "--amount", "lots"], "argument --amount: not a number: 'lots'"),
        (["book", "--fail-at", "car"], "argument --fail-at: invalid choice: 'car'"),
        (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
        (["status"], "the following arguments are required: booking_id"),
    ],
)
def test_a_bad_argument_is_one_line_naming_it_and_exit_2(capsys, args, message):
    code, out, err = run(capsys, *args)

    assert (code, out) == (ExitStatus.ERROR, "")
    assert err.startswith(f"saga: error: {message}"), err
    assert err.count("\n") == 1, "a usage block or a traceback"
    assert "_positive" not in err and "function" not in err, "an internal function name"
    assert err.rstrip().endswith("--help)")


def test_an_unwritable_log_dir_is_refused_before_anything_starts(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    code, out, err = run(capsys, "local", "up", "--log-dir", str(blocker / "logs"))

    assert (code, out) == (ExitStatus.ERROR, "")
    assert err.startswith(f"saga: error: argument --log-dir: cannot write to {blocker / 'logs'}: Not a directory")


def test_version_names_the_package(capsys):
    code, out, _ = run(capsys, "--version")

    assert code == 0
    assert out.startswith("saga ") and out.strip() != "saga unknown"


def test_local_ups_transaction_window_says_the_local_clouds_default():
    """The help names the default, which the CLI does not import the local cloud (and moto) to read."""
    assert f"(default: {TRANSACTION_WINDOW_SECONDS})" in cli_help("local", "up")


def cli_help(*command: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        main([*command, "--help"])
    return " ".join(out.getvalue().split())
