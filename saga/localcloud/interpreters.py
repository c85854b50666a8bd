"""Which Python runs a function's handler: the version its runtime declares, wherever this machine has it.

Lambda runs a ``python3.13`` function on Python 3.13. The local cloud does too when it finds that version
here (the interpreter it runs on, or ``python3.13`` on PATH, e.g. from pyenv), so a behaviour of that
version shows up before a deploy does. Where the version is missing it falls back to its own interpreter
and says so (``describe``): then the handlers run, but on another Python than AWS gives them.

Either way the handler's libraries come from this environment's site-packages, as Lambda serves boto3
from its runtime and Powertools from a layer. They are pure Python (boto3, botocore, Powertools), so any
version of the interpreter can load them; only the handler code and the standard library change.
"""

import functools
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from shutil import which

# Where a worker on another interpreter finds the handler's libraries (this environment's pure-Python ones).
LIBRARIES = sysconfig.get_paths()["purelib"]


@dataclass(frozen=True)
class Interpreter:
    """The Python that runs the functions of one declared runtime (e.g. ``python3.13``)."""

    runtime: str
    path: str
    version: str  # the interpreter's own, e.g. "3.13.0"

    @property
    def matches(self) -> bool:
        """Whether it is the runtime's version (else it is the fallback)."""
        return self.runtime == "python" + ".".join(self.version.split(".")[:2])

    @property
    def is_own(self) -> bool:
        """Whether it is the interpreter the local cloud runs on (its libraries are already on its path)."""
        return self.path == sys.executable

    def describe(self) -> str:
        if self.matches:
            return f"Functions on {self.runtime} run on Python {self.version} ({self.path})"
        return (
            f"{self.runtime} is not installed here: its functions run on this Python {self.version} instead "
            f"(install Python {self.runtime.removeprefix('python')} on PATH to match AWS)"
        )


@functools.cache
def interpreter_for(runtime: str) -> Interpreter:
    """The interpreter of ``runtime``'s version, or the one running now; looked up once per runtime."""
    own = Interpreter(runtime, sys.executable, ".".join(map(str, sys.version_info[:3])))
    if own.matches or not runtime.startswith("python"):
        return own
    command = which(runtime)  # "python3.13"
    if command is None:
        return own
    try:
        found = subprocess.run(
            [command, "-I", "-c", "import sys, platform; print(sys.executable); print(platform.python_version())"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):  # e.g. a pyenv shim for a version that is not installed
        return own
    # The real executable, not a shim: a shim adds a shell and pyenv's lookup to every worker's start.
    interpreter = Interpreter(runtime, found[0], found[1]) if len(found) == 2 else own
    return interpreter if interpreter.matches else own
