"""/hooks/telephony/<provider>/<secret>: a telephony provider's own call notifications."""

from flask import Blueprint, Response, request

from app.errors import Rejected
from app.receive import find_account, receive
from app.telephony import mango, zadarma

bp = Blueprint("telephony", __name__)
FORM = ("application/x-www-form-urlencoded",)


def _provider(account, name: str):
    settings = getattr(account.telephony, name, None) if account.telephony else None
    if settings is None:
        raise Rejected(f"{name} is not configured for this account", 404, "not_configured")
    return settings


def _zadarma_signature(account, body: bytes) -> None:
    zadarma.verify(zadarma.fields_of(body), request.headers.get("Signature"), _provider(account, "zadarma").secret)


def _mango_signature(account, body: bytes) -> None:
    settings = _provider(account, "mango")
    mango.verify(mango.fields_of(body), settings.api_key, settings.api_salt)


@bp.post("/hooks/telephony/zadarma/<secret>")
def zadarma_hook(secret: str):
    return receive("telephony.zadarma", secret, zadarma.parse, FORM, authenticate=_zadarma_signature)


@bp.get("/hooks/telephony/zadarma/<secret>")
def zadarma_echo(secret: str):
    # Zadarma checks a notification URL by a GET with zd_echo that must be echoed back.
    echo = request.args.get("zd_echo")
    if find_account(secret) is None or echo is None:
        return Response('{"error": "not found"}', 404, mimetype="application/json")
    return Response(echo, mimetype="text/plain")


@bp.post("/hooks/telephony/mango/<secret>")
@bp.post("/hooks/telephony/mango/<secret>/events/<event_name>")
def mango_hook(secret: str, event_name: str = "summary"):
    parse = lambda body, account, full=True: mango.parse(body, account, full, event_name)  # noqa: E731
    return receive("telephony.mango", secret, parse, FORM, authenticate=_mango_signature)
