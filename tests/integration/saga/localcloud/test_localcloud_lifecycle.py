"""Starting and stopping the local cloud: clear errors, and nothing of it left behind in the process."""

import json
import multiprocessing
import os
import socket

import pytest
from moto.core.config import default_user_config

from saga.localcloud import LocalCloud, LocalCloudError


def test_a_taken_port_is_reported():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(LocalCloudError, match=f"127.0.0.1:{port}: the port is taken"), LocalCloud(port=port):
            pass


def test_only_one_cloud_runs_per_process():
    with LocalCloud():
        processes = multiprocessing.active_children()
        with pytest.raises(RuntimeError, match="a LocalCloud is already running in this process"), LocalCloud():
            pass
        assert multiprocessing.active_children() == processes  # refused before it forked DynamoDB's process


def dynamodb_process() -> multiprocessing.process.BaseProcess:
    [process] = [child for child in multiprocessing.active_children() if child.name == "localcloud-dynamodb"]
    return process


def test_dynamodb_runs_in_a_process_that_ends_with_the_cloud():
    with LocalCloud() as cloud:
        process = dynamodb_process()
        assert cloud.dynamodb_endpoint_url not in ("", cloud.endpoint_url)
        assert cloud.client("dynamodb").list_tables()["TableNames"] == []  # a clean account, served there
    assert not process.is_alive()


def test_a_dynamodb_process_that_died_is_reported():
    with LocalCloud() as cloud:
        process = dynamodb_process()
        process.kill()
        process.join()
        with pytest.raises(RuntimeError, match="the local cloud's DynamoDB process has ended"):
            cloud.transaction_conflicts()


def test_cloudformation_creates_and_deletes_a_table_where_dynamodb_serves_it():
    table = {
        "Type": "AWS::DynamoDB::Table",
        "Properties": {
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
            "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            "BillingMode": "PAY_PER_REQUEST",
        },
    }
    template = {"Resources": {"Table": table}, "Outputs": {"Name": {"Value": {"Ref": "Table"}}}}
    with LocalCloud() as cloud:
        cloudformation, dynamodb = cloud.client("cloudformation"), cloud.client("dynamodb")
        cloudformation.create_stack(StackName="OneTable", TemplateBody=json.dumps(template))
        [output] = cloudformation.describe_stacks(StackName="OneTable")["Stacks"][0]["Outputs"]
        assert dynamodb.list_tables()["TableNames"] == [output["OutputValue"]]
        cloudformation.delete_stack(StackName="OneTable")
        assert dynamodb.list_tables()["TableNames"] == []


def test_moto_settings_are_restored_on_exit():
    config_before, port_before = dict(default_user_config), os.environ.get("MOTO_PORT")
    with LocalCloud() as cloud:
        assert os.environ["MOTO_PORT"] == cloud.endpoint_url.rsplit(":", 1)[1]
        assert default_user_config["stepfunctions"] == {"execute_state_machine": True}
    assert dict(default_user_config) == config_before
    assert os.environ.get("MOTO_PORT") == port_before


def test_a_missing_stack_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text('{"version": "1", "artifacts": {}}')
    with LocalCloud() as cloud, pytest.raises(LocalCloudError, match="no stack Nope"):
        cloud.deploy(tmp_path, "Nope")
