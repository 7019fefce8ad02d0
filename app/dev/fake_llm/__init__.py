"""A scripted Anthropic Messages API server for tests and the offline demo.

Point the real ``anthropic`` client at it with ``base_url=<server url>``; every ``POST /v1/messages``
is answered from a *scenario* script instead of a model.

How a request is routed (stateless, so concurrent conversations never race):

- **role**: first match of ``otto-role:\\s*([a-z_]+)`` in the system prompt (a string, or text blocks
  joined); no match → ``unknown``.
- **key**: first match of ``otto-task:\\s*([A-Za-z0-9_.\\-]+)`` in the system prompt, else in the first
  user message's text; none → ``*``.
- **step**: the number of ``assistant`` messages already in ``messages`` (turn n of a conversation is
  step n).
- **run**: ``otto-run:\\s*(owner/name#N)`` in the system prompt (Otto names its run in every system
  prompt), lower-cased; none → ``""``. A run given a script of its own (``load(scenario, run="o/r#7")``)
  is answered from it alone; every other request from the default script (``load(scenario)``), so two runs
  in one world with the same task ids (both ``t1``) never share a script.

Scenario format (a YAML or JSON file, or a dict)::

    classify:                 # role -> a list of steps (same script for every key) ...
      - text: '{"actionable": true, "summary": "Add a greet command", "questions": []}'
    plan:
      - text: 'not json'                       # step 0
      - json: {"tasks": [{"id": "t1"}]}        # step 1 (json: is serialised to text for you)
    agent:                    # ... or a map key -> list of steps, with "*" as the fallback key
      t1:
        - tool_use: {name: str_replace_based_edit_tool,
                     input: {command: create, path: greet.py, file_text: "print('hi')\\n"}}
        - tool_uses:                           # several tool calls in one turn
            - {name: run_command, input: {command: "pytest -q"}}
        - text: "Added greet.py and its test."
      "*":
        - text: "Nothing to do."
    summary:
      - "A bare string is short for {text: ...}."

Step options (all optional; a step may be ``{}`` for an empty end_turn answer):

- ``text``: assistant text. ``json``: any value, serialised with ``json.dumps`` as the text.
- ``tool_use: {name, input, id?}`` / ``tool_uses: [...]``: ``tool_use`` content blocks (after the text,
  if any) with ids ``toolu_<random>`` unless given; the stop reason becomes ``tool_use``.
- ``stop_reason``: override (default ``end_turn``, or ``tool_use`` when there are tool calls).
- ``usage``: override any of ``input_tokens``, ``output_tokens``, ``cache_creation_input_tokens``,
  ``cache_read_input_tokens``.
- ``errors``: a list served, one per request, *before* the normal answer on the first requests that reach
  this (role, key, step); the counters are stateful, so with the SDK's own retries
  ``errors: [{status: 529}]`` means one retry. Each entry: ``status`` (default from ``type``, else 529),
  ``type`` (default from ``status``: 429 ``rate_limit_error``, 529 ``overloaded_error``, 500
  ``api_error``, ...), ``message``, ``retry_after_ms`` (sent as ``retry-after-ms`` and, rounded up, as
  ``retry-after``), ``should_retry`` (``x-should-retry: true|false``), ``hold`` (as below); or
  ``{malformed: true|html}`` for a one-off malformed 200; or ``mid_stream: true`` to fail a *streaming*
  request with ``event: error`` after some content (HTTP 200; non-streaming requests get the HTTP error).
- ``malformed: true``: answer HTTP 200, ``content-type: application/json``, with a truncated JSON body
  (every time); the SDK 2.10 raises a bare ``json.JSONDecodeError`` (a ``ValueError``, not an
  ``anthropic.APIError``) and does not retry. ``malformed: html``: HTTP 200 with an HTML page
  (``text/html``), as from a misbehaving proxy; the SDK then *returns the page as a ``str``* instead of a
  ``Message`` (or raises ``APIResponseValidationError`` with ``_strict_response_validation=True``).
- ``hold: <name>``: answer only once the test called ``release(name)`` (a latch: a hold released
  before a request reaches it doesn't wait). ``await held(name)`` waits until a request reached it (the
  model is "in the middle of" the step), ``holding(name)`` counts the requests waiting there now. A held
  request whose client goes away (its process killed, its timeout passed) ends at once and gets nothing:
  it is recorded with status 499, ``error_type`` ``client_closed``. No hold hangs a test: one nobody
  releases answers after ``FakeLLM(hold_timeout_s=)`` (120 s), and ``release_all()`` (called when the local
  world stops) releases every hold, now and later; ``load()`` without a run and ``reset()`` release them.
- ``stream_error: {type, message}``: a streaming request gets some content, then ``event: error`` with
  HTTP 200 (every time; the SDK raises ``APIStatusError`` and does not retry). A non-streaming request at
  this step gets the matching HTTP error instead.

A step past the end of its script (or an unknown role/key) gets HTTP 400 ``invalid_request_error`` naming
role, key and step; the SDK does not retry 400s, so the failure is loud.

Usage, unless overridden: ``output_tokens`` ≈ characters of the output text and tool inputs / 4 (at
least 1); the prompt's tokens (characters of its canonical blocks / 4, see
:mod:`app.dev.fake_llm.prompt`) split into
``input_tokens``, ``cache_creation_input_tokens`` and ``cache_read_input_tokens`` by a simulation of
Anthropic's prompt cache: per API key and model, prefixes up to each ``cache_control`` breakpoint (at most
4 a request, else 400), reads of the longest cached prefix at a breakpoint or up to 20 blocks before one,
writes of every breakpoint's prefix, an optional minimum cacheable length (``FakeLLM(min_cache_tokens=)``),
no expiry. ``POST /v1/messages/count_tokens`` answers ``{"input_tokens": N}`` with the same count.

Limits, as the API enforces them: a prompt above the context window (``FakeLLM(context_window=)``,
default 200,000 tokens) gets 400 ``prompt is too long: N tokens > W maximum``. Output longer than the
request's ``max_tokens`` is cut there with stop reason ``max_tokens`` (a tool call cut in the middle keeps
only the input fields it completed), and output that would overflow the window stops with
``model_context_window_exceeded``; ``output_tokens`` is then the limit. A scripted ``stop_reason`` still
wins.

Steps of a conversation that removed old turns to save room: when the first message's last block (not its
only one) is a text starting ``[otto-elided-turns: K]`` (Otto's elision note), the step is K + the
assistant messages.

Authentication: ``Authorization: Bearer <key>`` (SDK 2.x) or ``x-api-key: <key>`` (older SDKs); a key is
required and, if the server was given one, must match (else 401 ``authentication_error``). The
``anthropic-version`` header and the body fields ``model``, ``max_tokens``, ``messages`` are required.

Records: ``requests`` (``requests_for(role, key, run=)``) lists each request once answered, with its
``status``, its ``run`` and, for a message, the ``usage`` it reported; ``served()`` the messages a client
received; ``received`` (``received_for``) each request as it arrived, its answer possibly still held.

Control routes: ``PUT /_scenario`` (JSON scenario; resets counters and records; ``?run=owner/name%23N``:
that run's own script), ``POST /_holds/<name>/release``, ``GET /_requests``, ``DELETE /_requests``,
``PUT /_outage/<status>`` and ``DELETE /_outage`` (``outage(status=529)``, ``end_outage()``: the API down,
every request answered that error, no script step used).
Standalone: ``python -m app.dev.fake_llm --scenario FILE --port P``.

Modules: ``scenario`` (format, validation, request routing), ``server`` (state, the ASGI app), ``__main__``.
"""

from app.dev.fake_llm.scenario import Scenario, ScenarioError, identify, load_scenario, run_of
from app.dev.fake_llm.server import FakeLLM, RecordedRequest, create_app, main

__all__ = [
    "FakeLLM",
    "RecordedRequest",
    "Scenario",
    "ScenarioError",
    "create_app",
    "identify",
    "load_scenario",
    "main",
    "run_of",
]
