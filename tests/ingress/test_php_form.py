from urllib.parse import parse_qsl, urlencode

import pytest
from hypothesis import given, strategies as st

from app import php_form


@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=10))
def test_pairs_agree_with_urllib(items):
    body = urlencode(items)
    assert php_form.pairs(body) == parse_qsl(body, keep_blank_values=True)


def test_nesting_keeps_order_and_strings():
    assert php_form.parse("a[b][0][c]=1&a[b][1][c]=x+y&a[d]=") == {"a": {"b": {"0": {"c": "1"}, "1": {"c": "x y"}}, "d": ""}}


@pytest.mark.parametrize("body", ["a", "a[b=1", "[x]=1", "a=1&a[b]=2", "a[b]=2&a=1"])
def test_malformed(body):
    with pytest.raises(php_form.FormError):
        php_form.parse(body)
