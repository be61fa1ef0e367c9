"""The admin console's rules (infra/admin_rules.py): the last active admin, reset codes."""
from __future__ import annotations

import pytest

from infra import admin_rules as rules
from infra.errors import BadRequest, Conflict


@pytest.mark.parametrize(("role", "disabled", "new_role", "suspend", "expected"), [
    ("admin", False, None, True, [rules.Change.SUSPEND]),
    ("admin", False, "dispatcher", False, [rules.Change.DEMOTE]),
    ("admin", False, "admin", False, []),
    ("admin", False, "clerk", True, [rules.Change.SUSPEND, rules.Change.DEMOTE]),
    ("admin", True, "clerk", True, []),              # a suspended admin is not an active one
    ("dispatcher", False, "mediator", True, []),
    ("dispatcher", False, "admin", False, []),
])
def test_which_changes_are_guarded(role, disabled, new_role, suspend, expected):
    assert rules.admin_changes(role, disabled, new_role, suspend) == expected


def test_the_last_active_admin_stays():
    with pytest.raises(Conflict, match="last active admin"):
        rules.check_admin_change(rules.Change.SUSPEND, True, 1)
    with pytest.raises(Conflict, match="change the role"):
        rules.check_admin_change(rules.Change.DEMOTE, True, 1)
    rules.check_admin_change(rules.Change.SUSPEND, True, 2)
    rules.check_admin_change(rules.Change.SUSPEND, False, 1)     # not an active admin: nothing to keep


def test_codes_are_random_readable_and_typed_loosely():
    codes = {rules.new_code() for _ in range(200)}
    assert len(codes) == 200
    code = codes.pop()
    assert len(code) == 14 and code.count("-") == 2
    assert not set(code.replace("-", "")) & set("01IOL")
    assert rules.code_hash(code) == rules.code_hash(code.lower().replace("-", " "))
    assert rules.code_hash(code) != rules.code_hash(codes.pop())
    assert code not in rules.code_hash(code)
    for bad in ("", "ABCD", "ABCD-EFGH-JKM0", "ABCD-EFGH-JKMNP"):
        with pytest.raises(BadRequest, match="code"):
            rules.normalise_code(bad)
