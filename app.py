#!/usr/bin/env python3
"""The CDK app's entry point: `cdk synth`/`cdk deploy` run it through cdk.json (the app is in stacks/app.py)."""

from stacks.app import build_app

if __name__ == "__main__":
    build_app().synth()
