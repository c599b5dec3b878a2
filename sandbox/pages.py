"""What the sandboxes' own pages share: the style sheet and the redirect back after a form.

The pages themselves (Russian, plain HTML forms acting as the sales managers) are each
CRM's own: sandbox/amocrm/ui.py and sandbox/bitrix24/ui.py.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import redirect, request

STYLE = """<style>
 body{font:14px/1.35 system-ui,sans-serif;margin:16px;color:#222}
 table{border-collapse:collapse;width:100%} td,th{border-bottom:1px solid #ddd;padding:6px;vertical-align:top;text-align:left}
 th{background:#f4f6f8} .st{display:inline-block;padding:1px 6px;border-radius:3px}
 .overdue{color:#c00;font-weight:600} .muted{color:#888} .err{background:#fee;border:1px solid #c00;padding:8px}
 form{margin:2px 0} input,select,button{font:inherit} .step{margin-bottom:6px}
 fieldset{border:1px solid #ddd;margin:0 0 12px 0} .small{font-size:12px}
</style>"""


def back(error: str | None = None):
    """303 to the page the form came from (its hidden `back` field, this site only), with `error` shown there."""
    target = request.form.get("back") or "/"
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    if error:
        target += ("&" if "?" in target else "?") + urlencode({"error": error})
    return redirect(target, code=303)
