"""Sessions for deployments share what botocore has read, and stay apart in everything else."""

from saga.deployment import LOCAL_REGION, session_for


def test_sessions_share_one_loader_whose_search_paths_do_not_grow():
    first, second = session_for("http://localhost:1"), session_for(region="eu-west-1", profile=None)
    loader = first._session.get_component("data_loader")
    paths = list(loader.search_paths)
    for _ in range(3):
        session_for("http://localhost:1").client("dynamodb", endpoint_url="http://localhost:1")
    assert second._session.get_component("data_loader") is loader
    assert loader.search_paths == paths and len(set(paths)) == len(paths)
    assert (first.region_name, second.region_name) == (LOCAL_REGION, "eu-west-1")
    assert first.get_credentials().access_key == "local"
    assert first._session is not second._session
