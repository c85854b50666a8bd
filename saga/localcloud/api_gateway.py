"""The deployed REST APIs, served by the local cloud at ``<endpoint>/_aws/execute-api/<api id>/<stage>/<path>``.

moto's CloudFormation creates a REST API's resources, methods, Lambda
integrations and (with ``moto_patches``) stages, but serves no requests to them.
This WSGI middleware, in front of the moto server, does what API Gateway does
for a Lambda proxy integration, from what the stack deployed:

- routes by resource path and method; an unknown route or an unsigned request
  to an IAM-authorized method is a 403 ``Missing Authentication Token``
  (locally the SigV4 signature is required but not verified);
- runs the method's request validator: a body that is not JSON or breaks the
  method's model (the JSON schema in the template) is a 400, and the Lambda
  never runs;
- invokes the integration's Lambda (the deployed code, through the local
  runtime) with the proxy event, and answers with the response it returns; a
  failed or malformed one is a 502, as on AWS.
"""

import base64
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from jsonschema import Draft4Validator
from moto.apigateway.models import apigateway_backends
from moto.cloudformation.models import cloudformation_backends
from werkzeug.wrappers import Request, Response

from saga.deployment import LOCAL_API_PREFIX as PREFIX

# (function ARN, proxy event) -> (the function's error, if any; its response payload)
LambdaCaller = Callable[[str, dict], tuple[str | None, bytes]]
_LAMBDA_URI = re.compile(r"arn:[^:]+:apigateway:[^:]+:lambda:path/[^/]+/functions/(?P<arn>.+)/invocations")


@dataclass(frozen=True)
class _Method:
    """A method as deployed: moto's record, plus what moto's CloudFormation keeps only in the template."""

    resource_path: str
    authorization_type: str
    function_arn: str | None
    body_schema: dict | None
    validate_body: bool
    required_parameters: tuple[str, ...]


class ApiGatewayMiddleware:
    """Answers requests under ``PREFIX``; hands every other request to moto's app."""

    def __init__(self, app, account: str, region: str, call_lambda: LambdaCaller):
        self._app = app
        self._account = account
        self._region = region
        self._call_lambda = call_lambda

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(PREFIX):
            return self._app(environ, start_response)
        return self._serve(Request(environ))(environ, start_response)

    def _serve(self, request: Request) -> Response:
        api_id, _, rest = request.path.removeprefix(PREFIX).partition("/")
        stage, _, path = rest.partition("/")
        api = apigateway_backends[self._account][self._region].apis.get(api_id)
        if api is None:
            return _message(404, f"no REST API {api_id} in the local cloud")
        if stage not in api.stages:
            return _message(403, "Forbidden")
        found = self._route(api, request.method, "/" + path)
        if found is None:
            return _message(403, "Missing Authentication Token")
        method, path_parameters = found
        if method.authorization_type == "AWS_IAM" and not _signed_for_execute_api(request):
            return _message(403, "Missing Authentication Token")
        refusal = _validate(method, request)
        if refusal is not None:
            return refusal
        if method.function_arn is None:
            return _message(500, "Internal server error: only Lambda proxy integrations run locally")
        event = _proxy_event(request, api_id, stage, "/" + path, method, path_parameters, self._account)
        error, payload = self._call_lambda(method.function_arn, event)
        return _from_proxy_response(error, payload)

    def _route(self, api, http_method: str, path: str) -> tuple[_Method, dict] | None:
        for resource in api.resources.values():
            parameters = _match(resource.get_path(), path)
            if parameters is not None and http_method in resource.resource_methods:
                return self._method(api, resource, http_method), parameters
        return None

    def _method(self, api, resource, http_method: str) -> _Method:
        deployed = resource.resource_methods[http_method]
        integration = deployed.method_integration
        uri = (
            _LAMBDA_URI.fullmatch(integration.uri or "")
            if integration and integration.integration_type == "AWS_PROXY"
            else None
        )
        properties = self._template_properties(api.id, resource.id, http_method)
        template, validator, model = properties["template"], properties["validator"], properties["model"]
        return _Method(
            resource_path=resource.get_path(),
            authorization_type=deployed.authorization_type or "NONE",
            function_arn=uri["arn"] if uri else None,
            body_schema=template.get(model, {}).get("Properties", {}).get("Schema") if model else None,
            validate_body=bool(template.get(validator, {}).get("Properties", {}).get("ValidateRequestBody")),
            required_parameters=properties["required_parameters"],
        )

    def _template_properties(self, api_id: str, resource_id: str, http_method: str) -> dict:
        """The method's validator, model and required parameters, read from the template of the stack that
        created it (moto's CloudFormation drops them)."""
        for stack in cloudformation_backends[self._account][self._region].stacks.values():
            resources = stack.template_dict.get("Resources", {})
            for properties in (
                resource.get("Properties", {})
                for resource in resources.values()
                if resource.get("Type") == "AWS::ApiGateway::Method"
            ):
                if properties.get("HttpMethod") != http_method:
                    continue
                if _physical_id(stack, properties.get("RestApiId")) != api_id:
                    continue
                if _physical_id(stack, properties.get("ResourceId")) not in (resource_id, None):
                    continue
                return {
                    "template": resources,
                    "validator": (properties.get("RequestValidatorId") or {}).get("Ref"),
                    "model": (properties.get("RequestModels", {}).get("application/json") or {}).get("Ref"),
                    "required_parameters": tuple(
                        name for name, required in properties.get("RequestParameters", {}).items() if required
                    ),
                }
        return {"template": {}, "validator": None, "model": None, "required_parameters": ()}


def _physical_id(stack, reference: object) -> str | None:
    """A ``{"Ref": <logical id>}`` as deployed; ``None`` for anything else (e.g. the API's root resource)."""
    if not isinstance(reference, dict) or "Ref" not in reference:
        return None
    deployed = stack.resource_map[reference["Ref"]]
    return getattr(deployed, "id", None)


def _match(template: str, path: str) -> dict | None:
    """The path parameters if ``path`` fits the resource path ``template`` (``/bookings/{booking_id}``)."""
    pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(template.rstrip("/") or "/"))
    match = re.fullmatch(pattern, path.rstrip("/") or "/")
    return match.groupdict() if match else None


def _signed_for_execute_api(request: Request) -> bool:
    authorization = request.headers.get("Authorization", "")
    return authorization.startswith("AWS4-HMAC-SHA256 ") and "/execute-api/aws4_request" in authorization


def _validate(method: _Method, request: Request) -> Response | None:
    missing = [
        name.rsplit(".", 1)[-1]
        for name in method.required_parameters
        if (name.startswith("method.request.querystring.") and name.rsplit(".", 1)[-1] not in request.args)
        or (name.startswith("method.request.header.") and name.rsplit(".", 1)[-1] not in request.headers)
    ]
    if missing:
        return _message(400, f"Missing required request parameters: [{', '.join(missing)}]")
    if not (method.validate_body and method.body_schema):
        return None
    try:
        body = json.loads(request.get_data(as_text=True))
    except ValueError:
        return _message(400, "Invalid request body")
    problems = sorted(
        f"{'.'.join(map(str, error.absolute_path)) or 'body'}: {error.message}"
        for error in Draft4Validator(method.body_schema).iter_errors(body)
    )
    if problems:
        return _message(400, f"Invalid request body: {'; '.join(problems)}")
    return None


def _proxy_event(
    request: Request, api_id: str, stage: str, path: str, method: _Method, path_parameters: dict, account: str
) -> dict:
    """The Lambda proxy integration's event (payload format 1.0), with what the handlers read filled in."""
    body = request.get_data(as_text=True)
    now = datetime.now(UTC)
    return {
        "resource": method.resource_path,
        "path": path,
        "httpMethod": request.method,
        "headers": dict(request.headers),
        "multiValueHeaders": {name: request.headers.getlist(name) for name in request.headers.keys()},  # noqa: SIM118
        "queryStringParameters": dict(request.args) or None,
        "multiValueQueryStringParameters": request.args.to_dict(flat=False) or None,
        "pathParameters": path_parameters or None,
        "stageVariables": None,
        "requestContext": {
            "accountId": account,
            "apiId": api_id,
            "stage": stage,
            "resourcePath": method.resource_path,
            "httpMethod": request.method,
            "path": f"/{stage}{path}",
            "protocol": "HTTP/1.1",
            "requestId": str(uuid.uuid4()),
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "identity": {"sourceIp": request.remote_addr or "127.0.0.1", "userAgent": request.user_agent.string},
        },
        "body": body or None,
        "isBase64Encoded": False,
    }


def _from_proxy_response(error: str | None, payload: bytes) -> Response:
    if error:
        return _message(502, "Internal server error")
    try:
        response = json.loads(payload)
        status = int(response["statusCode"])
        body = response.get("body") or ""
        data = base64.b64decode(body) if response.get("isBase64Encoded") else body.encode()
        headers = {str(name): str(value) for name, value in (response.get("headers") or {}).items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return _message(502, "Internal server error")
    return Response(data, status=status, headers=headers)


def _message(status: int, message: str) -> Response:
    return Response(json.dumps({"message": message}), status=status, content_type="application/json")
