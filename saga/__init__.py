"""Tooling around the saga: the local cloud, the inventory catalog and the demo.

The Lambda modules in ``lambdas/`` import each other by bare name, exactly as they
do inside Lambda; the tooling puts that directory on the path to share their code
(the ledger's item layout, the booking contract) instead of copying it.
"""

import sys
from pathlib import Path

LAMBDA_CODE = Path(__file__).resolve().parent.parent / "lambdas"
if str(LAMBDA_CODE) not in sys.path:
    sys.path.append(str(LAMBDA_CODE))
