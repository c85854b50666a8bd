"""A fourth service, car rental, added in one place (an entry in the services list): the stack, the booking
contract and its JSON schema, the `saga` command's flags and chaos choices, the catalog and the chaos test's
expectations all follow it. (Running it also takes the service's own three-line handler module, car.py.)"""

import json

import pytest
from aws_cdk.assertions import Template

from booking_saga.contract import default_contract
from booking_saga.services import SERVICES, Capacity, Service, reference_trip
from saga.catalog import load_catalog
from saga.cli import parser
from saga.definition import compensation_chain
from stacks.app import build_app
from tests.stacks.definition import resolved_definition

CAR = Service(
    "car",
    reserve_state="ReserveCar",
    cancel_state="CancelCar",
    fields={"car_id": "id", "days": "units"},
    example={"car_id": "ECONOMY-NRT", "days": 3},
    capacity=Capacity(resource="car_id", quantity="days", catalog="cars"),
)
FOUR = (*SERVICES, CAR)


@pytest.fixture(scope="module")
def template() -> dict:
    app = build_app(services=FOUR)
    return Template.from_stack(app.node.find_child("BookingSaga")).to_json()


def test_the_stack_gets_the_services_table_functions_states_and_output(template):
    definition = resolved_definition(template)
    states = definition["States"]
    handlers = {
        resource["Properties"]["Handler"]: resource["Properties"]["Environment"]["Variables"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Lambda::Function"
    }

    assert {"car.reserve", "car.cancel"} <= set(handlers)
    assert handlers["car.reserve"].get("CONFIRMS_BOOKING") == "true"  # now the last step
    assert "CONFIRMS_BOOKING" not in handlers["payment.reserve"]
    assert states["ProcessPayment"]["Next"] == "ReserveCar"
    assert states["ReserveCar"]["Next"] == "BookingConfirmed"
    assert compensation_chain(definition, "ReserveCar") == [
        "CancelCar",
        "RefundPayment",
        "CancelHotel",
        "CancelFlight",
        "BookingFailed",
    ]
    assert "CarsTable" in template["Outputs"]
    contract = json.loads(template["Outputs"]["BookingContract"]["Value"])
    assert contract["chaos_enabled"] is True


def test_the_contract_and_its_schema_take_the_new_section():
    contract = default_contract(chaos_enabled=True, services=FOUR)
    trip = reference_trip("car-0001", FOUR)

    booking = contract.parse(trip | {"chaos": {"fail_at": "car", "duplicate": ["car.reserve"]}})
    schema = contract.json_schema()

    assert booking.section("car") == {"car_id": "ECONOMY-NRT", "days": 3}
    assert CAR.holding(booking.section("car")) == {"resource_id": "ECONOMY-NRT", "quantity": 3}
    assert schema["properties"]["car"]["required"] == ["car_id", "days"]
    assert "car" in schema["required"]
    with pytest.raises(Exception, match="booking is missing car"):
        default_contract(services=FOUR).parse(reference_trip("car-0002"))


def test_saga_takes_the_new_flags_and_chaos_choices(capsys):
    args = parser(FOUR).parse_args(["book", "--car", "COMPACT-HND", "--days", "5", "--fail-at", "car"])

    assert (getattr(args, "car.car_id"), getattr(args, "car.days"), args.fail_at) == ("COMPACT-HND", 5, "car")
    assert args.services == FOUR
    with pytest.raises(SystemExit):
        parser().parse_args(["book", "--fail-at", "car"])  # the three-service saga has no car step
    assert "invalid choice: 'car'" in capsys.readouterr().err


def test_the_catalog_stocks_cars(tmp_path):
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"flights": {"NH101": 10}, "cars": {"ECONOMY-NRT": 20}}))

    assert load_catalog(catalog, FOUR) == {"flight": {"NH101": 10}, "hotel": {}, "car": {"ECONOMY-NRT": 20}}
