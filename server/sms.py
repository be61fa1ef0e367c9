"""TRANSITIONAL: `helpline purge` (server/cli.py `_load_features`) imports this module so that SMS data
has a purge step. The SMS code lives in the sms package; once the composition root lists purge steps
explicitly (sms.purge.purge_sms), delete this file and the import in server/cli.py.
"""
from server.purge import PURGE_STEPS
from sms.purge import purge_sms

if purge_sms not in PURGE_STEPS:
    PURGE_STEPS.append(purge_sms)
