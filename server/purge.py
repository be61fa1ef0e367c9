"""`helpline purge`: every domain's purge step, in one transaction, listed here explicitly.

Each domain blanks its own personal data past privacy.retention_days (dispatch/purge.py,
mediation/purge.py, the SMS channel's texts, contacts and the phones nothing else keeps);
a resident account that is still a party to a case not yet purged keeps its name and phone
(the SMS bridge needs them).
"""
from __future__ import annotations

from dispatch import purge as dispatch_purge
from infra.db import Conn
from mediation import purge as mediation_purge
from sms.purge import purge_sms


async def purge(conn: Conn, retention_days: int) -> dict[str, int]:
    done: dict[str, int] = {}
    async with conn.transaction():
        done.update(await dispatch_purge.purge_incidents(conn, retention_days,
                                                         keep=[mediation_purge.KEEP_RESIDENT]))
        done.update(await mediation_purge.purge_cases(conn, retention_days))
        done.update(await purge_sms(conn, retention_days, keep=[dispatch_purge.REPORTER, mediation_purge.PARTY]))
    return done
