"""The Bitrix24 REST client: the only place in Reglament that knows how to call a portal.

Every call is a POST with a JSON body to `<webhook URL><method>` or, for an OAuth
application, `https://<portal>/rest/<method>` with `auth` in the body (CONFIRMED: any
method takes JSON; POST is the documented production way). Answers are
`{"result", "total"?, "next"?, "time"}`; errors `{"error", "error_description"}`.

- **Lists** page at 50 with `start`/`next` (CONFIRMED). `list()` reads the first page, then
  asks for every remaining page at once, 50 pages to a `batch` (5,000 deals: 3 requests).
  `pages()` walks page by page for a caller that wants memory bounded.
- **batch** (CONFIRMED): up to 50 commands `"method?php-encoded-params"`, `halt` 0; results,
  errors, totals and next starts come back keyed by command. `batch()` splits longer
  lists; `gather()` runs many gets and lists in as few batches as it can.
- **Rate:** one leaky bucket per portal shared by every process, with the portal's burst
  (connectors/ratelimit.py); inside a job a long wait becomes OverLimit and the job goes back.
  503 QUERY_LIMIT_EXCEEDED is a refusal: nothing happened, so it is retried with backoff
  even for a write. Other 5xx, timeouts and dropped connections after a write left are
  ambiguous (AmbiguousFailure): `create()` looks before it sends again.
- **Errors:** 401 `expired_token` refreshes the OAuth pair once (across processes) and
  repeats once; 429 OPERATION_TIME_LIMIT raises OperationTimeLimit for the job to be
  deferred; ERROR_METHOD_NOT_FOUND, access and credential errors raise their own classes
  (errors.py), named by method. Neither the webhook URL nor a token ever appears in a log
  line or an exception.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import redis
import requests

from connectors.bitrix24 import errors as e
from connectors.bitrix24 import finders
from connectors.bitrix24.auth import NEW_WEBHOOK, REAUTHORIZE, OAuthTokens, WebhookAuth
from connectors.http import DEFAULT_TIMEOUT, GaveUp, HttpClient
from connectors.idempotency import ActionLog, Finder, IdempotentCreator, PartlyCreated, Pending
from connectors.ratelimit import OverLimit, RateLimiter
from reglament import keys
from reglament.config import Bitrix24Settings

SYSTEM = "bitrix24"
PAGE = 50
BATCH = 50
# A method whose last word is one of these only reads, so repeating it is harmless.
READS = {"get", "list", "fields", "current", "findbycomm", "info"}

Command = tuple[str, Mapping[str, Any]]


def budget_key(settings: Bitrix24Settings) -> str:
    """The Redis key of the portal's request budget. Bitrix24 counts requests per portal (and
    source IP), so every account and process calling one portal shares it."""
    return keys.key(keys.GLOBAL, SYSTEM, "portal", urlsplit(settings.portal_url).netloc.lower(), "ratelimit")


def is_read(method: str) -> bool:
    return method.lower().rsplit(".", 1)[-1] in READS


def php_query(params: Mapping[str, Any], prefix: str = "") -> str:
    """Params as PHP's http_build_query writes them (`filter[>ID]=5&select[0]=ID`): the form of
    a batch command (CONFIRMED, batch.md: "method?param=value", urlencoded)."""
    parts: list[str] = []

    def walk(value: Any, key: str) -> None:
        if isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{key}[{k}]" if key else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")
        elif value is None:
            return  # PHP leaves nulls out
        else:
            text = ("1" if value else "0") if isinstance(value, bool) else str(value)
            parts.append(f"{quote(key, safe='[]')}={quote(text, safe='')}")

    walk(params, prefix)
    return "&".join(parts)


def command(method: str, params: Mapping[str, Any] | None = None) -> str:
    query = php_query(params or {})
    return f"{method}?{query}" if query else method


def _list_of(value: Any) -> dict:
    """Bitrix24 writes an empty object as [] (PHP's json_encode of an empty array)."""
    return value if isinstance(value, dict) else {}


def items_of(result: Any, key: str | None = None) -> list:
    """The rows of a list result: a list, or a dict holding one list (tasks.task.list: {"tasks": [...]})."""
    if key is not None and isinstance(result, dict):
        return list(result.get(key) or [])
    if isinstance(result, list):
        return result
    if isinstance(result, dict):
        lists = [v for v in result.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
        if not result:
            return []
    return [result] if result not in (None, "") else []


@dataclass
class BatchResult:
    """One or more batches' answers, keyed by command."""
    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, e.ApiError] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    next: dict[str, int] = field(default_factory=dict)
    started: float | None = None    # when the portal began the (first) batch, by its clock: `time.start`

    def __getitem__(self, key: str) -> Any:
        """The result of one command, or its error raised."""
        if key in self.errors:
            raise self.errors[key]
        return self.results[key]

    def raise_first(self) -> None:
        """Raise one of the errors, a deferrable one (OperationTimeLimit) first."""
        if self.errors:
            deferrable = [x for x in self.errors.values() if isinstance(x, e.OperationTimeLimit)]
            raise (deferrable or list(self.errors.values()))[0]


class Bitrix24Client:
    """One Bitrix24 portal. Safe to create per job; all shared state lives in Redis."""

    def __init__(self, account_id: str, settings: Bitrix24Settings, r: redis.Redis, *,
                 session: requests.Session | None = None,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT,
                 max_attempts: int = 5,
                 backoff_base: float = 0.5,
                 backoff_max: float = 30.0,
                 sleep=time.sleep):
        self.account_id = account_id
        self.settings = settings
        limiter = RateLimiter(r, budget_key(settings), settings.rate_limit, burst=settings.burst)
        self.http = HttpClient(r, account_id, SYSTEM, limiter=limiter, timeout=timeout, max_attempts=max_attempts,
                               backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep, session=session,
                               secrets=lambda: self.auth.secrets(), judge=_judge)
        self.auth: WebhookAuth | OAuthTokens
        if settings.webhook_url:
            self.auth = WebhookAuth(settings.webhook_url)
        else:
            # The token endpoint is the authorization server, not the portal: outside its bucket.
            token_http = HttpClient(r, account_id, SYSTEM, timeout=timeout, max_attempts=max_attempts,
                                    backoff_base=backoff_base, backoff_max=backoff_max, sleep=sleep,
                                    session=session, secrets=lambda: self.auth.secrets())
            self.auth = OAuthTokens(r, account_id, settings, token_http, sleep=sleep)
        self.creator = IdempotentCreator(ActionLog(r, account_id, SYSTEM), attempts=max_attempts,
                                         backoff=self.http.backoff, sleep=sleep, name="Bitrix24",
                                         ambiguous_error=e.AmbiguousWriteError, gave_up_error=e.Bitrix24GaveUp,
                                         refused=(e.ApiError, e.Bitrix24GaveUp, OverLimit), error=e.Bitrix24Error)

    def __repr__(self) -> str:
        return f"Bitrix24Client(account={self.account_id!r}, portal={urlsplit(self.settings.portal_url).netloc!r})"

    # ---------------------------------------------------------------- single calls

    def call(self, method: str, params: Mapping[str, Any] | None = None, *, idempotent: bool | None = None) -> Any:
        """The `result` of one method call."""
        return self.call_raw(method, params, idempotent=idempotent).get("result")

    def call_raw(self, method: str, params: Mapping[str, Any] | None = None, *,
                 idempotent: bool | None = None) -> dict:
        """The whole answer of one call: result, total, next, time."""
        if idempotent is None:
            idempotent = is_read(method)
        body = self._send(method, dict(params or {}), idempotent)
        if "error" in body and "result" not in body:
            raise e.error_for(method, 200, body, redact=self.http.redact)
        return body

    # ---------------------------------------------------------------- lists

    def list(self, method: str, params: Mapping[str, Any] | None = None, *, key: str | None = None) -> list:
        """Every row of a list method: the first page, then all the others in batches of 50 pages."""
        return self.gather({"list": (method, dict(params or {}))}, keys={"list": key})["list"]

    def pages(self, method: str, params: Mapping[str, Any] | None = None, *,
              key: str | None = None) -> Iterator[list]:
        """Page after page, following `next` (one request a page; memory stays bounded)."""
        return self._pages_from(method, params or {}, 0, key)

    def _pages_from(self, method: str, params: Mapping[str, Any], start: int | None,
                    key: str | None) -> Iterator[list]:
        while start is not None:
            body = self.call_raw(method, {**params, "start": start})
            yield items_of(body.get("result"), key)
            nxt = body.get("next")
            start = int(nxt) if nxt not in (None, "") and int(nxt) > start else None

    # ---------------------------------------------------------------- batch

    def batch(self, commands: Mapping[str, Command], *, halt: bool = False) -> BatchResult:
        """Run commands {key: (method, params)} in batches of at most 50; results and errors keyed as given."""
        out = BatchResult()
        names = list(commands)
        for start in range(0, len(names), BATCH):
            chunk = {name: commands[name] for name in names[start:start + BATCH]}
            self._batch_once(chunk, halt, out)
        return out

    def gather(self, calls: Mapping[str, Command], *, keys: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """Many gets and lists in as few requests as possible: every call in batches of 50, then
        every further page of every list, packed 50 to a batch. A list's result is all its rows.
        Raises the first error (a deferrable OperationTimeLimit before others)."""
        keys = keys or {}
        first = self.batch(calls)
        first.raise_first()
        found: dict[str, Any] = {}
        more: dict[str, Command] = {}
        for name, result in first.results.items():
            if name not in first.next:
                found[name] = items_of(result, keys.get(name)) if name in first.totals else result
                continue
            found[name] = items_of(result, keys.get(name))
            method, params = calls[name]
            total = first.totals.get(name)
            if total is None:  # no count to plan by: follow `next` page by page
                found[name] += [row for page in self._pages_from(method, params, first.next[name], keys.get(name))
                                for row in page]
                continue
            for start in range(int(first.next[name]), int(total), PAGE):
                more[f"{name}~{start}"] = (method, {**params, "start": start})
        if more:
            rest = self.batch(more)
            rest.raise_first()
            for page_key in more:  # in the order asked, so pages stay in order
                name = page_key.rsplit("~", 1)[0]
                found[name] = found[name] + items_of(rest.results.get(page_key), keys.get(name))
        return found

    # ---------------------------------------------------------------- creates

    def create(self, kind: str, method: str, items: Sequence[tuple[str, Mapping[str, Any]]], *,
               find: Finder | None) -> list[int]:
        """Create once per action key: items are (action_key, params of `method`), sent in
        batches keyed by the action key's hash; returns the new ids in order. After an
        ambiguous failure `find` looks for what the lost attempt made before anything is
        sent again (without `find`, AmbiguousWriteError instead of a resend)."""
        return self.creator.create(kind, items, send=self._sender({}, lambda p: method), find=find)  # type: ignore

    def write(self, commands: Mapping[str, Command], creates: Sequence[tuple[str, str, Mapping[str, Any]]]
              ) -> tuple[dict[str, int], dict[str, Any]]:
        """Updates and creates in one batch when they fit (50 commands): `commands` first and in
        order (updates, and reads of what they changed: safe to repeat), then `creates`,
        (kind, action_key, params) of the kinds in CREATES, each made once per action key.
        Returns the new ids by action key and the commands' results by name. A command's
        error is raised after the creates are recorded, so a retry sends only what is left."""
        answered = BatchResult()
        if not creates or len(commands) + len(creates) > BATCH:
            if commands:
                answered = self.batch(commands)
            commands = {}
        sent: list[BatchResult] = []

        def find(pending: list[Pending]) -> dict[str, int]:
            found: dict[str, int] = {}
            for kind in dict.fromkeys(p.kind for p in pending):
                found.update(CREATES[kind][1](self, [p for p in pending if p.kind == kind]))
            return found

        ids = self.creator.create_mixed(list(creates), send=self._sender(commands, lambda p: CREATES[p.kind][0],
                                                                         sent), find=find) if creates else []
        if commands:
            # Without an answer (the one batch's outcome was unclear, yet its creates were
            # found), the commands are sent again on their own.
            answered = sent[0] if sent else self.batch(commands)
        answered.raise_first()
        return {key: i for (_, key, _), i in zip(creates, ids) if i is not None}, answered.results

    def _sender(self, commands: Mapping[str, Command], method_of, sent: list | None = None):
        """The creator's sender: one batch of `commands` (until an answer came back) and the
        pending creates, keyed by the action key's hash."""
        def send(pending: list[Pending]) -> dict[str, int | None]:
            by_name = {command_key(p.action_key): p for p in pending}
            updates = dict(commands) if commands and not sent else {}
            answer = self.batch({**updates, **{name: (method_of(p), p.payload) for name, p in by_name.items()}})
            if updates and sent is not None:
                sent.append(BatchResult(results={k: v for k, v in answer.results.items() if k in updates},
                                        errors={k: v for k, v in answer.errors.items() if k in updates}))
            created = {by_name[n].action_key: created_id(r) for n, r in answer.results.items() if n in by_name}
            failed = {by_name[n].action_key: err for n, err in answer.errors.items() if n in by_name}
            if failed and len(failed) == 1 and not created:
                raise next(iter(failed.values()))
            if failed:
                raise PartlyCreated({k: v for k, v in created.items() if v is not None}, failed)
            return created
        return send

    def add(self, kind: str, items: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        """Create items (action_key, params) of one kind in CREATES once per action key; the new ids in order:
        "todos" (crm.activity.todo.add: {ownerTypeId, ownerId, deadline, title, responsibleId, ...}),
        "tasks" (tasks.task.add: {"fields": {TITLE, RESPONSIBLE_ID, DEADLINE, UF_CRM_TASK, ...}}),
        "comments" (crm.timeline.comment.add: {"fields": {ENTITY_TYPE, ENTITY_ID, COMMENT}})."""
        ids, _ = self.write({}, [(kind, key, params) for key, params in items])
        return [ids[key] for key, _ in items]

    # ---------------------------------------------------------------- plumbing

    def _batch_once(self, chunk: Mapping[str, Command], halt: bool, out: BatchResult) -> None:
        cmd = {name: command(method, params) for name, (method, params) in chunk.items()}
        idempotent = all(is_read(method) for method, _ in chunk.values())
        body = self._send("batch", {"halt": 1 if halt else 0, "cmd": cmd}, idempotent)
        answer = body.get("result")
        if not isinstance(answer, dict):
            raise e.error_for("batch", 200, body, redact=self.http.redact)
        started = (body.get("time") or {}).get("start") if isinstance(body.get("time"), dict) else None
        if out.started is None and isinstance(started, (int, float)):
            out.started = float(started)
        for name, value in _list_of(answer.get("result")).items():
            out.results[name] = value
        for name, err in _list_of(answer.get("result_error")).items():
            method = chunk[name][0] if name in chunk else "batch"
            out.errors[name] = e.error_for(method, None, err, redact=self.http.redact)
        for name, value in _list_of(answer.get("result_total")).items():
            out.totals[name] = int(value)
        for name, value in _list_of(answer.get("result_next")).items():
            out.next[name] = int(value)

    def _send(self, method: str, params: dict, idempotent: bool) -> dict:
        """One call with auth: a 401 expired_token refreshes the pair once and repeats once; errors mapped."""
        token = self.auth.access_token()
        resp = self._request(method, params, token, idempotent)
        if resp.status_code == 401 and e.code_of(_json(resp)) in e.EXPIRED and self.auth.can_refresh:
            token = self.auth.refresh(token)
            resp = self._request(method, params, token, idempotent)
        body = _json(resp)
        if resp.status_code == 401:
            err = e.error_for(method, 401, body, redact=self.http.redact)
            hint = REAUTHORIZE if self.auth.can_refresh else NEW_WEBHOOK
            raise e.AuthError(method, err.code, f"{err.description} {hint}".strip(), 401, body)
        if resp.status_code >= 400:
            raise e.error_for(method, resp.status_code, body, redact=self.http.redact)
        if not isinstance(body, dict):
            raise e.ApiError(method, "", f"an answer that is not a JSON object (HTTP {resp.status_code})",
                             resp.status_code)
        return body

    def _request(self, method: str, params: dict, token: str | None, idempotent: bool) -> requests.Response:
        url = self.auth.base + method
        body = {**params, "auth": token} if token else params
        try:
            return self.http.request("POST", url, json=body, idempotent=idempotent)
        except GaveUp as exc:
            # The path in exc names the webhook code; say the method instead.
            raise e.Bitrix24GaveUp(exc.system, "POST", method, exc.attempts, exc.last) from None


# What `write` creates: kind → (method, how to look for an unclear attempt's entity).
CREATES: dict[str, tuple[str, Any]] = {
    "todos": ("crm.activity.todo.add", finders.todos),
    "tasks": ("tasks.task.add", finders.tasks),
    "comments": ("crm.timeline.comment.add", finders.comments),
}


def command_key(action_key: str) -> str:
    """A batch command's name for an action key: short, stable, safe in a query string."""
    return "c" + hashlib.sha1(action_key.encode()).hexdigest()[:16]


def created_id(result: Any) -> int | None:
    """The new id in an add method's answer: 7405 (crm.deal.add, crm.timeline.comment.add),
    {"id": 999} (crm.activity.todo.add), {"task": {"id": "3711"}} (tasks.task.add)."""
    if isinstance(result, bool):
        return None
    if isinstance(result, (int, str)) and str(result).isdigit():
        return int(result)
    if isinstance(result, dict):
        for name in ("id", "ID", "task", "item"):
            if name in result:
                return created_id(result[name])
    return None


def _judge(resp: requests.Response) -> str | None:
    code = e.code_of(_json(resp))
    if code in e.REFUSED_FOR_RATE:
        return "refused"  # the bucket was full: the portal did nothing with the request
    if code in e.TIME_LIMIT or resp.status_code == 429 or code in e.OVERLOADED:
        return "final"    # waiting seconds won't help: the caller raises and the job is deferred
    return None


def _json(resp: requests.Response) -> Any:
    if not resp.content:
        return None
    try:
        return resp.json()
    except ValueError:
        return None

