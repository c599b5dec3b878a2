from flask import Blueprint

from app.amocrm import parser
from app.errors import Rejected
from app.receive import receive

bp = Blueprint("amocrm", __name__)


def _same_account(account, parsed) -> None:
    # amoCRM webhooks carry no signature; the secret URL is the authentication, and the
    # account id in the body must match the configured one when it is known.
    expected = account.amocrm.account_id if account.amocrm else None
    if expected and parsed.account_id and parsed.account_id != expected:
        raise Rejected(f"webhook is from amoCRM account {parsed.account_id}, not {expected}", 403, "account_mismatch")


@bp.post("/hooks/amocrm/<secret>")
def hook(secret: str):
    return receive("amocrm", secret, parser.parse,
                   ("application/x-www-form-urlencoded",), _same_account)
