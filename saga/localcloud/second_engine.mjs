// The second Step Functions engine's process: aws-local-stepfunctions running one state machine, driven by
// saga/localcloud/second_engine.py over JSON lines (commands on stdin, answers on stdout). Every Task state is
// handed back to Python, which answers it from the local cloud; any number of executions run at once.
//
// in:  {"definition": {...as deployed}, "prepared": {...as run}}    first line, once
//      {"op": "start", "execution": ID, "input": ..., "context": {...}}
//      {"op": "answer", "call": N, "output": ...}  or  {"op": "answer", "call": N, "error": NAME, "cause": TEXT}
// out: {"op": "ready"}  or  {"op": "refused", "error": TEXT}
//      {"op": "call", "call": N, "execution": ID, "state": NAME, "resource": ARN, "input": ...}
//      {"op": "done", "execution": ID, "status": ..., "output"?, "error"?, "cause"?, "events": [...]}
import { createInterface } from 'node:readline';
import { ExecutionError, ExecutionTimeoutError, StateMachine } from 'aws-local-stepfunctions';

const send = (message) => process.stdout.write(`${JSON.stringify(message)}\n`);
for (const level of ['log', 'info', 'debug']) console[level] = console.error; // stdout carries only the protocol
const waiting = new Map(); // call number -> the Task's promise, settled by Python's answer
let calls = 0;
let machine;
let tasks;

function load({ definition, prepared }) {
  try {
    new StateMachine(definition); // validated as deployed: the prepared copy's fractional timeouts fail the schema
    machine = new StateMachine(prepared, { validationOptions: { noValidate: true } });
  } catch (error) {
    send({ op: 'refused', error: String(error.message ?? error) });
    process.exit(1);
  }
  tasks = Object.entries(prepared.States).filter(([, state]) => state.Type === 'Task');
  send({ op: 'ready' });
}

// Every Task by state name (the library would send any Resource to Lambda's Invoke API on AWS).
function taskHandlers(execution) {
  const ask = (state, resource) => (input) =>
    new Promise((resolve, reject) => {
      const call = ++calls;
      waiting.set(call, { resolve, reject });
      send({ op: 'call', call, execution, state, resource, input });
    });
  return Object.fromEntries(tasks.map(([name, state]) => [name, ask(name, state.Resource)]));
}

async function start({ execution, input, context }) {
  const run = machine.run(input, { context, overrides: { taskResourceLocalHandlers: taskHandlers(execution) } });
  const events = [];
  const logging = (async () => {
    for await (const { type, timestamp, state, Error: error, Cause: cause } of run.eventLogs) {
      events.push({ type, timestamp, state: state?.name, error, cause });
    }
  })();
  let end;
  try {
    end = { status: 'SUCCEEDED', output: await run.result };
  } catch (error) {
    if (error instanceof ExecutionTimeoutError) end = { status: 'TIMED_OUT', error: 'States.Timeout' };
    else if (error instanceof ExecutionError) {
      end = { status: 'FAILED', error: error.cause.name, cause: error.cause.message };
    }
    else throw error;
  }
  await logging;
  send({ op: 'done', execution, ...end, events });
}

function answer({ call, output, error, cause }) {
  const task = waiting.get(call);
  waiting.delete(call);
  if (error === undefined) task.resolve(output);
  else task.reject(Object.assign(new Error(cause), { name: error })); // Retry and Catch match the error's name
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.once('line', (line) => {
  load(JSON.parse(line));
  lines.on('line', (next) => {
    const message = JSON.parse(next);
    if (message.op === 'start') start(message);
    else answer(message);
  });
});
lines.on('close', () => process.exit(0)); // Python closed stdin: the engine is done
