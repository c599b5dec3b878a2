from flask import Blueprint

from app.receive import receive
from app.wazzup import parser

bp = Blueprint("wazzup", __name__)


@bp.post("/hooks/wazzup/<secret>")
def hook(secret: str):
    # Wazzup sends "application/json; charset-utf-8" (sic); the mimetype part is what counts.
    return receive("wazzup", secret, parser.parse, ("application/json", "text/plain", ""))
