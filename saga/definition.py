"""Reading the deployed state machine's definition (ASL): what runs when a step fails, which cancels undo a saga.

Everything here reads the definition Step Functions actually runs (``Deployment.definition``), never a
hand-kept list, so the chaos test's expectations and ``saga replay``'s cancels follow the deployed saga.
"""


def compensation_chain(definition: dict, failed_state: str) -> list[str]:
    """The states a failure of ``failed_state`` leads through: its catch, then each Next to the end."""
    states = definition["States"]
    catchers = states.get(failed_state, {}).get("Catch", [])
    chain, name = [], catchers[0]["Next"] if catchers else None
    while name is not None and name not in chain:
        chain.append(name)
        name = states[name].get("Next")
    return chain


def compensations(definition: dict) -> list[tuple[str, str]]:
    """(state name, function ARN) of every cancel, in the order a failure of the last step runs them."""
    states, name, last_task = definition["States"], definition["StartAt"], ""
    while name is not None:
        if states[name]["Type"] == "Task":
            last_task = name
        name = states[name].get("Next")
    return [
        (state, states[state]["Resource"])  # the tasks invoke their function directly (its ARN)
        for state in compensation_chain(definition, last_task)
        if states[state]["Type"] == "Task"
    ]


def functions(definition: dict) -> list[str]:
    """The ARN of every function a task of the definition invokes, in the order the states are listed."""
    return [
        state["Resource"]
        for state in definition["States"].values()
        if state["Type"] == "Task" and state["Resource"].startswith("arn:aws:lambda:")
    ]
