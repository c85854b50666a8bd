"""An embedded local cloud (moto) that runs a synthesized CDK app as `cdk deploy` would ship it."""

from saga.localcloud.cloud import LocalCloud, LocalCloudError

__all__ = ["LocalCloud", "LocalCloudError"]
