"""An embedded local cloud (moto) that runs a synthesized CDK app as `cdk deploy` would ship it."""

import functools
from unittest import mock

import boto3
import botocore.session


def _import_moto_regions_once() -> None:
    """Import moto's EC2 models (moto's CloudFormation imports them) with one botocore session for the sessions they
    make. Their class bodies list the regions of three partitions, each through a new boto3 session that reads
    botocore's endpoints anew: a quarter of a second of every process that starts a local cloud. Later sessions
    there are made as moto makes them."""
    shared = functools.partial(boto3.Session, botocore_session=botocore.session.Session())
    with mock.patch.object(boto3, "Session", shared):
        import moto.ec2.models.availability_zones_and_regions as regions
    regions.Session = boto3.Session


_import_moto_regions_once()  # before any of moto is imported below

from saga.localcloud.cloud import LocalCloud, LocalCloudError  # noqa: E402

__all__ = ["LocalCloud", "LocalCloudError"]
